"""Enrichments: compiling each ``crowd.profile.v1.Enrichment`` into a write on the profile.

Common rules (documented for the README):

- An operand with no value (absent event field, unassigned attribute, no event at visit
  end) makes the enrichment do nothing; so does a value of the wrong type (a string that is
  not a number for INCREMENT, a list for a string SET...). Nothing ever raises.
- An explicit null (an event field sent as null, a null constant) makes SET remove the
  value (except for visitor IDs, which are never removed by SET).
- Numbers must stay finite; dividing by zero saves nothing.
- A string longer than ``max_string_length`` is not saved (the old value stays); the trace
  says so. The same applies to each string added to a set, array or tally key.
- Arrays keep their newest ``max_collection_size`` items. Sets over the limit keep their
  alphabetically first entries and take new strings only while there is room; tallies
  take new keys only while there is room (existing keys still count up).
- Timelines keep their newest 100 entries (or ``max_collection_size`` if smaller) and drop
  entries more than 365 days older than the newest one.
- A visitor ID is set only while unassigned (it never changes once set).
- SET_SIZE of an unassigned collection is 0.
- INCREMENT_TALLY with a list key increments every item; the favourite's tie-break is the
  most recently incremented key (the last item of such a list).
- FUNNEL_STEP: steps are the attribute's FUNNEL_STEP enrichments in document order, the
  last one always required. A step is recorded once, only after every earlier required
  step and never before the latest recorded step (no back-fill); recording the last step
  completes the funnel, after which nothing changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import EngineLimits
from profile_service.engine.context import Apply, AttributeMeta, EvalContext, Predicate, Reader
from profile_service.engine.operands import OperandCompiler
from profile_service.engine.values import (
    MISSING,
    TIMELINE_MAX_AGE_MS,
    timeline_limit,
    to_bool,
    to_bool_list,
    to_date,
    to_number,
    to_number_list,
    to_string,
    to_string_list,
    to_string_set,
    to_tally,
    trim_newest,
)

_STRING_TYPES = (pb.ATTRIBUTE_TYPE_STRING, pb.ATTRIBUTE_TYPE_VISITOR_ID)
_ARRAY_TYPES = (
    pb.ATTRIBUTE_TYPE_STRING_ARRAY,
    pb.ATTRIBUTE_TYPE_NUMBER_ARRAY,
    pb.ATTRIBUTE_TYPE_BOOLEAN_ARRAY,
)


@dataclass(frozen=True, slots=True)
class EnrichmentStep:
    """One compiled enrichment, ready to run."""

    path: str
    attribute_id: str
    when: int
    rule: Predicate | None
    apply: Apply


@dataclass(frozen=True, slots=True)
class _Spec:
    """What an enrichment factory compiles from."""

    meta: AttributeMeta
    enrichment: pb.Enrichment
    attribute: pb.AttributeDefinition
    operands: OperandCompiler
    limits: EngineLimits
    formats: tuple[str, ...]

    def operand(self, index: int) -> Reader:
        """Reader of operands[index] (`MISSING` when absent or without a value)."""
        if index >= len(self.enrichment.operands):
            return lambda _c: MISSING
        return self.operands.reader(self.enrichment.operands[index], missing=MISSING)

    def has_operand(self, index: int) -> bool:
        """True if operands[index] is given."""
        return index < len(self.enrichment.operands)


# --- saving with limits ------------------------------------------------------------------------


def _fits(c: EvalContext, meta: AttributeMeta, text: str) -> bool:
    limit = c.limits.max_string_length
    if len(text) <= limit:
        return True
    c.note(f"{meta.id}: a string of {len(text)} characters is longer than {limit}; not saved")
    return False


def _save(c: EvalContext, meta: AttributeMeta, value: Any) -> None:
    """Store a coerced value of ``meta``'s type, enforcing limits."""
    kind = meta.type
    if isinstance(value, str):
        if not _fits(c, meta, value):
            return
        if kind == pb.ATTRIBUTE_TYPE_VISITOR_ID:
            current = c.get(meta)
            if current is not MISSING and current != value:
                return  # a visitor ID never changes once set
    elif isinstance(value, float):
        if not math.isfinite(value):
            return
    elif isinstance(value, list):
        limit = c.limits.max_collection_size
        if kind == pb.ATTRIBUTE_TYPE_STRING_SET:
            value = value[:limit]
        elif kind in _ARRAY_TYPES:
            value = trim_newest(value, limit)
        if kind in (pb.ATTRIBUTE_TYPE_STRING_SET, pb.ATTRIBUTE_TYPE_STRING_ARRAY):
            value = [item for item in value if _fits(c, meta, item)]
    elif isinstance(value, dict) and kind == pb.ATTRIBUTE_TYPE_TALLY:
        limit = c.limits.max_collection_size
        if len(value) > limit:
            value = dict(list(value.items())[:limit])
        touched = c.state.tally_touched.get(meta.id)
        c.put(meta, value)
        if touched:
            # Recency of keys that are gone is meaningless.
            c.state.tally_touched[meta.id] = {k: s for k, s in touched.items() if k in value}
        return
    c.put(meta, value)


