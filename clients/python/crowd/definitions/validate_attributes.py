"""Validation of attributes and their enrichments (Tealium §1-§3).

Per attribute: scope and type set, visitor-only types (badge, visitor ID) visitor-scoped,
merge rule fitting the type. Per enrichment: the kind applies to the attribute's type, WHEN is
set, the operands have the right number and types, the optional fields (key, delimiter,
date_format, capture, required) are used only by the kinds that read them, the rule is valid.
A visit-ended enrichment runs without an event, so it may not read event data.
"""

from __future__ import annotations

import datetime as dt
import math

from crowd.definitions.catalog import (
    ALL_ATTRIBUTE_TYPES,
    KIND_SPECS,
    VISITOR_ONLY_TYPES,
    KindSpec,
    enum_phrase,
    kind_phrase,
    type_phrase,
)
from crowd.definitions.limits import (
    MAX_DATE_FORMAT_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_ENRICHMENTS_PER_ATTRIBUTE,
    MAX_JOIN_OPERANDS,
    MAX_NAME_LENGTH,
)
from crowd.definitions.normalise import enum_short_names
from crowd.definitions.validate_rules import check_rule
from crowd.definitions.validation_context import ValidationContext
from crowd.definitions.value_types import VType
from crowd.profile.v1 import definitions_pb2 as pb

T = pb.AttributeType
K = pb.EnrichmentKind
M = pb.MergeRule

NO_EVENTS_AT_VISIT_END = (
    "a visit_ended enrichment runs when the visit times out, without an event, "
    "so it cannot read event data"
)

_NUMBERS_AND_DATES = frozenset({T.ATTRIBUTE_TYPE_NUMBER, T.ATTRIBUTE_TYPE_DATE})
_COLLECTIONS = frozenset(
    {
        T.ATTRIBUTE_TYPE_STRING_SET,
        T.ATTRIBUTE_TYPE_STRING_ARRAY,
        T.ATTRIBUTE_TYPE_NUMBER_ARRAY,
        T.ATTRIBUTE_TYPE_BOOLEAN_ARRAY,
        T.ATTRIBUTE_TYPE_TALLY,
    }
)
_BOOLEANS = frozenset({T.ATTRIBUTE_TYPE_BOOLEAN, T.ATTRIBUTE_TYPE_BADGE})
_MERGE_RULE_TYPES: dict[int, frozenset[int]] = {
    M.MERGE_RULE_NEWER: ALL_ATTRIBUTE_TYPES,
    M.MERGE_RULE_OLDER: ALL_ATTRIBUTE_TYPES,
    M.MERGE_RULE_MAX: _NUMBERS_AND_DATES,
    M.MERGE_RULE_MIN: _NUMBERS_AND_DATES,
    M.MERGE_RULE_SUM: frozenset({T.ATTRIBUTE_TYPE_NUMBER}),
    M.MERGE_RULE_UNION: _COLLECTIONS,
    M.MERGE_RULE_UNION_SUM: frozenset({T.ATTRIBUTE_TYPE_TALLY}),
    M.MERGE_RULE_UNION_MAX: frozenset({T.ATTRIBUTE_TYPE_TALLY}),
    M.MERGE_RULE_UNION_MIN: frozenset({T.ATTRIBUTE_TYPE_TALLY}),
    M.MERGE_RULE_AND: _BOOLEANS,
    M.MERGE_RULE_OR: _BOOLEANS,
    M.MERGE_RULE_RECALCULATE: ALL_ATTRIBUTE_TYPES - {T.ATTRIBUTE_TYPE_VISITOR_ID},
    M.MERGE_RULE_FUNNEL: frozenset({T.ATTRIBUTE_TYPE_FUNNEL}),
    M.MERGE_RULE_TIMELINE: frozenset({T.ATTRIBUTE_TYPE_TIMELINE}),
}
MAX_BLOCKED_VALUES = 1000
MAX_BLOCKED_VALUE_LENGTH = 255

# Which kinds use each optional enrichment field, for "only used by" messages.
_FIELD_USERS: dict[str, list[str]] = {}
for _kind, _spec in KIND_SPECS.items():
    for _field in _spec.uses:
        _FIELD_USERS.setdefault(_field, []).append(kind_phrase(_kind))


