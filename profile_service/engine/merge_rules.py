"""Merge rules: how one visitor attribute's two values combine when profiles are stitched.

Each rule is a pure function of the two sides (`Side`: value or `MISSING`, the time the value
was last enriched, whether it is the survivor's). A value present on one side only is that
value, except for AND on badges (an absent badge is false). Ties in time go to the survivor.

=============  ==========================================================================
rule           result
=============  ==========================================================================
NEWER / OLDER  the value enriched most / least recently
MAX / MIN      the larger / smaller (numbers, dates)
SUM            the sum (unset + x = x)
AND / OR       booleans and badges
UNION          sets: deduplicated, sorted; arrays: the older value's items then the newer's,
               the newest kept within the collection limit; tallies: as UNION_MAX
UNION_SUM/MAX  tallies: every key of both, counts summed / the larger / the smaller
/MIN           (beyond the collection limit, the keys with the largest counts are kept)
FUNNEL         each step from the profile that reached it earliest, in step order;
               completed if either profile completed it
TIMELINE       entries of both in time order, the newest kept (limit and age as an update)
=============  ==========================================================================

Visitor-ID attributes always keep the survivor's value when both are set (OLDER by profile);
RECALCULATE is applied by `stitching.merge_profiles` (NEWER here, then the enrichments).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.values import MISSING, TIMELINE_MAX_AGE_MS, trim_newest

T = pb.AttributeType
M = pb.MergeRule

DEFAULT_RULES: dict[int, int] = {
    T.ATTRIBUTE_TYPE_VISITOR_ID: M.MERGE_RULE_OLDER,
    T.ATTRIBUTE_TYPE_NUMBER: M.MERGE_RULE_NEWER,
    T.ATTRIBUTE_TYPE_DATE: M.MERGE_RULE_NEWER,
    T.ATTRIBUTE_TYPE_STRING: M.MERGE_RULE_NEWER,
    T.ATTRIBUTE_TYPE_BOOLEAN: M.MERGE_RULE_OR,
    T.ATTRIBUTE_TYPE_BADGE: M.MERGE_RULE_OR,
    T.ATTRIBUTE_TYPE_STRING_SET: M.MERGE_RULE_UNION,
    T.ATTRIBUTE_TYPE_STRING_ARRAY: M.MERGE_RULE_UNION,
    T.ATTRIBUTE_TYPE_NUMBER_ARRAY: M.MERGE_RULE_UNION,
    T.ATTRIBUTE_TYPE_BOOLEAN_ARRAY: M.MERGE_RULE_UNION,
    T.ATTRIBUTE_TYPE_TALLY: M.MERGE_RULE_UNION_SUM,
    T.ATTRIBUTE_TYPE_FUNNEL: M.MERGE_RULE_FUNNEL,
    T.ATTRIBUTE_TYPE_TIMELINE: M.MERGE_RULE_TIMELINE,
}
"""The rule of an attribute whose ``merge_rule`` is unset (the MergeRule proto comment)."""


@dataclass(frozen=True, slots=True)
class Side:
    """One profile's value of the attribute being merged."""

    value: Any
    """The plain value, `MISSING` when unassigned."""
    time_ms: int
    """When an enrichment last wrote it (fallback: the profile's update time)."""
    survivor: bool


@dataclass(frozen=True, slots=True)
class MergeSpec:
    """What a rule needs besides the two sides."""

    attribute_type: int
    limit: int
    """Collection size limit (timelines: the timeline limit)."""
    funnel_steps: tuple[str, ...] = ()
    """Funnel step keys in definition order."""


Rule = Callable[[Side, Side, MergeSpec], Any]


def rule_of(attribute: pb.AttributeDefinition) -> int:
    """The merge rule that applies to ``attribute`` (visitor IDs: always OLDER)."""
    if attribute.type == T.ATTRIBUTE_TYPE_VISITOR_ID or not attribute.merge_rule:
        return DEFAULT_RULES.get(attribute.type, M.MERGE_RULE_NEWER)
    return attribute.merge_rule


def older_newer(a: Side, b: Side) -> tuple[Side, Side]:
    """``(older, newer)`` by value time; a tie makes the survivor's the older."""
    if (a.time_ms, not a.survivor) <= (b.time_ms, not b.survivor):
        return a, b
    return b, a


def _newer(a: Side, b: Side, _s: MergeSpec) -> Any:
    # A tie keeps the survivor's value for NEWER too.
    older, newer = older_newer(a, b)
    return older.value if older.time_ms == newer.time_ms and older.survivor else newer.value


