"""Enrichments on collections: tallies, sets, arrays and RESET."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.context import Apply, AttributeMeta, EvalContext
from profile_service.engine.enrichment_spec import ARRAY_TYPES, Spec, fits, nothing, save
from profile_service.engine.values import (
    to_bool_list,
    to_number,
    to_number_list,
    to_string_list,
    to_string_set,
    to_tally,
)


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
        if not key or not fits(c, meta, key):
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


def increment_tally(spec: Spec) -> Apply:
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


def increment_tally_key(spec: Spec) -> Apply:
    keys = [spec.enrichment.key]
    read_amount = spec.operand(0) if spec.has_operand(0) else None
    meta = spec.meta

    def increment(c: EvalContext) -> None:
        amount = 1.0 if read_amount is None else to_number(read_amount(c))
        if amount is not None:
            _add_to_tally(c, meta, keys, amount)

    return increment


def remove_tally_key(spec: Spec) -> Apply:
    key = spec.enrichment.key
    meta = spec.meta

    def remove_key(c: EvalContext) -> None:
        current = c.get(meta)
        if isinstance(current, dict) and key in current:
            c.begin(meta)
            c.put(meta, {k: n for k, n in current.items() if k != key})
            c.state.tally_touched.get(meta.id, {}).pop(key, None)

    return remove_key


def add_to_set(spec: Spec) -> Apply:
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
            if item in present or item in added or not fits(c, meta, item):
                continue
            if room <= 0:
                c.note(f"{meta.id}: set is full ({c.limits.max_collection_size}); not added")
                break
            added.add(item)
            room -= 1
        if added:
            c.put(meta, sorted(present | added))

    return add


def remove_from_set(spec: Spec) -> Apply:
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


def store_as_set(spec: Spec) -> Apply:
    read = spec.operand(0)
    meta = spec.meta

    def store(c: EvalContext) -> None:
        members = to_string_set(read(c))
        if members is not None:
            save(c, meta, members)

    return store


def append(spec: Spec) -> Apply:
    read = spec.operand(0)
    meta = spec.meta
    kind = meta.type
    if kind == pb.ATTRIBUTE_TYPE_STRING_SET:
        return add_to_set(spec)
    coerce: Callable[[Any], list[Any] | None]
    if kind == pb.ATTRIBUTE_TYPE_STRING_ARRAY:
        coerce = to_string_list
    elif kind == pb.ATTRIBUTE_TYPE_NUMBER_ARRAY:
        coerce = to_number_list
    elif kind == pb.ATTRIBUTE_TYPE_BOOLEAN_ARRAY:
        coerce = to_bool_list
    else:
        return nothing

    def append(c: EvalContext) -> None:
        items = coerce(read(c))
        if not items:
            return
        # Coercing the stored list too drops items stored under an earlier type.
        current = coerce(c.get(meta)) or []
        save(c, meta, current + items)

    return append


def reset(spec: Spec) -> Apply:
    meta = spec.meta
    empty: Callable[[], Any]
    if meta.type == pb.ATTRIBUTE_TYPE_TALLY:
        empty = dict
    elif meta.type in (*ARRAY_TYPES, pb.ATTRIBUTE_TYPE_STRING_SET, pb.ATTRIBUTE_TYPE_TIMELINE):
        empty = list
    else:
        return nothing

    def reset(c: EvalContext) -> None:
        if c.get(meta) != empty():
            c.put(meta, empty())
            if meta.is_tally:
                c.state.tally_touched.pop(meta.id, None)

    return reset


def split(spec: Spec) -> Apply:
    """Replace a set or string array with the string operands[0] cut at ``delimiter``."""
    read = spec.operand(0)
    delimiter = spec.enrichment.delimiter
    meta = spec.meta
    as_set = meta.type == pb.ATTRIBUTE_TYPE_STRING_SET
    if not delimiter:
        return nothing

    def split_(c: EvalContext) -> None:
        text = read(c)
        if not isinstance(text, str):
            return
        parts = [part.strip() for part in text.split(delimiter)]
        parts = [part for part in parts if part]
        save(c, meta, sorted(set(parts)) if as_set else parts)

    return split_


def _list_coercer(kind: int) -> Callable[[Any], list[Any] | None] | None:
    if kind in (pb.ATTRIBUTE_TYPE_STRING_ARRAY, pb.ATTRIBUTE_TYPE_STRING_SET):
        return to_string_list
    if kind == pb.ATTRIBUTE_TYPE_NUMBER_ARRAY:
        return to_number_list
    if kind == pb.ATTRIBUTE_TYPE_BOOLEAN_ARRAY:
        return to_bool_list
    return None


def set_to_difference(spec: Spec) -> Apply:
    """Replace with the items of operands[0] that are not in operands[1] (a set: A minus B; an
    array keeps operands[0]'s order and duplicates, as Tealium's array difference)."""
    first, second = spec.operand(0), spec.operand(1)
    meta = spec.meta
    coerce = _list_coercer(meta.type)
    if coerce is None:
        return nothing
    as_set = meta.type == pb.ATTRIBUTE_TYPE_STRING_SET

    def difference(c: EvalContext) -> None:
        items = coerce(first(c))
        if items is None:
            return
        drop = coerce(second(c)) or []
        kept = [item for item in items if item not in drop]
        save(c, meta, sorted(set(kept)) if as_set else kept)

    return difference


def remove_entries(spec: Spec) -> Apply:
    """Remove the first, last or every array entry equal to operands[0]."""
    read = spec.operand(0)
    meta = spec.meta
    coerce = _list_coercer(meta.type)
    occurrence = spec.enrichment.occurrence
    if coerce is None or meta.type == pb.ATTRIBUTE_TYPE_STRING_SET:
        return nothing

    def remove(c: EvalContext) -> None:
        targets = coerce(read(c))
        current = coerce(c.get(meta))
        if not targets or not current:
            return
        target = targets[0]
        positions = [i for i, item in enumerate(current) if item == target]
        if not positions:
            return
        if occurrence == pb.OCCURRENCE_FIRST:
            positions = positions[:1]
        elif occurrence == pb.OCCURRENCE_LAST:
            positions = positions[-1:]
        gone = set(positions)
        c.put(meta, [item for i, item in enumerate(current) if i not in gone])

    return remove


def top_keys(spec: Spec) -> Apply:
    """Replace a set with the ``count`` keys of the tally operands[0] with the highest values
    (ties in alphabetical order)."""
    read = spec.operand(0)
    count = spec.enrichment.count
    meta = spec.meta

    def top(c: EvalContext) -> None:
        tally = to_tally(read(c))
        if tally is None:
            return
        ranked = sorted(tally, key=lambda key: (-tally[key], key))[:count]
        save(c, meta, sorted(ranked))

    return top


def increment_tally_by_tally(spec: Spec) -> Apply:
    """Add each key's value of the tally operands[0] to the same key."""
    read = spec.operand(0)
    meta = spec.meta

    def increment(c: EvalContext) -> None:
        other = to_tally(read(c))
        if not other:
            return
        # One key at a time through the tally path: limits, recency and the favourite apply.
        for key in sorted(other):
            _add_to_tally(c, meta, [key], other[key])

    return increment
