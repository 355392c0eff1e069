"""Enrichments between tallies and other types (Tealium §2, Tally and Set of Strings): a tally
built from two corresponding arrays, the keys of a tally above a threshold, and one key's value
as a number."""

from __future__ import annotations

import math

from profile_service.engine.context import Apply, EvalContext
from profile_service.engine.enrichment_spec import Spec, fits, save
from profile_service.engine.values import (
    MISSING,
    to_number,
    to_number_list,
    to_string_list,
    to_tally,
)


def set_tally_from_arrays(spec: Spec) -> Apply:
    """Replace the tally with keys operands[0] and the values at the same index of
    operands[1]; lists of different lengths save nothing (noted); a repeated key adds up."""
    read_keys, read_values = spec.operand(0), spec.operand(1)
    meta = spec.meta

    def set_tally(c: EvalContext) -> None:
        raw_keys, raw_values = read_keys(c), read_values(c)
        if raw_keys is MISSING or raw_values is MISSING:
            return
        keys, values = to_string_list(raw_keys), to_number_list(raw_values)
        if keys is None or values is None:
            return
        if len(keys) != len(values):
            c.note(f"{meta.id}: {len(keys)} keys but {len(values)} values; not saved")
            return
        tally: dict[str, float] = {}
        for key, value in zip(keys, values, strict=True):
            if key and fits(c, meta, key):
                tally[key] = tally.get(key, 0.0) + value
        if all(math.isfinite(v) for v in tally.values()):
            c.begin(meta)
            # A new tally: the old keys' recency means nothing; the order given breaks ties.
            c.state.tally_touched.pop(meta.id, None)
            save(c, meta, tally)

    return set_tally


def keys_above(spec: Spec) -> Apply:
    """The keys of the tally operands[0] whose value is greater than operands[1] (sorted)."""
    read_tally, read_threshold = spec.operand(0), spec.operand(1)
    meta = spec.meta

    def keys(c: EvalContext) -> None:
        tally = to_tally(read_tally(c))
        threshold = to_number(read_threshold(c))
        if tally is None or threshold is None:
            return
        save(c, meta, sorted(key for key, value in tally.items() if value > threshold))

    return keys


def set_to_tally_value(spec: Spec) -> Apply:
    """The value of the constant ``key`` in the tally operands[0]."""
    read = spec.operand(0)
    key = spec.enrichment.key
    meta = spec.meta

    def value_of(c: EvalContext) -> None:
        tally = to_tally(read(c))
        if tally is not None and key in tally:
            save(c, meta, tally[key])

    return value_of
