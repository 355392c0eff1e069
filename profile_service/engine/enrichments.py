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
- SET_CHANGE_IN_NUMBER / SET_CHANGE_IN_DATE: the operand now minus its value at the
  visitor's previous event (see `enrichment_changes`); nothing without both.
- INCREMENT_TALLY with a list key increments every item; the favourite's tie-break is the
  most recently incremented key (the last item of such a list).
- FUNNEL_STEP: steps are the attribute's FUNNEL_STEP enrichments in document order, the
  last one always required. A step is recorded once, only after every earlier required
  step and never before the latest recorded step (no back-fill); recording the last step
  completes the funnel, after which nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import EngineLimits
from profile_service.engine.context import Apply, AttributeMeta, EvalContext, Predicate
from profile_service.engine.enrichment_changes import set_change_in_date, set_change_in_number
from profile_service.engine.enrichment_collections import (
    add_to_set,
    append,
    increment_tally,
    increment_tally_by_tally,
    increment_tally_key,
    remove_entries,
    remove_from_set,
    remove_tally_key,
    reset,
    set_to_difference,
    split,
    store_as_set,
    top_keys,
)
from profile_service.engine.enrichment_dates import format_date, set_date_difference
from profile_service.engine.enrichment_random_split import random_split
from profile_service.engine.enrichment_spec import (
    ARRAY_TYPES,
    STRING_TYPES,
    Factory,
    Spec,
    nothing,
    save,
)
from profile_service.engine.enrichment_tally_reads import (
    keys_above,
    set_tally_from_arrays,
    set_to_tally_value,
)
from profile_service.engine.enrichment_timelines import (
    expire_timeline_entries,
    funnel_step,
    rolling,
    rolling_average,
    rolling_max,
    rolling_sum,
    update_timeline,
)
from profile_service.engine.operands import OperandCompiler
from profile_service.engine.values import (
    MISSING,
    to_bool,
    to_bool_list,
    to_date,
    to_number,
    to_number_list,
    to_string,
    to_string_list,
    to_string_set,
    to_tally,
)


@dataclass(frozen=True, slots=True)
class EnrichmentStep:
    """One compiled enrichment, ready to run."""

    path: str
    attribute_id: str
    when: int
    rule: Predicate | None
    apply: Apply


# --- scalar factories ----------------------------------------------------------------------


def _step(sign: float) -> Factory:
    def factory(spec: Spec) -> Apply:
        read = spec.operand(0)
        meta = spec.meta

        def increment(c: EvalContext) -> None:
            amount = to_number(read(c))
            if amount is None:
                return
            current = to_number(c.get(meta)) or 0.0
            save(c, meta, current + sign * amount)

        return increment

    return factory


def _coercer(spec: Spec) -> Callable[[Any], Any] | None:
    kind = spec.meta.type
    formats = spec.formats
    if kind == pb.ATTRIBUTE_TYPE_NUMBER:
        return to_number
    if kind in STRING_TYPES:
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


def _set(spec: Spec) -> Apply:
    read = spec.operand(0)
    meta = spec.meta
    coerce = _coercer(spec)
    if coerce is None:
        return nothing
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
        save(c, meta, coerced)

    return set_value


def _arithmetic(combine: Callable[[float, float], float | None]) -> Factory:
    def factory(spec: Spec) -> Apply:
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
            save(c, meta, result)

        return compute

    return factory


def _ratio(a: float, b: float) -> float | None:
    return a / b if b != 0 else None


def _set_size(spec: Spec) -> Apply:
    read = spec.operand(0)
    meta = spec.meta

    def size(c: EvalContext) -> None:
        value = read(c)
        if value is MISSING or value is None:
            save(c, meta, 0.0)
        elif isinstance(value, list | dict):
            save(c, meta, float(len(value)))

    return size


def _lowercase(spec: Spec) -> Apply:
    meta = spec.meta

    is_set = meta.type == pb.ATTRIBUTE_TYPE_STRING_SET

    def lowercase(c: EvalContext) -> None:
        current = c.get(meta)
        if isinstance(current, str):
            lowered = current.lower()
            if lowered != current:
                save(c, meta, lowered)
        elif isinstance(current, list):
            items = [item.lower() if isinstance(item, str) else item for item in current]
            if is_set:
                items = sorted(set(items))  # "A" and "a" become one entry
            if items != current:
                save(c, meta, items)

    return lowercase


def _join(spec: Spec) -> Apply:
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
            save(c, meta, delimiter.join(parts))

    return join


def _remove(spec: Spec) -> Apply:
    meta = spec.meta
    return lambda c: c.remove(meta)


def _constant(value: Any) -> Factory:
    def factory(spec: Spec) -> Apply:
        meta = spec.meta
        return lambda c: c.put(meta, value)

    return factory


def _capture_date(spec: Spec) -> Apply:
    meta = spec.meta
    return lambda c: c.put(meta, c.event_time_ms)