# --- factories ------------------------------------------------------------------------------

Factory = Callable[[_Spec], Apply]


def _nothing(_c: EvalContext) -> None:
    return None


def _step(sign: float) -> Factory:
    def factory(spec: _Spec) -> Apply:
        read = spec.operand(0)
        meta = spec.meta

        def increment(c: EvalContext) -> None:
            amount = to_number(read(c))
            if amount is None:
                return
            current = to_number(c.get(meta)) or 0.0
            _save(c, meta, current + sign * amount)

        return increment

    return factory


def _coercer(spec: _Spec) -> Callable[[Any], Any] | None:
    kind = spec.meta.type
    formats = spec.formats
    if kind == pb.ATTRIBUTE_TYPE_NUMBER:
        return to_number
    if kind in _STRING_TYPES:
        return to_string
    if kind == pb.ATTRIBUTE_TYPE_BOOLEAN:
        return to_bool
    if kind == pb.ATTRIBUTE_TYPE_DATE:
        return lambda value: to_date(value, formats)
    if kind == pb.ATTRIBUTE_TYPE_STRING_ARRAY:
        return to_string_list
    if kind == pb.ATTRIBUTE_TYPE_NUMBER_ARRAY:
        return to_number_list
    if kind == pb.ATTRIBUTE_TYPE_BOOLEAN_ARRAY:
        return to_bool_list
    if kind == pb.ATTRIBUTE_TYPE_STRING_SET:
        return to_string_set
    if kind == pb.ATTRIBUTE_TYPE_TALLY:
        return to_tally
    if kind == pb.ATTRIBUTE_TYPE_BADGE:
        return to_bool
    return None


def _set(spec: _Spec) -> Apply:
    read = spec.operand(0)
    meta = spec.meta
    coerce = _coercer(spec)
    if coerce is None:
        return _nothing
    is_badge = meta.is_badge
    removable = meta.type != pb.ATTRIBUTE_TYPE_VISITOR_ID

    def set_value(c: EvalContext) -> None:
        value = read(c)
        if value is MISSING:
            return
        if value is None:
            if removable:
                c.remove(meta)
            return
        coerced = coerce(value)
        if coerced is None:
            return
        if is_badge:
            if coerced:
                c.put(meta, True)
            else:
                c.remove(meta)
            return
        _save(c, meta, coerced)

    return set_value


def _arithmetic(combine: Callable[[float, float], float | None]) -> Factory:
    def factory(spec: _Spec) -> Apply:
        left, right = spec.operand(0), spec.operand(1)
        meta = spec.meta

        def compute(c: EvalContext) -> None:
            a = to_number(left(c))
            if a is None:
                return
            b = to_number(right(c))
            if b is None:
                return
            result = combine(a, b)
            if result is None:
                c.note(f"{meta.id}: division by zero; not saved")
                return
            _save(c, meta, result)

        return compute

    return factory


def _ratio(a: float, b: float) -> float | None:
    return a / b if b != 0 else None


def _set_size(spec: _Spec) -> Apply:
    read = spec.operand(0)
    meta = spec.meta

    def size(c: EvalContext) -> None:
        value = read(c)
        if value is MISSING or value is None:
            _save(c, meta, 0.0)
        elif isinstance(value, list | dict):
            _save(c, meta, float(len(value)))

    return size


def _lowercase(spec: _Spec) -> Apply:
    meta = spec.meta

    def lowercase(c: EvalContext) -> None:
        current = c.get(meta)
        if isinstance(current, str):
            lowered = current.lower()
            if lowered != current:
                _save(c, meta, lowered)

    return lowercase


def _join(spec: _Spec) -> Apply:
    readers = tuple(spec.operand(i) for i in range(len(spec.enrichment.operands)))
    delimiter = spec.enrichment.delimiter
    meta = spec.meta

    def join(c: EvalContext) -> None:
        parts: list[str] = []
        for read in readers:
            value = read(c)
            if isinstance(value, list):
                parts.extend(text for item in value if (text := to_string(item)) is not None)
            elif (text := to_string(value)) is not None:
                parts.append(text)
        if parts:
            _save(c, meta, delimiter.join(parts))

    return join


