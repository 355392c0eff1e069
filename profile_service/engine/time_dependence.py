"""When can an audience flip without an event? The next instant a date-vs-now condition changes.

Audience conditions that compare a date with *now* (OCCURRED_WITHIN, OCCURRED_BEFORE, and
LESS_THAN / GREATER_THAN of a date against now plus an offset) change their result when time
passes. For each such condition the date it reads from the profile gives the instants where
its result can change (the boundary, and one millisecond later because "exactly N ago" is
neither within nor before). `next_flip_ms` returns the earliest of those after *now*: the
re-evaluation worker re-evaluates the profile then, and the commit computes the next one.

Conditions that read a date from the event are skipped (there is no event then); a date
that an enrichment will change is re-read after that change's commit.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.context import EvalContext, Reader
from profile_service.engine.operators import offset_ms
from profile_service.engine.plan import plan_for
from profile_service.engine.state import ProfileState
from profile_service.engine.values import to_date

__all__ = [
    "TimeProbe",
    "is_time_dependent",
    "next_flip_ms",
    "time_dependent_audiences",
    "time_probes",
]

_ORDERINGS = (
    pb.OPERATOR_LESS_THAN,
    pb.OPERATOR_LESS_THAN_OR_EQUAL,
    pb.OPERATOR_GREATER_THAN,
    pb.OPERATOR_GREATER_THAN_OR_EQUAL,
)


@dataclass(frozen=True, slots=True)
class TimeProbe:
    """One date-vs-now condition: its flip instants are ``date + shift`` and one ms later."""

    read: Reader
    shift_ms: int
    audience_id: str


def _conditions(expression: pb.AudienceExpression) -> Iterator[pb.Condition]:
    node = expression.WhichOneof("node")
    if node in ("all", "any"):
        for item in getattr(expression, node).items:
            yield from _conditions(item)
    elif node == "negate":
        yield from _conditions(expression.negate)
    elif node == "condition":
        yield expression.condition


def _probe(
    condition: pb.Condition, defs: CompiledDefinitions, audience_id: str
) -> TimeProbe | None:
    if condition.input.WhichOneof("source") == "event":
        return None
    operands = plan_for(defs).operands
    operator = condition.operator
    if operator in (pb.OPERATOR_OCCURRED_WITHIN, pb.OPERATOR_OCCURRED_BEFORE):
        # age = now - date crosses the span at now = date + span.
        span = abs(offset_ms(condition.offset))
        return TimeProbe(operands.reader(condition.input), span, audience_id)
    if operator in _ORDERINGS and not condition.HasField("value"):
        date_input = operands.static_type(condition.input) == pb.ATTRIBUTE_TYPE_DATE
        if date_input or condition.HasField("offset"):
            # date compared with now + offset crosses at now = date - offset.
            shift = -offset_ms(condition.offset)
            return TimeProbe(operands.reader(condition.input), shift, audience_id)
    return None


_PROBES: dict[int, tuple[weakref.ref[CompiledDefinitions], tuple[TimeProbe, ...]]] = {}


def time_probes(defs: CompiledDefinitions) -> tuple[TimeProbe, ...]:
    """The date-vs-now conditions of every audience (cached while ``defs`` lives)."""
    key = id(defs)
    entry = _PROBES.get(key)
    if entry is not None and entry[0]() is defs:
        return entry[1]
    probes = tuple(
        probe
        for audience_id, audience in defs.audiences.items()
        for condition in _conditions(audience.expression)
        if (probe := _probe(condition, defs, audience_id)) is not None
    )

    def forget(ref: weakref.ref[CompiledDefinitions], key: int = key) -> None:
        current = _PROBES.get(key)
        if current is not None and current[0] is ref:
            del _PROBES[key]

    _PROBES[key] = (weakref.ref(defs, forget), probes)
    return probes


def is_time_dependent(defs: CompiledDefinitions) -> bool:
    """Whether some audience compares a date with now."""
    return bool(time_probes(defs))


def time_dependent_audiences(defs: CompiledDefinitions) -> frozenset[str]:
    """The audiences with a date-vs-now condition: the only ones time re-evaluates (others,
    e.g. on visit attributes, keep their membership until the next event)."""
    return frozenset(probe.audience_id for probe in time_probes(defs))


def next_flip_ms(defs: CompiledDefinitions, state: ProfileState, now_ms: int) -> int | None:
    """The earliest instant after ``now_ms`` at which a date-vs-now audience condition can
    change its result for ``state`` (``None``: none can, without a new event)."""
    probes = time_probes(defs)
    if not probes:
        return None
    plan = plan_for(defs)
    c = EvalContext(state, None, now_ms, now_ms, plan.limits)
    formats = plan.limits.date_formats
    earliest: int | None = None
    for probe in probes:
        date = to_date(probe.read(c), formats)
        if date is None:
            continue
        for instant in (date + probe.shift_ms, date + probe.shift_ms + 1):
            if instant > now_ms and (earliest is None or instant < earliest):
                earliest = instant
    return earliest