def check_attributes(ctx: ValidationContext) -> None:
    """Check every attribute and enrichment of the document."""
    for i, attribute in enumerate(ctx.definitions.attributes):
        check_attribute(ctx, attribute, f"attributes[{i}]")


def check_attribute(ctx: ValidationContext, attribute: pb.AttributeDefinition, path: str) -> None:
    """Check one attribute (its id is checked with the document's other ids)."""
    ctx.check_length(attribute.name, f"{path}.name", MAX_NAME_LENGTH, "name")
    ctx.check_length(
        attribute.description, f"{path}.description", MAX_DESCRIPTION_LENGTH, "description"
    )
    scope_ok = _check_scope(ctx, attribute, path)
    type_ok = _check_type(ctx, attribute, path)
    if (
        scope_ok
        and type_ok
        and attribute.scope == pb.ATTRIBUTE_SCOPE_VISIT
        and attribute.type in VISITOR_ONLY_TYPES
    ):
        ctx.add(
            f"{path}.scope",
            f"{type_phrase(attribute.type)} must have visitor scope "
            f"({type_phrase(attribute.type)} belongs to the visitor, not to one visit)",
        )
    if type_ok:
        _check_merge_rule(ctx, attribute, path)
        _check_identity(ctx, attribute, path)
    if len(attribute.enrichments) > MAX_ENRICHMENTS_PER_ATTRIBUTE:
        ctx.add(
            f"{path}.enrichments",
            f"the attribute has {len(attribute.enrichments)} enrichments; "
            f"at most {MAX_ENRICHMENTS_PER_ATTRIBUTE} allowed",
        )
    enrichment_ids: dict[str, int] = {}
    funnel_steps: dict[str, int] = {}
    for j, enrichment in enumerate(attribute.enrichments):
        enrichment_path = f"{path}.enrichments[{j}]"
        if enrichment.id and ctx.check_id_format(
            enrichment.id, f"{enrichment_path}.id", "enrichment id"
        ):
            if enrichment.id in enrichment_ids:
                ctx.add(
                    f"{enrichment_path}.id",
                    f'enrichment id "{enrichment.id}" is already used by '
                    f"{path}.enrichments[{enrichment_ids[enrichment.id]}]",
                )
            else:
                enrichment_ids[enrichment.id] = j
        check_enrichment(ctx, attribute, enrichment, enrichment_path, type_ok)
        if enrichment.kind == K.ENRICHMENT_KIND_FUNNEL_STEP and enrichment.key:
            if enrichment.key in funnel_steps:
                ctx.add(
                    f"{enrichment_path}.key",
                    f'funnel step "{enrichment.key}" is already defined by '
                    f"{path}.enrichments[{funnel_steps[enrichment.key]}]; "
                    "give one step several rule groups instead",
                )
            else:
                funnel_steps[enrichment.key] = j


def _check_scope(ctx: ValidationContext, attribute: pb.AttributeDefinition, path: str) -> bool:
    if attribute.scope == pb.ATTRIBUTE_SCOPE_UNSPECIFIED:
        ctx.add(f"{path}.scope", "the scope is not set; use visit or visitor")
        return False
    if attribute.scope not in pb.AttributeScope.values():
        ctx.add(f"{path}.scope", f"unknown scope {attribute.scope}; use visit or visitor")
        return False
    return True


def _check_type(ctx: ValidationContext, attribute: pb.AttributeDefinition, path: str) -> bool:
    choices = ", ".join(enum_short_names(pb.AttributeType.DESCRIPTOR))
    if attribute.type == T.ATTRIBUTE_TYPE_UNSPECIFIED:
        ctx.add(f"{path}.type", f"the type is not set; use one of {choices}")
        return False
    if attribute.type not in ALL_ATTRIBUTE_TYPES:
        ctx.add(f"{path}.type", f"unknown type {attribute.type}; use one of {choices}")
        return False
    return True