def _remove(spec: _Spec) -> Apply:
    meta = spec.meta
    return lambda c: c.remove(meta)


def _constant(value: Any) -> Factory:
    def factory(spec: _Spec) -> Apply:
        meta = spec.meta
        return lambda c: c.put(meta, value)

    return factory


def _capture_date(spec: _Spec) -> Apply:
    meta = spec.meta
    return lambda c: c.put(meta, c.event_time_ms)


def _add_to_tally(c: EvalContext, meta: AttributeMeta, keys: list[str], amount: float) -> None:
    current = c.get(meta)
    # Counts are always floats; anything else was stored under an earlier type: dropped.
    tally: dict[str, float] = (
        {k: n for k, n in current.items() if type(n) is float} if isinstance(current, dict) else {}
    )
    limit = c.limits.max_collection_size
    c.begin(meta)  # before recency changes, so the favourite before the event is known
    touched = c.state.tally_touched.setdefault(meta.id, {})
    changed = False
    for key in keys:
        if not key or not _fits(c, meta, key):
            continue
        if key not in tally and len(tally) >= limit:
            c.note(f"{meta.id}: tally is full ({limit} keys); key not added")
            continue
        count = tally.get(key, 0.0) + amount
        if not math.isfinite(count):
            continue
        tally[key] = count
        c.state.sequence += 1
        touched[key] = c.state.sequence
        changed = True
    if changed:
        c.put(meta, tally)
    elif not touched:
        del c.state.tally_touched[meta.id]


def _increment_tally(spec: _Spec) -> Apply:
    read_key = spec.operand(0)
    read_amount = spec.operand(1) if spec.has_operand(1) else None
    meta = spec.meta

    def increment(c: EvalContext) -> None:
        keys = to_string_list(read_key(c))
        if not keys:
            return
        amount = 1.0 if read_amount is None else to_number(read_amount(c))
        if amount is not None:
            _add_to_tally(c, meta, keys, amount)

    return increment


def _increment_tally_key(spec: _Spec) -> Apply:
    keys = [spec.enrichment.key]
    read_amount = spec.operand(0) if spec.has_operand(0) else None
    meta = spec.meta

    def increment(c: EvalContext) -> None:
        amount = 1.0 if read_amount is None else to_number(read_amount(c))
        if amount is not None:
            _add_to_tally(c, meta, keys, amount)

    return increment


def _remove_tally_key(spec: _Spec) -> Apply:
    key = spec.enrichment.key
    meta = spec.meta

    def remove_key(c: EvalContext) -> None:
        current = c.get(meta)
        if isinstance(current, dict) and key in current:
            c.begin(meta)
            c.put(meta, {k: n for k, n in current.items() if k != key})
            c.state.tally_touched.get(meta.id, {}).pop(key, None)

    return remove_key


def _add_to_set(spec: _Spec) -> Apply:
    read = spec.operand(0)
    meta = spec.meta

    def add(c: EvalContext) -> None:
        items = to_string_list(read(c))
        if items is None:
            return
        current = c.get(meta)
        present = set(to_string_list(current) or ())
        room = c.limits.max_collection_size - len(present)
        added: set[str] = set()
        for item in items:
            if item in present or item in added or not _fits(c, meta, item):
                continue
            if room <= 0:
                c.note(f"{meta.id}: set is full ({c.limits.max_collection_size}); not added")
                break
            added.add(item)
            room -= 1
        if added:
            c.put(meta, sorted(present | added))

    return add


def _remove_from_set(spec: _Spec) -> Apply:
    read = spec.operand(0)
    meta = spec.meta

    def remove_items(c: EvalContext) -> None:
        items = to_string_list(read(c))
        current = c.get(meta)
        if not items or not isinstance(current, list):
            return
        drop = set(items)
        kept = [member for member in current if isinstance(member, str) and member not in drop]
        if len(kept) != len(current):
            c.put(meta, kept)

    return remove_items


def _store_as_set(spec: _Spec) -> Apply:
    read = spec.operand(0)
    meta = spec.meta

    def store(c: EvalContext) -> None:
        members = to_string_set(read(c))
        if members is not None:
            _save(c, meta, members)

    return store


