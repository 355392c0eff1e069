"""Identity stitching in the engine: whether two profiles may become one (guardrails) and the
merged profile (merge rules, audiences, triggers, trace), computed purely from the two states.

The storage layer finds stitches (a visitor-ID value already indexed to another profile) and
runs the multi-step protocol of docs/identity.md; it calls these two functions, through
``storage.engine_api.EngineFunctions``. Both are deterministic: the same inputs give the
same merged profile, actions and idempotency keys, so a repeated step repeats exactly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from crowd.profile.v1 import definitions_pb2 as pb
from crowd.profile.v1 import event_pb2, trace_pb2
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.audiences import evaluate_audiences
from profile_service.engine.context import EvalContext
from profile_service.engine.identity_values import (
    DEFAULT_IDENTITY_RULE,
    identity_note,
    identity_rule,
    refusal_of,
)
from profile_service.engine.merge_rules import MergeSpec, Side, merge_values, rule_of
from profile_service.engine.outcomes import fire_and_record, record_changes, record_transitions
from profile_service.engine.plan import EnginePlan, plan_for
from profile_service.engine.state import (
    IdentityNote,
    NormalizedEvent,
    Outcome,
    ProfileState,
    TraceRecord,
)
from profile_service.engine.stitch_actions import merge_user_actions
from profile_service.engine.values import MISSING, timeline_limit

__all__ = [
    "StitchRefusal",
    "check_stitch",
    "merge_profiles",
    "refusal_note",
    "refusal_record",
    "stitch_key",
    "survivor_first",
]


@dataclass(frozen=True)
class StitchRefusal:
    """Why a stitch may not happen (a guardrail)."""

    attribute_id: str
    value: str
    outcome: event_pb2.IdentityOutcome.ValueType
    message: str


def survivor_first(a: ProfileState, b: ProfileState) -> tuple[ProfileState, ProfileState]:
    """``(survivor, replaced)``: the older profile survives (created first; ties by id), a
    total order, so concurrent stitches of the same profiles never form a cycle."""
    if (a.created_ms, a.profile_id) <= (b.created_ms, b.profile_id):
        return a, b
    return b, a


def _values_of(state: ProfileState, attribute_id: str) -> set[str]:
    """Every value of a visitor-ID attribute one person holds: its own and its replaced
    profiles'."""
    found = {
        r["identities"][attribute_id]
        for r in state.replaces
        if attribute_id in r.get("identities", {})
    }
    own = state.attributes.get(attribute_id)
    if isinstance(own, str):
        found.add(own)
    return found


def check_stitch(
    defs: CompiledDefinitions,
    survivor: ProfileState,
    replaced: ProfileState,
    attribute_id: str,
    value: str,
) -> StitchRefusal | None:
    """The guardrail that refuses stitching ``replaced`` into ``survivor`` through
    ``attribute_id`` = ``value``, or ``None`` if it may happen: a blocked (or invalid) value
    (BLOCKED / INVALID), more distinct values of the attribute than ``max_values``
    (VALUE_LIMIT), more profiles in one person than ``max_profiles`` (PROFILE_LIMIT)."""
    attribute = defs.attributes.get(attribute_id)
    rule = (
        identity_rule(attribute.identity)
        if attribute is not None and attribute.type == pb.ATTRIBUTE_TYPE_VISITOR_ID
        else DEFAULT_IDENTITY_RULE
    )
    refusal = refusal_of(rule, value)
    if refusal is not None:
        return StitchRefusal(attribute_id, value, refusal[0], f"not stitched: {refusal[1]}")
    if rule.max_values:
        values = _values_of(survivor, attribute_id) | _values_of(replaced, attribute_id) | {value}
        if len(values) > rule.max_values:
            return StitchRefusal(
                attribute_id,
                value,
                event_pb2.IDENTITY_OUTCOME_VALUE_LIMIT,
                f"not stitched: the person would hold {len(values)} values of "
                f"{attribute_id}; at most {rule.max_values} allowed",
            )
    if rule.max_profiles:
        profiles = 2 + len(survivor.replaces) + len(replaced.replaces)
        if profiles > rule.max_profiles:
            return StitchRefusal(
                attribute_id,
                value,
                event_pb2.IDENTITY_OUTCOME_PROFILE_LIMIT,
                f"not stitched: the person would consist of {profiles} profiles; "
                f"at most {rule.max_profiles} allowed",
            )
    return None


def refusal_note(refusal: StitchRefusal) -> IdentityNote:
    """The event result's note of a refused stitch."""
    return identity_note(refusal.attribute_id, refusal.value, refusal.outcome, refusal.message)


def refusal_record(refusal: StitchRefusal, profile_id: str, other_profile_id: str) -> TraceRecord:
    """The STITCH_REFUSED trace record of a refused stitch (for either profile's trace)."""
    return TraceRecord(
        trace_pb2.TRACE_ENTRY_KIND_STITCH_REFUSED,
        refusal.message,
        {
            "attribute_id": refusal.attribute_id,
            "value": refusal.value[:64],
            "outcome": event_pb2.IdentityOutcome.Name(refusal.outcome),
            "profile_id": profile_id,
            "other_profile_id": other_profile_id,
        },
    )


