"""Enrichments that record history: UPDATE_TIMELINE and FUNNEL_STEP (with their captures), and
the ones that read or expire timeline entries."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.context import Apply, EvalContext, Reader
from profile_service.engine.enrichment_dates import UNIT_MS
from profile_service.engine.enrichment_spec import Spec, nothing, save
from profile_service.engine.values import (
    MISSING,
    TIMELINE_MAX_AGE_MS,
    timeline_limit,
    trim_newest,
)


def _capture_readers(spec: Spec) -> tuple[tuple[str, Reader], ...]:
    return tuple(
        (attribute_id, spec.operands.attribute_reader(attribute_id, missing=MISSING))
        for attribute_id in spec.enrichment.capture
    )


def _snapshot(c: EvalContext, captures: tuple[tuple[str, Reader], ...]) -> dict[str, Any]:
    snapshot: dict[str, Any] = {}
    for attribute_id, read in captures:
        value = read(c)
        if value is not MISSING and value is not None:
            snapshot[attribute_id] = value
    return snapshot


def _timeline_entries(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return []
    return [
        entry
        for entry in value
        if isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], int)
        and isinstance(entry[1], dict)
    ]


def _funnel_steps(value: Any) -> list[Any] | None:
    """The recorded steps of a funnel value, ``None`` once it is completed."""
    if not isinstance(value, dict):
        return []
    if value.get("completed"):
        return None
    steps = value.get("steps")
    if not isinstance(steps, list):
        return []
    return [
        step
        for step in steps
        if isinstance(step, list) and len(step) == 3 and isinstance(step[0], str)
    ]


def update_timeline(spec: Spec) -> Apply:
    captures = _capture_readers(spec)
    meta = spec.meta
    limit = timeline_limit(spec.limits)

    def update(c: EvalContext) -> None:
        entries = _timeline_entries(c.get(meta))
        time_ms = c.event_time_ms
        entry = [time_ms, _snapshot(c, captures)]
        if entries and entries[-1][0] > time_ms:
            entries.append(entry)
            entries.sort(key=lambda e: e[0])  # stable: equal times keep arrival order
        else:
            entries.append(entry)
        horizon = entries[-1][0] - TIMELINE_MAX_AGE_MS
        entries = [e for e in entries if e[0] >= horizon]
        c.put(meta, trim_newest(entries, limit))

    return update


def funnel_step(spec: Spec) -> Apply:
    steps = [e for e in spec.attribute.enrichments if e.kind == pb.ENRICHMENT_KIND_FUNNEL_STEP]
    order = {e.key: index for index, e in reversed(list(enumerate(steps)))}
    required = [e.required for e in steps]
    if required:
        required[-1] = True  # the last step is always required
    key = spec.enrichment.key
    index = order.get(key)
    if index is None:
        return nothing
    last_index = len(steps) - 1
    captures = _capture_readers(spec)
    meta = spec.meta

    def record(c: EvalContext) -> None:
        recorded = _funnel_steps(c.get(meta))
        if recorded is None:
            return  # completed
        latest = order.get(recorded[-1][0], -1) if recorded else -1
        if index <= latest:
            return  # already recorded, or an earlier step: no back-fill
        if any(required[between] for between in range(latest + 1, index)):
            return  # a required step in between is missing: out of sequence
        step = [key, c.event_time_ms, _snapshot(c, captures)]
        c.put(meta, {"steps": [*recorded, step], "completed": index == last_index})

    return record


def _captured_numbers(entries: list[Any], key: str) -> list[float]:
    numbers: list[float] = []
    for _time, snapshot in entries:
        value = snapshot.get(key)
        if isinstance(value, float) and math.isfinite(value):
            numbers.append(value)
    return numbers


def _captured_tallies(entries: list[Any], key: str) -> list[dict[str, float]]:
    tallies: list[dict[str, float]] = []
    for _time, snapshot in entries:
        value = snapshot.get(key)
        if isinstance(value, dict):
            tallies.append(
                {k: n for k, n in value.items() if isinstance(n, float) and math.isfinite(n)}
            )
    return tallies


def _key_wise(
    aggregate: Callable[[list[float]], float | None], tallies: list[dict[str, float]]
) -> dict[str, float]:
    """Each key's aggregate over the tallies; an average divides by every tally (a key a
    tally lacks counts 0 there)."""
    keys = sorted({key for tally in tallies for key in tally})
    result: dict[str, float] = {}
    for key in keys:
        if aggregate is rolling_average:
            numbers = [tally.get(key, 0.0) for tally in tallies]
        else:
            numbers = [tally[key] for tally in tallies if key in tally]
        value = aggregate(numbers)
        if value is not None:
            result[key] = value
    return result


def rolling(aggregate: Callable[[list[float]], float | None]) -> Callable[[Spec], Apply]:
    """SET_ROLLING_SUM / _AVERAGE / _MAX: a number from the numbers captured as ``key`` in a
    timeline's entries (expired entries are gone from the timeline already); on a tally,
    key by key over the tallies captured as ``key``."""

    def factory(spec: Spec) -> Apply:
        read = spec.operand(0)
        key = spec.enrichment.key
        meta = spec.meta
        on_tally = meta.is_tally

        def compute(c: EvalContext) -> None:
            value = read(c)
            if value is MISSING:
                return
            entries = _timeline_entries(value)
            if on_tally:
                save(c, meta, _key_wise(aggregate, _captured_tallies(entries, key)))
                return
            result = aggregate(_captured_numbers(entries, key))
            if result is not None:
                save(c, meta, result)

        return compute

    return factory


def rolling_sum(numbers: list[float]) -> float | None:
    return float(sum(numbers))


def rolling_average(numbers: list[float]) -> float | None:
    return sum(numbers) / len(numbers) if numbers else None


def rolling_max(numbers: list[float]) -> float | None:
    return max(numbers) if numbers else None


def expire_timeline_entries(spec: Spec) -> Apply:
    """Drop the entries older than ``count`` ``unit``s before the event (or the visit end)."""
    meta = spec.meta
    max_age_ms = spec.enrichment.count * UNIT_MS.get(
        spec.enrichment.unit, UNIT_MS[pb.TIME_UNIT_DAYS]
    )
    if max_age_ms <= 0:
        return nothing

    def expire(c: EvalContext) -> None:
        entries = _timeline_entries(c.get(meta))
        cutoff = c.event_time_ms - max_age_ms
        kept = [entry for entry in entries if entry[0] >= cutoff]
        if len(kept) != len(entries):
            c.put(meta, kept)

    return expire