def _append(spec: _Spec) -> Apply:
    read = spec.operand(0)
    meta = spec.meta
    kind = meta.type
    if kind == pb.ATTRIBUTE_TYPE_STRING_SET:
        return _add_to_set(spec)
    coerce: Callable[[Any], list[Any] | None]
    if kind == pb.ATTRIBUTE_TYPE_STRING_ARRAY:
        coerce = to_string_list
    elif kind == pb.ATTRIBUTE_TYPE_NUMBER_ARRAY:
        coerce = to_number_list
    elif kind == pb.ATTRIBUTE_TYPE_BOOLEAN_ARRAY:
        coerce = to_bool_list
    else:
        return _nothing

    def append(c: EvalContext) -> None:
        items = coerce(read(c))
        if not items:
            return
        # Coercing the stored list too drops items stored under an earlier type.
        current = coerce(c.get(meta)) or []
        _save(c, meta, current + items)

    return append


def _reset(spec: _Spec) -> Apply:
    meta = spec.meta
    empty: Callable[[], Any]
    if meta.type == pb.ATTRIBUTE_TYPE_TALLY:
        empty = dict
    elif meta.type in (*_ARRAY_TYPES, pb.ATTRIBUTE_TYPE_STRING_SET, pb.ATTRIBUTE_TYPE_TIMELINE):
        empty = list
    else:
        return _nothing

    def reset(c: EvalContext) -> None:
        if c.get(meta) != empty():
            c.put(meta, empty())
            if meta.is_tally:
                c.state.tally_touched.pop(meta.id, None)

    return reset


def _capture_readers(spec: _Spec) -> tuple[tuple[str, Reader], ...]:
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


def _update_timeline(spec: _Spec) -> Apply:
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


def _funnel_step(spec: _Spec) -> Apply:
    steps = [e for e in spec.attribute.enrichments if e.kind == pb.ENRICHMENT_KIND_FUNNEL_STEP]
    order = {e.key: index for index, e in reversed(list(enumerate(steps)))}
    required = [e.required for e in steps]
    if required:
        required[-1] = True  # the last step is always required
    key = spec.enrichment.key
    index = order.get(key)
    if index is None:
        return _nothing
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


_NUMBER = frozenset({pb.ATTRIBUTE_TYPE_NUMBER})
_COLLECTIONS = frozenset(
    {
        *_ARRAY_TYPES,
        pb.ATTRIBUTE_TYPE_STRING_SET,
        pb.ATTRIBUTE_TYPE_TALLY,
        pb.ATTRIBUTE_TYPE_TIMELINE,
    }
)
_APPLIES_TO: dict[int, frozenset[int]] = {
    pb.ENRICHMENT_KIND_INCREMENT: _NUMBER,
    pb.ENRICHMENT_KIND_DECREMENT: _NUMBER,
    pb.ENRICHMENT_KIND_SET: frozenset(pb.AttributeType.values())
    - {pb.ATTRIBUTE_TYPE_TIMELINE, pb.ATTRIBUTE_TYPE_FUNNEL},
    pb.ENRICHMENT_KIND_SET_SUM: _NUMBER,
    pb.ENRICHMENT_KIND_SET_DIFFERENCE: _NUMBER,
    pb.ENRICHMENT_KIND_SET_PRODUCT: _NUMBER,
    pb.ENRICHMENT_KIND_SET_RATIO: _NUMBER,
    pb.ENRICHMENT_KIND_SET_SIZE: _NUMBER,
    pb.ENRICHMENT_KIND_LOWERCASE: frozenset({pb.ATTRIBUTE_TYPE_STRING}),
    pb.ENRICHMENT_KIND_JOIN: frozenset({pb.ATTRIBUTE_TYPE_STRING}),
    pb.ENRICHMENT_KIND_REMOVE: frozenset(pb.AttributeType.values()),
    pb.ENRICHMENT_KIND_SET_TRUE: frozenset({pb.ATTRIBUTE_TYPE_BOOLEAN}),
    pb.ENRICHMENT_KIND_SET_FALSE: frozenset({pb.ATTRIBUTE_TYPE_BOOLEAN}),
    pb.ENRICHMENT_KIND_CAPTURE_DATE: frozenset({pb.ATTRIBUTE_TYPE_DATE}),
    pb.ENRICHMENT_KIND_ASSIGN_BADGE: frozenset({pb.ATTRIBUTE_TYPE_BADGE}),
    pb.ENRICHMENT_KIND_REMOVE_BADGE: frozenset({pb.ATTRIBUTE_TYPE_BADGE}),
    pb.ENRICHMENT_KIND_INCREMENT_TALLY: frozenset({pb.ATTRIBUTE_TYPE_TALLY}),
    pb.ENRICHMENT_KIND_INCREMENT_TALLY_KEY: frozenset({pb.ATTRIBUTE_TYPE_TALLY}),
    pb.ENRICHMENT_KIND_REMOVE_TALLY_KEY: frozenset({pb.ATTRIBUTE_TYPE_TALLY}),
    pb.ENRICHMENT_KIND_ADD_TO_SET: frozenset({pb.ATTRIBUTE_TYPE_STRING_SET}),
    pb.ENRICHMENT_KIND_REMOVE_FROM_SET: frozenset({pb.ATTRIBUTE_TYPE_STRING_SET}),
    pb.ENRICHMENT_KIND_STORE_AS_SET: frozenset({pb.ATTRIBUTE_TYPE_STRING_SET}),
    pb.ENRICHMENT_KIND_APPEND: frozenset({*_ARRAY_TYPES, pb.ATTRIBUTE_TYPE_STRING_SET}),
    pb.ENRICHMENT_KIND_RESET: _COLLECTIONS,
    pb.ENRICHMENT_KIND_UPDATE_TIMELINE: frozenset({pb.ATTRIBUTE_TYPE_TIMELINE}),
    pb.ENRICHMENT_KIND_FUNNEL_STEP: frozenset({pb.ATTRIBUTE_TYPE_FUNNEL}),
}
"""The attribute types each kind applies to; elsewhere it compiles to a no-op (the
validator refuses such documents; the engine must still never store a mistyped value)."""