def _check_merge_rule(ctx: ValidationContext, attribute: pb.AttributeDefinition, path: str) -> None:
    rule = attribute.merge_rule
    if rule == M.MERGE_RULE_UNSPECIFIED:
        return
    name = enum_phrase(pb.MergeRule.DESCRIPTOR, rule)
    allowed = _MERGE_RULE_TYPES.get(rule)
    if allowed is None:
        ctx.add(f"{path}.merge_rule", f"unknown merge rule {rule}")
    elif attribute.type == T.ATTRIBUTE_TYPE_VISITOR_ID and rule != M.MERGE_RULE_OLDER:
        ctx.add(f"{path}.merge_rule", "a visitor ID always keeps the older value; use older")
    elif attribute.type not in allowed:
        ctx.add(
            f"{path}.merge_rule",
            f'merge rule "{name}" does not apply to {type_phrase(attribute.type)}',
        )


def _check_identity(ctx: ValidationContext, attribute: pb.AttributeDefinition, path: str) -> None:
    """Identity settings: visitor-ID attributes only, limits not negative, blocked values
    non-empty and not longer than a visitor ID."""
    if not attribute.HasField("identity"):
        return
    if attribute.type != T.ATTRIBUTE_TYPE_VISITOR_ID:
        ctx.add(f"{path}.identity", "identity settings apply only to visitor ID attributes")
        return
    settings = attribute.identity
    for name in ("max_values", "max_profiles"):
        if getattr(settings, name) < 0:
            ctx.add(f"{path}.identity.{name}", f"{name} must be 0 (no limit) or more")
    if len(settings.blocked_values) > MAX_BLOCKED_VALUES:
        ctx.add(
            f"{path}.identity.blocked_values",
            f"{len(settings.blocked_values)} blocked values; at most {MAX_BLOCKED_VALUES}",
        )
        return
    for i, value in enumerate(settings.blocked_values):
        if not value or len(value) > MAX_BLOCKED_VALUE_LENGTH:
            ctx.add(
                f"{path}.identity.blocked_values[{i}]",
                f"a blocked value has 1 to {MAX_BLOCKED_VALUE_LENGTH} characters",
            )


def check_enrichment(
    ctx: ValidationContext,
    attribute: pb.AttributeDefinition,
    enrichment: pb.Enrichment,
    path: str,
    type_ok: bool,
) -> None:
    """Check one enrichment of ``attribute``."""
    no_events = _check_when(ctx, enrichment, path)
    if enrichment.HasField("rule"):
        check_rule(ctx, enrichment.rule, f"{path}.rule", no_events=no_events)

    spec = _check_kind(ctx, attribute, enrichment, path, type_ok)
    if spec is None:
        # Unusable kind: still check the operands on their own (unknown attributes...).
        for k, operand in enumerate(enrichment.operands):
            ctx.operand_type(operand, f"{path}.operands[{k}]", no_events=no_events)
        return
    name = kind_phrase(enrichment.kind)
    operand_types = _check_operands(ctx, attribute, enrichment, spec, path, name, no_events)
    _check_optional_fields(ctx, enrichment, spec, path, name)
    if spec.needs_key:
        _check_key(ctx, enrichment, path, name)
    if "delimiter" in spec.uses and not enrichment.delimiter:
        ctx.add(f"{path}.delimiter", f'"{name}" needs a delimiter of at least one character')
    _check_parity_fields(ctx, enrichment, path, name)
    if enrichment.date_format and "date_format" in spec.uses:
        _check_date_format(ctx, attribute, enrichment, path)
    _check_date_constant(ctx, attribute, enrichment, operand_types, path)
    if "capture" in spec.uses:
        _check_capture(ctx, enrichment, path)


def _check_when(ctx: ValidationContext, enrichment: pb.Enrichment, path: str) -> str | None:
    """Report an unset WHEN; return why event data is unreadable (visit end) or None."""
    if enrichment.when == pb.WHEN_UNSPECIFIED:
        choices = ", ".join(enum_short_names(pb.When.DESCRIPTOR))
        ctx.add(f"{path}.when", f"when is not set; use one of {choices}")
    elif enrichment.when not in pb.When.values():
        ctx.add(f"{path}.when", f"unknown when {enrichment.when}")
    elif enrichment.when == pb.WHEN_VISIT_ENDED:
        return NO_EVENTS_AT_VISIT_END
    return None


