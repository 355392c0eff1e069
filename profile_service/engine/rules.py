"""Rules (OR of AND-groups) and audience expressions (all / any / negate / condition).

An empty rule (no groups) matches everything; an empty group matches everything; an
empty ``all`` is true and an empty ``any`` is false (the usual identities). An expression
with no node set never matches.
"""

from __future__ import annotations

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.context import EvalContext, Predicate
from profile_service.engine.operands import OperandCompiler
from profile_service.engine.operators import compile_condition


def _always(_c: EvalContext) -> bool:
    return True


def _never(_c: EvalContext) -> bool:
    return False


def _all(predicates: tuple[Predicate, ...]) -> Predicate:
    if not predicates:
        return _always
    if len(predicates) == 1:
        return predicates[0]

    # A plain loop: these run for every rule of every event, and a generator inside all()
    # costs more than the predicates themselves.
    def all_match(c: EvalContext) -> bool:
        for predicate in predicates:  # noqa: SIM110 (see above: no generator)
            if not predicate(c):
                return False
        return True

    return all_match


def _any(predicates: tuple[Predicate, ...]) -> Predicate:
    if not predicates:
        return _never
    if len(predicates) == 1:
        return predicates[0]

    def any_matches(c: EvalContext) -> bool:
        for predicate in predicates:  # noqa: SIM110 (see above: no generator)
            if predicate(c):
                return True
        return False

    return any_matches


def compile_rule(
    rule: pb.Rule, operands: OperandCompiler, formats: tuple[str, ...]
) -> Predicate | None:
    """Compile a rule; ``None`` means "no rule" (always matches), so callers skip the call."""
    if not rule.groups:
        return None
    groups = tuple(
        _all(tuple(compile_condition(cond, operands, formats) for cond in group.conditions))
        for group in rule.groups
    )
    return _any(groups)


def compile_expression(
    expression: pb.AudienceExpression, operands: OperandCompiler, formats: tuple[str, ...]
) -> Predicate:
    """Compile an audience expression tree."""
    node = expression.WhichOneof("node")
    if node == "all":
        return _all(tuple(compile_expression(e, operands, formats) for e in expression.all.items))
    if node == "any":
        return _any(tuple(compile_expression(e, operands, formats) for e in expression.any.items))
    if node == "negate":
        inner = compile_expression(expression.negate, operands, formats)
        return lambda c: not inner(c)
    if node == "condition":
        return compile_condition(expression.condition, operands, formats)
    return _never