def stitch_key(survivor_id: str, action_id: str, stitch_id: str) -> str:
    """Idempotency key of an action fired by a stitch."""
    return f"{survivor_id}:{action_id}:stitch:{stitch_id}"


def _merge_spec(plan: EnginePlan, attribute: pb.AttributeDefinition) -> MergeSpec:
    if attribute.type == pb.ATTRIBUTE_TYPE_TIMELINE:
        limit = timeline_limit(plan.limits)
    else:
        limit = plan.limits.max_collection_size
    steps = tuple(e.key for e in attribute.enrichments if e.kind == pb.ENRICHMENT_KIND_FUNNEL_STEP)
    return MergeSpec(attribute.type, limit, steps)


def _merge_touched(
    s: ProfileState, r: ProfileState, merged: ProfileState, tally_id: str, newer_is_survivor: bool
) -> None:
    """Renumber both tallies' recency records after ``merged.sequence``, the newer value's
    keys last, so the favourite is recalculated with ties going to its recent keys."""
    older, newer = (r, s) if newer_is_survivor else (s, r)
    touched: dict[str, int] = {}
    for source in (older, newer):
        records = source.tally_touched.get(tally_id, {})
        for key in sorted(records, key=lambda k: (records[k], k)):
            merged.sequence += 1
            touched[key] = merged.sequence
    value = merged.attributes.get(tally_id)
    touched = {k: n for k, n in touched.items() if isinstance(value, dict) and k in value}
    if touched:
        merged.tally_touched[tally_id] = touched
    else:
        merged.tally_touched.pop(tally_id, None)