def _check_kind(
    ctx: ValidationContext,
    attribute: pb.AttributeDefinition,
    enrichment: pb.Enrichment,
    path: str,
    type_ok: bool,
) -> KindSpec | None:
    """Report an unset/unknown kind or one not applying to the type; the spec if usable."""
    if enrichment.kind == K.ENRICHMENT_KIND_UNSPECIFIED:
        ctx.add(f"{path}.kind", "the kind is not set")
        return None
    spec = KIND_SPECS.get(enrichment.kind)
    if spec is None:
        ctx.add(f"{path}.kind", f"unknown kind {enrichment.kind}")
        return None
    if not type_ok:
        return None
    if attribute.type not in spec.applies_to:
        fitting = [kind_phrase(k) for k, s in KIND_SPECS.items() if attribute.type in s.applies_to]
        type_name = type_phrase(attribute.type)
        hint = f"; {type_name} takes {', '.join(fitting)}" if fitting else ""
        ctx.add(
            f"{path}.kind", f'"{kind_phrase(enrichment.kind)}" does not apply to {type_name}{hint}'
        )
        return None
    return spec


def _check_operands(
    ctx: ValidationContext,
    attribute: pb.AttributeDefinition,
    enrichment: pb.Enrichment,
    spec: KindSpec,
    path: str,
    name: str,
    no_events: str | None,
) -> list[VType | None]:
    specs = spec.operand_specs(attribute.type)
    operands = enrichment.operands
    count = len(operands)
    if spec.repeat_last:
        if count < spec.min_operands:
            ctx.add(
                f"{path}.operands",
                f'"{name}" needs at least {spec.min_operands} operands, got {count}',
            )
        if count > MAX_JOIN_OPERANDS:
            ctx.add(f"{path}.operands", f'"{name}" takes at most {MAX_JOIN_OPERANDS} operands')
    else:
        required = sum(1 for s in specs if s.required)
        if count < required:
            wanted = ", ".join(s.expected for s in specs if s.required)
            plural = "operand" if required == 1 else "operands"
            ctx.add(
                f"{path}.operands", f'"{name}" needs {required} {plural} ({wanted}), got {count}'
            )
        elif count > len(specs):
            if not specs:
                message = f'"{name}" takes no operands, got {count}'
            else:
                plural = "operand" if len(specs) == 1 else "operands"
                message = f'"{name}" takes at most {len(specs)} {plural}, got {count}'
            ctx.add(f"{path}.operands", message)
    types: list[VType | None] = []
    for k, operand in enumerate(operands):
        operand_path = f"{path}.operands[{k}]"
        if spec.repeat_last and specs:
            operand_spec = specs[min(k, len(specs) - 1)]
        elif k < len(specs):
            operand_spec = specs[k]
        else:
            types.append(ctx.operand_type(operand, operand_path, no_events=no_events))
            continue
        types.append(
            ctx.check_operand(operand, operand_path, operand_spec, name, no_events=no_events)
        )
    return types


def _check_optional_fields(
    ctx: ValidationContext, enrichment: pb.Enrichment, spec: KindSpec, path: str, name: str
) -> None:
    present = {
        "key": bool(enrichment.key),
        "delimiter": bool(enrichment.delimiter),
        "date_format": bool(enrichment.date_format),
        "capture": bool(enrichment.capture),
        "required": enrichment.required,
        "unit": enrichment.unit != pb.TIME_UNIT_UNSPECIFIED,
        "occurrence": enrichment.occurrence != pb.OCCURRENCE_UNSPECIFIED,
        "count": enrichment.count != 0,
        "split_values": bool(enrichment.split_values),
    }
    for field, is_set in present.items():
        if is_set and field not in spec.uses:
            users = _FIELD_USERS.get(field, [])
            where = " and ".join(f'"{u}"' for u in users)
            if field == "date_format":
                where = '"set" on a date'
            ctx.add(f"{path}.{field}", f'"{field}" is not used by "{name}"; only by {where}')


