"""Validation of rules (OR of AND-groups of conditions) and audience expressions.

Conditions are shared by enrichment rules, event feeds and audiences (Tealium §3.4): the
operator must apply to the input's type, binary operators need a value of a comparable type,
date operators an offset, TALLY_KEY_VALUE a key and a numeric key operator, regular
expressions must compile. Audiences read only visit/visitor attributes (§6.1), never event
data; the caller says so through ``no_events``.
"""

from __future__ import annotations

from crowd.definitions.catalog import (
    ATTRIBUTE_ONLY_OPERATORS,
    OFFSET_OPERATORS,
    OPERATOR_INPUTS,
    ORDERING_OPERATORS,
    STEP_OPERATORS,
    STRING_OPERATORS,
    TALLY_KEY_OPERATORS,
    UNARY_OPERATORS,
    operator_phrase,
    operator_value_types,
)
from crowd.definitions.limits import (
    MAX_CONDITIONS_PER_RULE,
    MAX_EXPRESSION_DEPTH,
    MAX_TIME_OFFSET_MS,
)
from crowd.definitions.normalise import enum_short_names
from crowd.definitions.patterns import pattern_error
from crowd.definitions.validation_context import ValidationContext, describe
from crowd.definitions.value_types import VType, describe_types
from crowd.profile.v1 import definitions_pb2 as pb

Op = pb.Operator

NO_EVENTS_IN_AUDIENCES = (
    "audiences read only visit and visitor attributes, not event data; "
    "enrich an attribute from the event and test that instead"
)

_UNIT_MS = {
    pb.TIME_UNIT_SECONDS: 1000,
    pb.TIME_UNIT_MINUTES: 60_000,
    pb.TIME_UNIT_HOURS: 3_600_000,
    pb.TIME_UNIT_DAYS: 86_400_000,
    pb.TIME_UNIT_WEEKS: 7 * 86_400_000,
    pb.TIME_UNIT_MONTHS: 30 * 86_400_000,
}
_NOT_STRINGS = frozenset(
    {VType.NUMBER, VType.BOOLEAN, VType.DATE, VType.NUMBER_ARRAY, VType.BOOLEAN_ARRAY}
)


def check_rule(
    ctx: ValidationContext, rule: pb.Rule, path: str, *, no_events: str | None = None
) -> None:
    """Check every condition of a rule; an empty rule (no groups) matches everything."""
    total = sum(len(group.conditions) for group in rule.groups)
    if total > MAX_CONDITIONS_PER_RULE:
        ctx.add(path, f"the rule has {total} conditions; at most {MAX_CONDITIONS_PER_RULE} allowed")
    for g, group in enumerate(rule.groups):
        group_path = f"{path}.groups[{g}]"
        if not group.conditions:
            ctx.add(
                f"{group_path}.conditions",
                "a condition group needs at least one condition (an empty group matches "
                "everything; remove the rule instead)",
            )
        for c, condition in enumerate(group.conditions):
            check_condition(ctx, condition, f"{group_path}.conditions[{c}]", no_events=no_events)


def check_condition(
    ctx: ValidationContext, condition: pb.Condition, path: str, *, no_events: str | None = None
) -> None:
    """Check one ``input operator value`` condition."""
    input_type = _check_input(ctx, condition, path, no_events)
    operator = condition.operator
    operator_known, applies = _check_operator(ctx, condition, path, input_type)
    if not operator_known:
        # Still look at the value so that unknown attributes in it are reported.
        if condition.HasField("value"):
            ctx.operand_type(condition.value, f"{path}.value", no_events=no_events)
        return
    name = operator_phrase(operator)

    date_mode = operator in ORDERING_OPERATORS and (
        input_type is VType.DATE
        or (
            input_type is VType.ANY
            and condition.HasField("offset")
            and not condition.HasField("value")
        )
    )
    needs_value = operator not in UNARY_OPERATORS and not date_mode
    # When the operator does not fit the input, a value type error would only repeat it.
    value_input = input_type if applies else None
    _check_value(ctx, condition, path, value_input, needs_value, date_mode, no_events)
    _check_offset(ctx, condition, path, name, date_mode)
    _check_ignore_case(ctx, condition, path, input_type)
    _check_tally_key(ctx, condition, path, name)


def _check_input(
    ctx: ValidationContext, condition: pb.Condition, path: str, no_events: str | None
) -> VType | None:
    if not condition.HasField("input"):
        ctx.add(f"{path}.input", "the condition has no input; set an attribute or an event field")
        return None
    if condition.input.WhichOneof("source") == "constant":
        ctx.add(f"{path}.input", "the input must be an attribute or an event field, not a constant")
        return None
    return ctx.operand_type(condition.input, f"{path}.input", no_events=no_events)


