"""Enrichments that measure a change since the visitor's previous event: Tealium's "set
number to change in number" and "set number to change in date" (AudienceStream only).

The measured operand is either an attribute, whose previous value is the one it had before
the current event (or visit end), as HAS_CHANGED sees it, or an event field, whose previous
value is the one this enrichment read from the visitor's last event that carried it (kept in
`ProfileState.previous_values`, since events are not stored). Without both values (the
first time, an unassigned attribute, an event without the field) nothing is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.context import Apply, EvalContext
from profile_service.engine.enrichment_dates import UNIT_MS
from profile_service.engine.enrichment_spec import Spec, nothing, save
from profile_service.engine.values import to_date, to_number

Measure = Callable[[EvalContext], tuple[float, float] | None]
"""``(now, before)`` of the operand, or ``None`` when one of them is unknown."""


def memory_key(attribute_id: str, event_field: str) -> str:
    """Where the last value of ``event_field`` read for ``attribute_id`` is remembered."""
    return f"{attribute_id}:{event_field}"


def _measure(spec: Spec, convert: Callable[[Any], float | None]) -> Measure | None:
    if not spec.has_operand(0):
        return None
    operand = spec.enrichment.operands[0]
    read_now = spec.operand(0)
    source = operand.WhichOneof("source")
    if source == "attribute":
        read_before = spec.operands.previous_reader(operand)

        def measure_attribute(c: EvalContext) -> tuple[float, float] | None:
            now = convert(read_now(c))
            before = convert(read_before(c))
            return None if now is None or before is None else (now, before)

        return measure_attribute
    if source == "event":
        key = memory_key(spec.meta.id, operand.event)

        def measure_event(c: EvalContext) -> tuple[float, float] | None:
            now = convert(read_now(c))
            if now is None:
                return None  # no event, or it does not carry the field: nothing to remember
            remembered = c.state.previous_values
            before = remembered.get(key)
            remembered[key] = now
            return None if not isinstance(before, int | float) else (now, float(before))

        return measure_event
    return None  # a constant never changes (the validator refuses it)


def _number(value: Any) -> float | None:
    return to_number(value)


def set_change_in_number(spec: Spec) -> Apply:
    """The number operands[0] now minus its previous value."""
    measure = _measure(spec, _number)
    if measure is None:
        return nothing
    meta = spec.meta

    def change(c: EvalContext) -> None:
        measured = measure(c)
        if measured is not None:
            save(c, meta, measured[0] - measured[1])

    return change


def set_change_in_date(spec: Spec) -> Apply:
    """Whole ``unit``s from the date operands[0]'s previous value to its value now (toward
    zero; negative when it moved back)."""
    formats = spec.formats

    def as_ms(value: Any) -> float | None:
        ms = to_date(value, formats)
        return None if ms is None else float(ms)

    measure = _measure(spec, as_ms)
    if measure is None:
        return nothing
    unit_ms = UNIT_MS.get(spec.enrichment.unit, UNIT_MS[pb.TIME_UNIT_DAYS])
    meta = spec.meta

    def change(c: EvalContext) -> None:
        measured = measure(c)
        if measured is None:
            return
        delta = int(measured[0] - measured[1])
        whole = abs(delta) // unit_ms
        save(c, meta, float(whole if delta >= 0 else -whole))

    return change