def _check_parity_fields(
    ctx: ValidationContext, enrichment: pb.Enrichment, path: str, name: str
) -> None:
    """The fields of SET_DATE_DIFFERENCE and SET_CHANGE_IN_DATE (unit), REMOVE_ENTRIES
    (occurrence), TOP_KEYS (count) and EXPIRE_TIMELINE_ENTRIES (count and unit)."""
    kind = enrichment.kind
    if kind in (
        K.ENRICHMENT_KIND_SET_DATE_DIFFERENCE,
        K.ENRICHMENT_KIND_SET_CHANGE_IN_DATE,
        K.ENRICHMENT_KIND_EXPIRE_TIMELINE_ENTRIES,
    ):
        if enrichment.unit == pb.TIME_UNIT_UNSPECIFIED:
            choices = ", ".join(enum_short_names(pb.TimeUnit.DESCRIPTOR))
            ctx.add(f"{path}.unit", f'"{name}" needs a unit; use one of {choices}')
        elif enrichment.unit not in pb.TimeUnit.values():
            ctx.add(f"{path}.unit", f"unknown unit {enrichment.unit}")
    if kind == K.ENRICHMENT_KIND_REMOVE_ENTRIES and enrichment.occurrence not in (
        pb.Occurrence.values()
    ):
        ctx.add(f"{path}.occurrence", f"unknown occurrence {enrichment.occurrence}")
    if kind == K.ENRICHMENT_KIND_EXPIRE_TIMELINE_ENTRIES and enrichment.count < 1:
        ctx.add(f"{path}.count", f'"{name}" needs a count of at least 1 (the age limit in units)')
    if kind == K.ENRICHMENT_KIND_RANDOM_SPLIT:
        _check_split_values(ctx, enrichment, path, name)
    if kind == K.ENRICHMENT_KIND_TOP_KEYS and not 1 <= enrichment.count <= (
        ctx.max_collection_size
    ):
        ctx.add(
            f"{path}.count",
            f'"{name}" needs a count from 1 to {ctx.max_collection_size} (the collection limit)',
        )


MAX_SPLIT_VALUES = 100
"""Most values of one RANDOM_SPLIT."""


def _check_split_values(
    ctx: ValidationContext, enrichment: pb.Enrichment, path: str, name: str
) -> None:
    """RANDOM_SPLIT's values: 1 to 100, distinct, non-empty, positive shares adding to 100."""
    values = enrichment.split_values
    if not values:
        ctx.add(f"{path}.split_values", f'"{name}" needs split_values (values and percentages)')
        return
    if len(values) > MAX_SPLIT_VALUES:
        ctx.add(f"{path}.split_values", f"at most {MAX_SPLIT_VALUES} values, got {len(values)}")
        return
    seen: set[str] = set()
    for i, item in enumerate(values):
        item_path = f"{path}.split_values[{i}]"
        if not item.value:
            ctx.add(f"{item_path}.value", "the value must not be empty")
        elif item.value in seen:
            ctx.add(f"{item_path}.value", f'"{item.value}" is listed twice')
        elif len(item.value) > ctx.max_string_length:
            ctx.add(f"{item_path}.value", f"longer than {ctx.max_string_length} characters")
        seen.add(item.value)
        if not (math.isfinite(item.percentage) and 0 < item.percentage <= 100):
            ctx.add(f"{item_path}.percentage", "must be more than 0 and at most 100")
    total = sum(item.percentage for item in values)
    if math.isfinite(total) and abs(total - 100) > 1e-6:
        ctx.add(f"{path}.split_values", f"the percentages add up to {total:g}, not 100")


_ROLLING_KINDS = frozenset(
    {
        K.ENRICHMENT_KIND_SET_ROLLING_SUM,
        K.ENRICHMENT_KIND_SET_ROLLING_AVERAGE,
        K.ENRICHMENT_KIND_SET_ROLLING_MAX,
    }
)


def _check_key(ctx: ValidationContext, enrichment: pb.Enrichment, path: str, name: str) -> None:
    rolling = enrichment.kind in _ROLLING_KINDS
    if not enrichment.key:
        if enrichment.kind == K.ENRICHMENT_KIND_FUNNEL_STEP:
            what = "a step id"
        else:
            what = "the captured attribute's id" if rolling else "a tally key"
        ctx.add(f"{path}.key", f'"{name}" needs {what} in "key"')
    elif rolling:
        _check_captured(ctx, enrichment, path)
    elif enrichment.kind == K.ENRICHMENT_KIND_FUNNEL_STEP:
        ctx.check_id_format(enrichment.key, f"{path}.key", "funnel step id")
    elif len(enrichment.key) > ctx.max_string_length:
        ctx.add(f"{path}.key", f"the key is longer than {ctx.max_string_length} characters")