def _check_operator(
    ctx: ValidationContext, condition: pb.Condition, path: str, input_type: VType | None
) -> tuple[bool, bool]:
    """Report an unset/unknown operator or one not applying to the input.

    Returns whether the operator is known, and whether it applies to the input's type.
    """
    operator = condition.operator
    if operator == Op.OPERATOR_UNSPECIFIED:
        choices = ", ".join(enum_short_names(pb.Operator.DESCRIPTOR))
        ctx.add(f"{path}.operator", f"the operator is not set; use one of {choices}")
        return False, False
    if operator not in OPERATOR_INPUTS:
        ctx.add(f"{path}.operator", f"unknown operator {operator}")
        return False, False
    name = operator_phrase(operator)
    if input_type is VType.ANY:
        if operator in ATTRIBUTE_ONLY_OPERATORS:
            ctx.add(f"{path}.operator", f'"{name}" applies to attributes, not to event data')
            return True, False
    elif input_type is not None and input_type not in OPERATOR_INPUTS[operator]:
        hint = ""
        if input_type is VType.BADGE:
            hint = "; test badges with is assigned or is not assigned"
        elif input_type is VType.TALLY and operator in ORDERING_OPERATORS:
            hint = "; compare a key's value with tally key value"
        ctx.add(f"{path}.operator", f'"{name}" does not apply to {input_type.phrase}{hint}')
        return True, False
    return True, True


def _check_value(
    ctx: ValidationContext,
    condition: pb.Condition,
    path: str,
    input_type: VType | None,
    needs_value: bool,
    date_mode: bool,
    no_events: str | None,
) -> None:
    operator = condition.operator
    name = operator_phrase(operator)
    value_path = f"{path}.value"
    if not condition.HasField("value"):
        if needs_value:
            extra = ""
            if operator in ORDERING_OPERATORS and input_type is VType.ANY:
                extra = " (or an offset, to compare a date with now)"
            ctx.add(value_path, f'"{name}" needs a value to compare with{extra}')
        return
    if not needs_value:
        if date_mode:
            message = f'"{name}" on a date compares with now plus the offset; it takes no value'
        else:
            message = f'"{name}" takes no value'
        ctx.add(value_path, message)
        ctx.operand_type(condition.value, value_path, no_events=no_events)
        return
    value_type = ctx.operand_type(condition.value, value_path, no_events=no_events)
    if operator == Op.OPERATOR_MATCHES_REGEX:
        _check_regex(ctx, condition, value_path, value_type)
        return
    if value_type is None or value_type is VType.ANY or input_type is None:
        return  # unusable value, untyped event value, or nothing valid to compare with
    allowed = operator_value_types(operator, input_type)
    if value_type not in allowed:
        against = "" if input_type is VType.ANY else f" to compare with {input_type.phrase}"
        ctx.add(
            value_path,
            f'"{name}" needs {describe_types(allowed)}{against}, '
            f"but {describe(condition.value)} is {value_type.phrase}",
        )


def _check_regex(
    ctx: ValidationContext, condition: pb.Condition, path: str, value_type: VType | None
) -> None:
    value = condition.value
    if value.WhichOneof("source") != "constant":
        ctx.add(path, '"matches regex" needs the pattern as a string constant')
        return
    if value_type is not VType.STRING:
        ctx.add(path, '"matches regex" needs the pattern as a string constant')
        return
    problem = pattern_error(value.constant.string_value, condition.ignore_case)
    if problem is not None:
        ctx.add(f"{path}.constant.string_value", problem)


def _check_offset(
    ctx: ValidationContext, condition: pb.Condition, path: str, name: str, date_mode: bool
) -> None:
    operator = condition.operator
    offset_path = f"{path}.offset"
    has_offset = condition.HasField("offset")
    if operator in OFFSET_OPERATORS:
        if not has_offset:
            ctx.add(offset_path, f'"{name}" needs an offset: an amount and a unit, e.g. 30 days')
            return
        if condition.offset.amount <= 0:
            ctx.add(f"{offset_path}.amount", f'"{name}" needs a positive amount')
    elif not has_offset:
        return  # nothing to check (a date comparison without offset compares with now)
    elif not date_mode:
        ctx.add(offset_path, f'"{name}" takes no offset; offsets are for date comparisons')
        return
    _check_time_unit(ctx, condition.offset, offset_path)