_FACTORIES: dict[int, Factory] = {
    pb.ENRICHMENT_KIND_INCREMENT: _step(1.0),
    pb.ENRICHMENT_KIND_DECREMENT: _step(-1.0),
    pb.ENRICHMENT_KIND_SET: _set,
    pb.ENRICHMENT_KIND_SET_SUM: _arithmetic(lambda a, b: a + b),
    pb.ENRICHMENT_KIND_SET_DIFFERENCE: _arithmetic(lambda a, b: a - b),
    pb.ENRICHMENT_KIND_SET_PRODUCT: _arithmetic(lambda a, b: a * b),
    pb.ENRICHMENT_KIND_SET_RATIO: _arithmetic(_ratio),
    pb.ENRICHMENT_KIND_SET_SIZE: _set_size,
    pb.ENRICHMENT_KIND_LOWERCASE: _lowercase,
    pb.ENRICHMENT_KIND_JOIN: _join,
    pb.ENRICHMENT_KIND_REMOVE: _remove,
    pb.ENRICHMENT_KIND_SET_TRUE: _constant(True),
    pb.ENRICHMENT_KIND_SET_FALSE: _constant(False),
    pb.ENRICHMENT_KIND_CAPTURE_DATE: _capture_date,
    pb.ENRICHMENT_KIND_ASSIGN_BADGE: _constant(True),
    pb.ENRICHMENT_KIND_REMOVE_BADGE: _remove,
    pb.ENRICHMENT_KIND_INCREMENT_TALLY: _increment_tally,
    pb.ENRICHMENT_KIND_INCREMENT_TALLY_KEY: _increment_tally_key,
    pb.ENRICHMENT_KIND_REMOVE_TALLY_KEY: _remove_tally_key,
    pb.ENRICHMENT_KIND_ADD_TO_SET: _add_to_set,
    pb.ENRICHMENT_KIND_REMOVE_FROM_SET: _remove_from_set,
    pb.ENRICHMENT_KIND_STORE_AS_SET: _store_as_set,
    pb.ENRICHMENT_KIND_APPEND: _append,
    pb.ENRICHMENT_KIND_RESET: _reset,
    pb.ENRICHMENT_KIND_UPDATE_TIMELINE: _update_timeline,
    pb.ENRICHMENT_KIND_FUNNEL_STEP: _funnel_step,
}


def compile_enrichment(
    meta: AttributeMeta,
    attribute: pb.AttributeDefinition,
    enrichment: pb.Enrichment,
    path: str,
    operands: OperandCompiler,
    rule: Predicate | None,
    limits: EngineLimits,
) -> EnrichmentStep:
    """Compile one enrichment of ``attribute`` (an unknown kind compiles to a no-op)."""
    formats = ((enrichment.date_format,) if enrichment.date_format else ()) + limits.date_formats
    spec = _Spec(meta, enrichment, attribute, operands, limits, formats)
    factory = _FACTORIES.get(enrichment.kind)
    applies = meta.type in _APPLIES_TO.get(enrichment.kind, frozenset())
    apply = factory(spec) if factory is not None and applies else _nothing
    return EnrichmentStep(path, meta.id, enrichment.when, rule, apply)