def _check_captured(ctx: ValidationContext, enrichment: pb.Enrichment, path: str) -> None:
    """A rolling aggregate's ``key`` names an attribute its timeline captures."""
    operands = enrichment.operands
    if not operands or operands[0].WhichOneof("source") != "attribute":
        return
    timeline = next((a for a in ctx.definitions.attributes if a.id == operands[0].attribute), None)
    if timeline is None or timeline.type != T.ATTRIBUTE_TYPE_TIMELINE:
        return  # reported with the operand
    captured = sorted({c for e in timeline.enrichments for c in e.capture})
    if enrichment.key not in captured:
        listed = ", ".join(captured) or "nothing"
        ctx.add(
            f"{path}.key",
            f'"{enrichment.key}" is not captured by the timeline "{timeline.id}" '
            f"(it captures {listed})",
        )


def _check_date_format(
    ctx: ValidationContext,
    attribute: pb.AttributeDefinition,
    enrichment: pb.Enrichment,
    path: str,
) -> None:
    if attribute.type != T.ATTRIBUTE_TYPE_DATE and enrichment.kind != K.ENRICHMENT_KIND_FORMAT_DATE:
        ctx.add(f"{path}.date_format", '"date_format" is only used when setting a date')
        return
    check_date_format(ctx, enrichment.date_format, f"{path}.date_format")


def check_date_format(ctx: ValidationContext, pattern: str, path: str) -> None:
    """A strftime pattern: at least one ``%`` directive, and Python must accept it."""
    if len(pattern) > MAX_DATE_FORMAT_LENGTH:
        ctx.add(path, f"a date format has at most {MAX_DATE_FORMAT_LENGTH} characters")
        return
    if "%" not in pattern:
        ctx.add(path, f'"{pattern}" is not a strftime pattern (e.g. "%d/%m/%Y %H:%M")')
        return
    try:
        dt.datetime(2024, 1, 31, 13, 45, 59, tzinfo=dt.UTC).strftime(pattern)
    except ValueError as exc:
        ctx.add(path, f'"{pattern}" is not a valid strftime pattern: {exc}')


def _check_date_constant(
    ctx: ValidationContext,
    attribute: pb.AttributeDefinition,
    enrichment: pb.Enrichment,
    operand_types: list[VType | None],
    path: str,
) -> None:
    """A string constant set into a date must parse as ISO 8601 or with ``date_format``."""
    if attribute.type != T.ATTRIBUTE_TYPE_DATE or enrichment.kind != K.ENRICHMENT_KIND_SET:
        return
    for k, (operand, vtype) in enumerate(zip(enrichment.operands, operand_types, strict=True)):
        if vtype is not VType.STRING or operand.WhichOneof("source") != "constant":
            continue
        text = operand.constant.string_value
        if not parses_as_date(text, enrichment.date_format):
            how = f'with "{enrichment.date_format}"' if enrichment.date_format else "as ISO 8601"
            ctx.add(
                f"{path}.operands[{k}].constant.string_value",
                f'"{text}" does not parse {how}',
            )


def parses_as_date(text: str, date_format: str = "") -> bool:
    """True if ``text`` is an ISO 8601 date/time or matches the strftime ``date_format``."""
    try:
        if date_format:
            dt.datetime.strptime(text, date_format)
        else:
            dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _check_capture(ctx: ValidationContext, enrichment: pb.Enrichment, path: str) -> None:
    seen: set[str] = set()
    for k, attribute_id in enumerate(enrichment.capture):
        capture_path = f"{path}.capture[{k}]"
        if attribute_id in seen:
            ctx.add(capture_path, f'"{attribute_id}" is captured twice')
            continue
        seen.add(attribute_id)
        if not attribute_id:
            ctx.add(capture_path, "the attribute id is empty")
            continue
        ref = ctx.resolve(attribute_id)
        if ref is None:
            ctx.add(capture_path, ctx.unknown_attribute_message(attribute_id))
        elif ref.type in (T.ATTRIBUTE_TYPE_TIMELINE, T.ATTRIBUTE_TYPE_FUNNEL):
            ctx.add(capture_path, f"{type_phrase(ref.type)} cannot be captured")