def _older(a: Side, b: Side, _s: MergeSpec) -> Any:
    return older_newer(a, b)[0].value


def _max(a: Side, b: Side, _s: MergeSpec) -> Any:
    return max(a.value, b.value)


def _min(a: Side, b: Side, _s: MergeSpec) -> Any:
    return min(a.value, b.value)


def _sum(a: Side, b: Side, _s: MergeSpec) -> Any:
    return float(a.value) + float(b.value)


def _and(a: Side, b: Side, _s: MergeSpec) -> Any:
    return bool(a.value) and bool(b.value)


def _or(a: Side, b: Side, _s: MergeSpec) -> Any:
    return bool(a.value) or bool(b.value)


def _union(a: Side, b: Side, spec: MergeSpec) -> Any:
    if spec.attribute_type == T.ATTRIBUTE_TYPE_TALLY:
        return _tally(max)(a, b, spec)
    if spec.attribute_type == T.ATTRIBUTE_TYPE_STRING_SET:
        return sorted(set(a.value) | set(b.value))[: spec.limit]
    older, newer = older_newer(a, b)
    return trim_newest([*older.value, *newer.value], spec.limit)


def _tally(combine: Callable[[float, float], float]) -> Rule:
    def merge(a: Side, b: Side, spec: MergeSpec) -> Any:
        merged: dict[str, float] = dict(a.value)
        for key, count in b.value.items():
            merged[key] = combine(merged[key], count) if key in merged else count
        if len(merged) > spec.limit:
            kept = sorted(merged, key=lambda k: (-merged[k], k))[: spec.limit]
            merged = {k: merged[k] for k in sorted(kept)}
        return {k: merged[k] for k in sorted(merged)}

    return merge


def _funnel(a: Side, b: Side, spec: MergeSpec) -> Any:
    earliest: dict[str, list[Any]] = {}
    for side in (a, b):
        for step in side.value.get("steps", []):
            known = earliest.get(step[0])
            if known is None or step[1] < known[1]:
                earliest[step[0]] = step
    order = {key: index for index, key in enumerate(spec.funnel_steps)}
    steps = sorted(earliest.values(), key=lambda s: (order.get(s[0], len(order)), s[1], s[0]))
    completed = bool(a.value.get("completed")) or bool(b.value.get("completed"))
    return {"steps": steps, "completed": completed}


def _timeline(a: Side, b: Side, spec: MergeSpec) -> Any:
    older, newer = older_newer(a, b)
    entries = sorted([*older.value, *newer.value], key=lambda e: e[0])  # stable
    if entries:
        horizon = entries[-1][0] - TIMELINE_MAX_AGE_MS
        entries = [e for e in entries if e[0] >= horizon]
    return trim_newest(entries, spec.limit)


RULES: dict[int, Rule] = {
    M.MERGE_RULE_NEWER: _newer,
    M.MERGE_RULE_OLDER: _older,
    M.MERGE_RULE_MAX: _max,
    M.MERGE_RULE_MIN: _min,
    M.MERGE_RULE_SUM: _sum,
    M.MERGE_RULE_AND: _and,
    M.MERGE_RULE_OR: _or,
    M.MERGE_RULE_UNION: _union,
    M.MERGE_RULE_UNION_SUM: _tally(lambda x, y: x + y),
    M.MERGE_RULE_UNION_MAX: _tally(max),
    M.MERGE_RULE_UNION_MIN: _tally(min),
    M.MERGE_RULE_FUNNEL: _funnel,
    M.MERGE_RULE_TIMELINE: _timeline,
    M.MERGE_RULE_RECALCULATE: _newer,
}


def merge_values(rule: int, a: Side, b: Side, spec: MergeSpec) -> Any:
    """The merged value (`MISSING`: unassigned). Values of another shape than the rule
    expects (stored under an earlier type) fall back to NEWER; never raises."""
    if spec.attribute_type == T.ATTRIBUTE_TYPE_VISITOR_ID:
        survivor, other = (a, b) if a.survivor else (b, a)
        return survivor.value if survivor.value is not MISSING else other.value
    if spec.attribute_type == T.ATTRIBUTE_TYPE_BADGE and rule == M.MERGE_RULE_AND:
        return True if a.value is True and b.value is True else MISSING
    if a.value is MISSING:
        return b.value
    if b.value is MISSING:
        return a.value
    merged = RULES.get(rule, _newer)
    try:
        result = merged(a, b, spec)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError):
        result = _newer(a, b, spec)
    if spec.attribute_type == T.ATTRIBUTE_TYPE_BADGE:
        return True if result else MISSING
    return result