def _summed_agents(
    older: dict[str, dict[str, float]], newer: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """The browser/OS/device visit tallies of both profiles, counts added; the survivor's
    values come last (the most recent, for the favourite's tie-break)."""
    summed: dict[str, dict[str, float]] = {}
    for dimension in {*older, *newer}:
        tally = dict(older.get(dimension, {}))
        for value, count in newer.get(dimension, {}).items():
            tally[value] = tally.pop(value, 0.0) + count
        summed[dimension] = tally
    return summed


def _base_state(s: ProfileState, r: ProfileState, now_ms: int) -> ProfileState:
    """Counters, visit, ids and ``replaces`` of the merged profile (attributes: the survivor's
    for now)."""
    merged = copy.deepcopy(s)
    merged.created_ms = min(s.created_ms, r.created_ms)
    merged.updated_ms = max(s.updated_ms, r.updated_ms)
    for visitor_id in r.visitor_ids or [r.profile_id]:
        if visitor_id not in merged.visitor_ids:
            merged.visitor_ids.append(visitor_id)
    merged.visit_count = s.visit_count + r.visit_count
    merged.time_on_site_ms = s.time_on_site_ms + r.time_on_site_ms
    merged.ended_visits = s.ended_visits + r.ended_visits
    merged.referred_visits = s.referred_visits + r.referred_visits
    merged.direct_visits = s.direct_visits + r.direct_visits
    merged.lifetime_agents = _summed_agents(r.lifetime_agents, s.lifetime_agents)
    merged.event_count = s.event_count + r.event_count
    merged.sequence = max(s.sequence, r.sequence)
    firsts = [t for t in (s.first_visit_ms, r.first_visit_ms) if t is not None]
    merged.first_visit_ms = min(firsts) if firsts else None
    if r.last_visit_ms is not None and (
        s.last_visit_ms is None or r.last_visit_ms > s.last_visit_ms
    ):
        merged.last_visit_ms, merged.last_visit_id = r.last_visit_ms, r.last_visit_id
    if merged.visit is None and r.visit is not None:
        visit = copy.deepcopy(r.visit)
        # Visit ids are unique per profile: renamed so it cannot clash with the survivor's.
        visit.visit_id = f"{merged.visit_count}-{visit.started_ms}"
        merged.visit = visit
    merged.last_traceparent = s.last_traceparent or r.last_traceparent
    merged.audiences = {**r.audiences, **s.audiences}
    return merged


def merge_profiles(
    defs: CompiledDefinitions,
    survivor: ProfileState,
    replaced: ProfileState,
    *,
    attribute_id: str,
    value: str,
    event: NormalizedEvent | None,
    stitch_id: str,
    now_ms: int,
) -> Outcome:
    """The survivor after absorbing ``replaced`` (neither input is modified).

    ``outcome.state`` is the merged profile (``profile_id`` = the survivor's, ``replaces``
    extended by ``replaced``), visitor attributes merged by their rules (`merge_rules`),
    audiences evaluated on it: an audience either profile was in and the merged one is in
    fires nothing; one neither was in fires JOINED; one the survivor was in and the merged
    one is not fires LEFT; memberships of the replaced profile only end silently. Fired
    actions' keys are `stitch_key` (``stitch_id``). ``outcome.trace`` holds the
    VISITOR_STITCHED record first. Changes are reported relative to the survivor.
    """
    plan = plan_for(defs)
    s, r = survivor, replaced
    merged = _base_state(s, r, now_ms)
    rules: dict[str, str] = {}
    recalculate: list[str] = []
    for attr_id, attribute in defs.attributes.items():
        if attribute.scope != pb.ATTRIBUTE_SCOPE_VISITOR:
            continue
        a_value = s.attributes.get(attr_id, MISSING)
        b_value = r.attributes.get(attr_id, MISSING)
        if a_value is MISSING and b_value is MISSING:
            continue
        rule = rule_of(attribute)
        a = Side(a_value, s.value_times.get(attr_id, s.updated_ms), True)
        b = Side(b_value, r.value_times.get(attr_id, r.updated_ms), False)
        result = merge_values(rule, a, b, _merge_spec(plan, attribute))
        rules[attr_id] = pb.MergeRule.Name(rule).removeprefix("MERGE_RULE_").lower()  # type: ignore[arg-type]
        if result is MISSING:
            merged.attributes.pop(attr_id, None)
        else:
            merged.attributes[attr_id] = copy.deepcopy(result)
        present = [side.time_ms for side in (a, b) if side.value is not MISSING]
        chosen = a if result is a.value else b if result is b.value else None
        merged.value_times[attr_id] = chosen.time_ms if chosen is not None else max(present)
        if attribute.type == pb.ATTRIBUTE_TYPE_TALLY:
            _merge_touched(s, r, merged, attr_id, a.time_ms >= b.time_ms)
        if rule == pb.MERGE_RULE_RECALCULATE:
            recalculate.append(attr_id)
    for key, item in r.attributes.items():  # no longer defined: kept as they were
        if key not in defs.attributes:
            merged.attributes.setdefault(key, copy.deepcopy(item))

    identities = {
        a: r.attributes[a]
        for a in defs.visitor_id_attributes
        if isinstance(r.attributes.get(a), str)
    }
    merged.replaces = [
        *copy.deepcopy(s.replaces),
        *copy.deepcopy(r.replaces),
        {
            "profile_id": r.profile_id,
            "visitor_ids": list(r.visitor_ids or [r.profile_id]),
            "identities": identities,
            "stitched_ms": now_ms,
            "attribute_id": attribute_id,
        },
    ]

    outcome = Outcome(state=merged)
    outcome.trace.append(
        TraceRecord(
            trace_pb2.TRACE_ENTRY_KIND_VISITOR_STITCHED,
            f"profile {r.profile_id} stitched into {s.profile_id} by {attribute_id}",
            {
                "survivor": s.profile_id,
                "replaced": r.profile_id,
                "attribute_id": attribute_id,
                "value": value[:64],
                "stitch_id": stitch_id,
                "rules": rules,
            },
        )
    )
    event_time = event.time_ms if event is not None else now_ms
    c = EvalContext(merged, event, now_ms, event_time, plan.limits)
    # Changes relative to the survivor: what the merge did to the person's surviving profile.
    for attr_id in {*s.attributes, *merged.attributes}:
        if s.attributes.get(attr_id, MISSING) != merged.attributes.get(attr_id, MISSING):
            c.originals[attr_id] = s.attributes.get(attr_id, MISSING)
    if event is not None and recalculate:
        wanted = set(recalculate)
        for step in plan.steps_for_event(event):
            if step.attribute_id in wanted and (step.rule is None or step.rule(c)):
                meta = plan.metas[step.attribute_id]
                c.begin(meta)
                step.apply(c)
    record_changes(plan, c, outcome)
    _evaluate(plan, c, s, outcome, stitch_id)
    # Braze must end with one user for the person (MergeUsers, one per connector).
    outcome.actions.extend(merge_user_actions(defs, s, r, merged, stitch_id, now_ms))
    return outcome


def _evaluate(
    plan: EnginePlan, c: EvalContext, survivor: ProfileState, outcome: Outcome, stitch_id: str
) -> None:
    """Audiences on the merged profile, with the person-level transitions of a stitch."""
    transitions = evaluate_audiences(plan, c)
    # Left an audience only the replaced profile was in: that membership ends silently.
    transitions.left = [a for a in transitions.left if a in survivor.audiences]
    transitions.dropped = [a for a in transitions.dropped if a in survivor.audiences]
    record_transitions(plan, transitions, outcome)
    joined, left = set(transitions.joined), set(transitions.left)
    left_names = [plan.audience_name(a) for a in (*transitions.left, *transitions.dropped)]
    for action in plan.actions:
        cause: str | None = None
        if action.feed_id:
            continue
        if action.trigger == pb.TRIGGER_JOINED and action.audience_id in joined:
            cause = f"joined {action.audience_id!r} (stitch)"
        elif action.trigger == pb.TRIGGER_LEFT and action.audience_id in left:
            cause = f"left {action.audience_id!r} (stitch)"
        if cause is not None:
            key = stitch_key(survivor.profile_id, action.id, stitch_id)
            fire_and_record(action, c, key, left_names, outcome, cause)