def _check_time_unit(ctx: ValidationContext, offset: pb.TimeOffset, path: str) -> None:
    unit_ms = _UNIT_MS.get(offset.unit)
    if offset.unit == pb.TIME_UNIT_UNSPECIFIED:
        choices = ", ".join(enum_short_names(pb.TimeUnit.DESCRIPTOR))
        ctx.add(f"{path}.unit", f"the offset needs a unit: one of {choices}")
    elif unit_ms is None:
        ctx.add(f"{path}.unit", f"unknown time unit {offset.unit}")
    elif abs(offset.amount) * unit_ms > MAX_TIME_OFFSET_MS:
        ctx.add(f"{path}.amount", "the offset is longer than 100 years")


def _check_ignore_case(
    ctx: ValidationContext, condition: pb.Condition, path: str, input_type: VType | None
) -> None:
    if not condition.ignore_case:
        return
    operator = condition.operator
    if operator not in STRING_OPERATORS or input_type in _NOT_STRINGS:
        ctx.add(f"{path}.ignore_case", "ignore_case only applies to comparisons of strings")


def _check_step_key(ctx: ValidationContext, condition: pb.Condition, path: str, name: str) -> None:
    """STEP_COMPLETED / STEP_NOT_COMPLETED name a step of the funnel they test."""
    if not condition.key:
        ctx.add(f"{path}.key", f'"{name}" needs the funnel step id in "key"')
        return
    source = condition.input
    if source.WhichOneof("source") != "attribute":
        return
    funnel = next((a for a in ctx.definitions.attributes if a.id == source.attribute), None)
    if funnel is None or funnel.type != pb.ATTRIBUTE_TYPE_FUNNEL:
        return  # reported with the input
    steps = [e.key for e in funnel.enrichments if e.kind == pb.ENRICHMENT_KIND_FUNNEL_STEP]
    if condition.key not in steps:
        listed = ", ".join(steps) or "none"
        ctx.add(
            f"{path}.key",
            f'"{condition.key}" is not a step of the funnel "{funnel.id}" (steps: {listed})',
        )


def _check_tally_key(ctx: ValidationContext, condition: pb.Condition, path: str, name: str) -> None:
    if condition.operator in STEP_OPERATORS:
        _check_step_key(ctx, condition, path, name)
        if condition.key_operator != Op.OPERATOR_UNSPECIFIED:
            ctx.add(f"{path}.key_operator", '"key_operator" is only used by tally key value')
        return
    if condition.operator != Op.OPERATOR_TALLY_KEY_VALUE:
        if condition.key:
            ctx.add(
                f"{path}.key",
                '"key" is only used by the tally key value and funnel step operators',
            )
        if condition.key_operator != Op.OPERATOR_UNSPECIFIED:
            ctx.add(f"{path}.key_operator", '"key_operator" is only used by tally key value')
        return
    if not condition.key:
        ctx.add(f"{path}.key", f'"{name}" needs the tally key whose value is compared')
    elif len(condition.key) > ctx.max_string_length:
        ctx.add(f"{path}.key", f"the key is longer than {ctx.max_string_length} characters")
    if condition.key_operator not in TALLY_KEY_OPERATORS:
        choices = ", ".join(operator_phrase(op) for op in sorted(TALLY_KEY_OPERATORS))
        if condition.key_operator == Op.OPERATOR_UNSPECIFIED:
            message = f'"{name}" needs a key_operator: one of {choices}'
        else:
            message = (
                f'"{operator_phrase(condition.key_operator)}" cannot compare a tally value; '
                f"use one of {choices}"
            )
        ctx.add(f"{path}.key_operator", message)


def check_audience_expression(
    ctx: ValidationContext, expression: pb.AudienceExpression, path: str, depth: int = 1
) -> None:
    """Check an audience expression tree (all / any / negate / condition)."""
    if depth > MAX_EXPRESSION_DEPTH:
        ctx.add(path, f"the expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep")
        return
    node = expression.WhichOneof("node")
    if node is None:
        ctx.add(path, "the expression is empty; set one of all, any, negate or condition")
    elif node in ("all", "any"):
        items = getattr(expression, node).items
        if not items:
            ctx.add(f"{path}.{node}.items", f'"{node}" needs at least one item')
        for k, item in enumerate(items):
            check_audience_expression(ctx, item, f"{path}.{node}.items[{k}]", depth + 1)
    elif node == "negate":
        check_audience_expression(ctx, expression.negate, f"{path}.negate", depth + 1)
    else:
        check_condition(
            ctx, expression.condition, f"{path}.condition", no_events=NO_EVENTS_IN_AUDIENCES
        )