_NUMBER = frozenset({pb.ATTRIBUTE_TYPE_NUMBER})
_NUMBER_OR_TALLY = frozenset({pb.ATTRIBUTE_TYPE_NUMBER, pb.ATTRIBUTE_TYPE_TALLY})
_COLLECTIONS = frozenset(
    {
        *ARRAY_TYPES,
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
    pb.ENRICHMENT_KIND_LOWERCASE: frozenset(
        {pb.ATTRIBUTE_TYPE_STRING, pb.ATTRIBUTE_TYPE_STRING_SET, pb.ATTRIBUTE_TYPE_STRING_ARRAY}
    ),
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
    pb.ENRICHMENT_KIND_APPEND: frozenset({*ARRAY_TYPES, pb.ATTRIBUTE_TYPE_STRING_SET}),
    pb.ENRICHMENT_KIND_RESET: _COLLECTIONS,
    pb.ENRICHMENT_KIND_UPDATE_TIMELINE: frozenset({pb.ATTRIBUTE_TYPE_TIMELINE}),
    pb.ENRICHMENT_KIND_FUNNEL_STEP: frozenset({pb.ATTRIBUTE_TYPE_FUNNEL}),
    pb.ENRICHMENT_KIND_SET_DATE_DIFFERENCE: _NUMBER,
    pb.ENRICHMENT_KIND_FORMAT_DATE: frozenset({pb.ATTRIBUTE_TYPE_STRING}),
    pb.ENRICHMENT_KIND_SPLIT: frozenset(
        {pb.ATTRIBUTE_TYPE_STRING_SET, pb.ATTRIBUTE_TYPE_STRING_ARRAY}
    ),
    pb.ENRICHMENT_KIND_SET_TO_DIFFERENCE: frozenset({*ARRAY_TYPES, pb.ATTRIBUTE_TYPE_STRING_SET}),
    pb.ENRICHMENT_KIND_REMOVE_ENTRIES: frozenset(ARRAY_TYPES),
    pb.ENRICHMENT_KIND_TOP_KEYS: frozenset({pb.ATTRIBUTE_TYPE_STRING_SET}),
    pb.ENRICHMENT_KIND_INCREMENT_TALLY_BY_TALLY: frozenset({pb.ATTRIBUTE_TYPE_TALLY}),
    pb.ENRICHMENT_KIND_SET_ROLLING_SUM: _NUMBER_OR_TALLY,
    pb.ENRICHMENT_KIND_SET_ROLLING_AVERAGE: _NUMBER_OR_TALLY,
    pb.ENRICHMENT_KIND_SET_ROLLING_MAX: _NUMBER_OR_TALLY,
    pb.ENRICHMENT_KIND_EXPIRE_TIMELINE_ENTRIES: frozenset({pb.ATTRIBUTE_TYPE_TIMELINE}),
    pb.ENRICHMENT_KIND_SET_CHANGE_IN_NUMBER: _NUMBER,
    pb.ENRICHMENT_KIND_SET_CHANGE_IN_DATE: _NUMBER,
    pb.ENRICHMENT_KIND_RANDOM_SPLIT: frozenset({pb.ATTRIBUTE_TYPE_STRING}),
    pb.ENRICHMENT_KIND_SET_TALLY_FROM_ARRAYS: frozenset({pb.ATTRIBUTE_TYPE_TALLY}),
    pb.ENRICHMENT_KIND_KEYS_ABOVE: frozenset({pb.ATTRIBUTE_TYPE_STRING_SET}),
    pb.ENRICHMENT_KIND_SET_TO_TALLY_VALUE: _NUMBER,
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
    pb.ENRICHMENT_KIND_INCREMENT_TALLY: increment_tally,
    pb.ENRICHMENT_KIND_INCREMENT_TALLY_KEY: increment_tally_key,
    pb.ENRICHMENT_KIND_REMOVE_TALLY_KEY: remove_tally_key,
    pb.ENRICHMENT_KIND_ADD_TO_SET: add_to_set,
    pb.ENRICHMENT_KIND_REMOVE_FROM_SET: remove_from_set,
    pb.ENRICHMENT_KIND_STORE_AS_SET: store_as_set,
    pb.ENRICHMENT_KIND_APPEND: append,
    pb.ENRICHMENT_KIND_RESET: reset,
    pb.ENRICHMENT_KIND_UPDATE_TIMELINE: update_timeline,
    pb.ENRICHMENT_KIND_FUNNEL_STEP: funnel_step,
    pb.ENRICHMENT_KIND_SET_DATE_DIFFERENCE: set_date_difference,
    pb.ENRICHMENT_KIND_FORMAT_DATE: format_date,
    pb.ENRICHMENT_KIND_SPLIT: split,
    pb.ENRICHMENT_KIND_SET_TO_DIFFERENCE: set_to_difference,
    pb.ENRICHMENT_KIND_REMOVE_ENTRIES: remove_entries,
    pb.ENRICHMENT_KIND_TOP_KEYS: top_keys,
    pb.ENRICHMENT_KIND_INCREMENT_TALLY_BY_TALLY: increment_tally_by_tally,
    pb.ENRICHMENT_KIND_SET_ROLLING_SUM: rolling(rolling_sum),
    pb.ENRICHMENT_KIND_SET_ROLLING_AVERAGE: rolling(rolling_average),
    pb.ENRICHMENT_KIND_SET_ROLLING_MAX: rolling(rolling_max),
    pb.ENRICHMENT_KIND_EXPIRE_TIMELINE_ENTRIES: expire_timeline_entries,
    pb.ENRICHMENT_KIND_SET_CHANGE_IN_NUMBER: set_change_in_number,
    pb.ENRICHMENT_KIND_SET_CHANGE_IN_DATE: set_change_in_date,
    pb.ENRICHMENT_KIND_RANDOM_SPLIT: random_split,
    pb.ENRICHMENT_KIND_SET_TALLY_FROM_ARRAYS: set_tally_from_arrays,
    pb.ENRICHMENT_KIND_KEYS_ABOVE: keys_above,
    pb.ENRICHMENT_KIND_SET_TO_TALLY_VALUE: set_to_tally_value,
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
    spec = Spec(meta, enrichment, attribute, operands, limits, formats)
    factory = _FACTORIES.get(enrichment.kind)
    applies = meta.type in _APPLIES_TO.get(enrichment.kind, frozenset())
    apply = factory(spec) if factory is not None and applies else nothing
    return EnrichmentStep(path, meta.id, enrichment.when, rule, apply)
