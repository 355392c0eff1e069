"""The engine's entry points: apply one event, end one visit, re-evaluate a delayed action.

Everything here is pure: the caller loads a `ProfileState`, calls one function, and stores
the returned state together with the outcome's memberships, actions and trace in one
atomic step. The state passed in is updated in place and returned as ``Outcome.state``.

Order of one event (`process_event`):

1. A new visitor gets a profile (``profile_id`` = the event's visitor id). An open visit
   that has expired by the event's activity time is ended first, exactly as `end_visit`
   would (its outcome is folded into this one, before the event's own records).
2. Counters: lifetime and visit event counts include the current event; a visit starts if
   none is open (lifetime visit count, first visit, visit start).
3. Enrichments in three phases, each in the compiled (dependency) order:
   WHEN_NEW_VISITOR (first event of a new profile), WHEN_NEW_VISIT (first event of every
   visit, the visitor's first included), then WHEN_ANY_EVENT. Each runs if its rule
   matches the event data and the attribute values at the moment it runs.
4. Audiences are re-evaluated; joins and leaves fire JOINED / LEFT actions.
5. On the first event of a visit, IN_AUDIENCE_AT_VISIT_START actions fire for every
   audience the visitor is in *after* this event's enrichments (so a visitor who qualifies
   with the very event that opens the visit counts as in the audience at its start).
6. Event feeds are matched (after enrichments) and their actions fire.

Actions fire in document order, each at most once per event, with the idempotency key
``{profile_id}:{action_id}:{event_id}`` (visit ends: ``{profile_id}:{action_id}:{visit_id}:end``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from crowd.profile.v1 import event_pb2, trace_pb2
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine import value_protos, values
from profile_service.engine.actions import event_key, fire, visit_end_key
from profile_service.engine.agent_visits import recency_of, record_agent
from profile_service.engine.audiences import evaluate_audiences, is_member
from profile_service.engine.builtin_values import (
    BUILTIN_BADGES,
    BUILTIN_READERS,
    BUILTIN_TYPES,
    UNBADGED,
    VISIT_BUILTINS,
    builtin_values,
    is_unbadged,
)
from profile_service.engine.context import EvalContext
from profile_service.engine.enrichment_spec import identity_accepted
from profile_service.engine.enrichments import EnrichmentStep
from profile_service.engine.outcomes import (
    fire_and_record,
    merge,
    record_changes,
    record_identity_notes,
    record_notes,
    record_transitions,
    trace_details,
)
from profile_service.engine.page_visits import record_page
from profile_service.engine.plan import EnginePlan, plan_for
from profile_service.engine.state import (
    FiredAction,
    NormalizedEvent,
    Outcome,
    ProfileState,
    TraceRecord,
)
from profile_service.engine.visits import (
    activity_ms,
    close_visit,
    end_time_ms,
    has_expired,
    mark_visit_ended,
    start_visit,
)

__all__ = [
    "attribute_value_of",
    "end_visit",
    "evaluate_delayed",
    "from_attribute_value",
    "process_event",
    "profile_badges",
    "to_attribute_value",
    "trace_details",
    "visit_attribute_values",
    "visitor_attribute_values",
]


def _run(steps: tuple[EnrichmentStep, ...], c: EvalContext) -> None:
    for step in steps:
        if step.rule is None or step.rule(c):
            step.apply(c)


def _context(
    plan: EnginePlan,
    state: ProfileState,
    event: NormalizedEvent | None,
    now_ms: int,
    event_time_ms: int,
    previous_builtins: dict[str, Any] | None,
) -> EvalContext:
    return EvalContext(
        state,
        event,
        now_ms,
        event_time_ms,
        plan.limits,
        previous_builtins=previous_builtins,
        track_favorites=plan.track_favorites,
    )


def process_event(
    defs: CompiledDefinitions,
    state: ProfileState | None,
    event: NormalizedEvent,
    now_ms: int,
    *,
    trace: bool = True,
) -> Outcome:
    """Apply one event to a profile (``None``: a new visitor). Never raises on bad data.

    ``trace=False``: build no trace records (``outcome.trace`` stays empty), for a visitor
    whose trace history nobody keeps; everything else is the same.
    """
    plan = plan_for(defs)
    limits = plan.limits
    at_ms = activity_ms(event, now_ms)
    earlier: Outcome | None = None
    new_visitor = state is None
    if state is None:
        state = ProfileState(
            profile_id=event.visitor_id,
            created_ms=at_ms,
            updated_ms=at_ms,
            visitor_ids=[event.visitor_id],
        )
    elif has_expired(state, at_ms, limits):
        earlier = _end_visit(plan, state, now_ms, trace=trace)

    previous = builtin_values(state) if plan.needs_previous_builtins else None
    outcome = Outcome(state=state, new_visitor=new_visitor, traced=trace)
    received: dict[str, Any] = {"event_id": event.event_id, "name": event.name}
    if trace:
        outcome.trace.append(
            TraceRecord(
                trace_pb2.TRACE_ENTRY_KIND_EVENT_RECEIVED,
                f"event {event.name!r} received",
                received,
            )
        )
    if new_visitor and trace:
        outcome.trace.append(
            TraceRecord(
                trace_pb2.TRACE_ENTRY_KIND_NEW_VISITOR,
                "new visitor",
                {"profile_id": state.profile_id},
            )
        )

    state.event_count += 1
    state.updated_ms = max(state.updated_ms, at_ms)
    if event.traceparent:
        state.last_traceparent = event.traceparent
    visit = state.visit
    if visit is None:
        visit = start_visit(state, event, at_ms, limits)
        outcome.visit_started = True
        if trace:
            outcome.trace.append(
                TraceRecord(
                    trace_pb2.TRACE_ENTRY_KIND_VISIT_STARTED,
                    f"visit {visit.visit_id} started",
                    {"visit_id": visit.visit_id, "visit_number": float(state.visit_count)},
                )
            )
    visit.event_count += 1
    visit.last_event_ms = max(visit.last_event_ms, at_ms)
    record_agent(state, visit, event)  # the browser/OS/device built-ins
    record_page(state, visit, event, outcome.visit_started)  # entry/exit URL, referral

    c = _context(plan, state, event, now_ms, event.time_ms, previous)
    _assign_identities(plan, c, event)
    if new_visitor:
        _run(plan.new_visitor, c)
    if outcome.visit_started:
        _run(plan.new_visit, c)
    _run(plan.steps_for_event(event), c)
    record_changes(plan, c, outcome)

    transitions = evaluate_audiences(plan, c)
    record_transitions(plan, transitions, outcome)
    if outcome.visit_started:
        visit.audiences_at_start = sorted(state.audiences)

    matched = {feed.id for feed in plan.feeds if feed.predicate is None or feed.predicate(c)}
    if matched and trace:
        received["feeds_matched"] = sorted(matched)

    joined, left = set(transitions.joined), set(transitions.left)
    left_names = [plan.audience_name(a) for a in (*transitions.left, *transitions.dropped)]
    for action in plan.actions:
        cause = _event_cause(
            action.feed_id, action.audience_id, action.trigger, matched, joined, left
        )
        if (
            cause is None
            and outcome.visit_started
            and action.trigger == pb.TRIGGER_IN_AUDIENCE_AT_VISIT_START
        ):
            cause = "in audience at visit start" if action.audience_id in state.audiences else None
        if cause is not None:
            key = event_key(state.profile_id, action.id, event.event_id)
            fire_and_record(action, c, key, left_names, outcome, cause)
    record_notes(c, outcome)
    if c.identity_notes is not None:
        record_identity_notes(c.identity_notes, outcome)
    return merge(earlier, outcome) if earlier is not None else outcome


def _assign_identities(plan: EnginePlan, c: EvalContext, event: NormalizedEvent) -> None:
    """Assign visitor-ID values the event is known to belong to (an imported record looked up
    by one), before the enrichments run; like the SET enrichment, only while unassigned and
    only valid, unblocked values (others are noted)."""
    for attribute_id, value in event.identities.items():
        meta = plan.metas.get(attribute_id)
        if meta is None or meta.type != pb.ATTRIBUTE_TYPE_VISITOR_ID or not value:
            continue
        if c.get(meta) is values.MISSING and identity_accepted(c, meta, value):
            c.begin(meta)
            c.put(meta, value)


def _event_cause(
    feed_id: str,
    audience_id: str,
    trigger: int,
    matched: set[str],
    joined: set[str],
    left: set[str],
) -> str | None:
    if feed_id:
        return f"event feed {feed_id!r} matched" if feed_id in matched else None
    if trigger == pb.TRIGGER_JOINED and audience_id in joined:
        return f"joined {audience_id!r}"
    if trigger == pb.TRIGGER_LEFT and audience_id in left:
        return f"left {audience_id!r}"
    return None


def end_visit(
    defs: CompiledDefinitions, state: ProfileState, now_ms: int, *, trace: bool = True
) -> Outcome:
    """End the profile's open visit (no-op without one).

    Order: built-ins updated (``last_visit`` = the end time, ``min(now, expiry)``);
    WHEN_VISIT_ENDED enrichments; audiences re-evaluated (JOINED / LEFT fire);
    IN_AUDIENCE_AT_VISIT_END actions fire for every audience the visitor is in (delayed
    ones are returned with ``delay_ms``); visit attributes cleared. Memberships that depend on visit
    attributes are not re-evaluated after the clearing: they change with the next event.
    ``trace=False``: no trace records are built, as for `process_event`.
    """
    plan = plan_for(defs)
    if state.visit is None:
        return Outcome(state=state, traced=trace)
    return _end_visit(plan, state, now_ms, trace=trace)


def _end_visit(
    plan: EnginePlan, state: ProfileState, now_ms: int, *, trace: bool = True
) -> Outcome:
    visit = state.visit
    assert visit is not None
    ended_ms = end_time_ms(visit, now_ms, plan.limits)
    outcome = Outcome(state=state, visit_ended=True, traced=trace)
    previous = builtin_values(state) if plan.needs_previous_builtins else None
    summary = mark_visit_ended(state, ended_ms)
    if trace:
        outcome.trace.append(
            TraceRecord(
                trace_pb2.TRACE_ENTRY_KIND_VISIT_ENDED, f"visit {visit.visit_id} ended", summary
            )
        )
    c = _context(plan, state, None, now_ms, ended_ms, previous)
    _run(plan.visit_ended, c)
    record_changes(plan, c, outcome)

    transitions = evaluate_audiences(plan, c)
    record_transitions(plan, transitions, outcome)
    joined, left = set(transitions.joined), set(transitions.left)
    left_names = [plan.audience_name(a) for a in (*transitions.left, *transitions.dropped)]
    for action in plan.actions:
        delay_ms = 0
        cause = _event_cause("", action.audience_id, action.trigger, set(), joined, left)
        if (
            action.trigger == pb.TRIGGER_IN_AUDIENCE_AT_VISIT_END
            and action.audience_id in state.audiences
        ):
            cause = "in audience at visit end"
            delay_ms = action.delay_ms
        if cause is not None:
            key = visit_end_key(state.profile_id, action.id, visit.visit_id)
            fire_and_record(action, c, key, left_names, outcome, cause, delay_ms)
    record_notes(c, outcome)
    if c.identity_notes is not None:
        record_identity_notes(c.identity_notes, outcome)

    for attribute_id in visit.attributes:
        outcome.changed_attributes[attribute_id] = None
    close_visit(state, plan.visit_tallies)
    return outcome


def evaluate_delayed(
    defs: CompiledDefinitions,
    state: ProfileState,
    action_id: str,
    now_ms: int,
    *,
    idempotency_key: str | None = None,
) -> FiredAction | None:
    """Re-evaluate a delayed end-of-visit action when it is due.

    Fires (returns the action, built now from the current profile and the current
    definitions) only if the action still exists with an IN_AUDIENCE_AT_VISIT_END trigger
    and the visitor is in its audience now (re-evaluated, not read from the stored
    membership). The key defaults to the one `end_visit` gave it for the most recently
    ended visit, so a later qualifying visit that rescheduled it keeps one key per visit.
    Nothing in ``state`` is changed.
    """
    plan = plan_for(defs)
    action = plan.action_by_id.get(action_id)
    if action is None or action.trigger != pb.TRIGGER_IN_AUDIENCE_AT_VISIT_END:
        return None
    c = _context(plan, state, None, now_ms, now_ms, None)
    if not is_member(plan, c, action.audience_id):
        return None
    key = idempotency_key or visit_end_key(state.profile_id, action.id, state.last_visit_id)
    result = fire(action, c, key, [])
    return result if isinstance(result, FiredAction) else None


# --- typed values for the API layer ------------------------------------------------------------


def to_attribute_value(
    defn: pb.AttributeDefinition | int,
    value: Any,
    tally_touched: dict[str, int] | None = None,
) -> event_pb2.AttributeValue | None:
    """An attribute's plain value as an ``AttributeValue`` (``None`` when unassigned).

    ``defn`` is the attribute's definition or its ``AttributeType`` (built-ins:
    `BUILTIN_TYPES`); ``tally_touched`` (``state.tally_touched[id]``) breaks favourite ties.
    """
    attribute_type = defn if isinstance(defn, int) else defn.type
    return value_protos.to_attribute_value(attribute_type, value, tally_touched)


def from_attribute_value(value: event_pb2.AttributeValue) -> Any:
    """An ``AttributeValue`` as the engine's plain value (``None`` when unset)."""
    return value_protos.from_attribute_value(value)


def attribute_value_of(
    defs: CompiledDefinitions, state: ProfileState, attribute_id: str
) -> event_pb2.AttributeValue | None:
    """The typed value of any attribute of a profile: stored, built-in or favourite."""
    definition = defs.attributes.get(attribute_id)
    if definition is not None:
        if definition.scope == pb.ATTRIBUTE_SCOPE_VISIT:
            store = state.visit.attributes if state.visit is not None else {}
        else:
            store = state.attributes
        return to_attribute_value(
            definition, store.get(attribute_id), state.tally_touched.get(attribute_id)
        )
    if attribute_id in BUILTIN_TYPES:
        value = builtin_values(state).get(attribute_id)
        return to_attribute_value(BUILTIN_TYPES[attribute_id], value, recency_of(value))
    if attribute_id == UNBADGED:
        unbadged = True if is_unbadged(state, plan_for(defs).badge_ids) else None
        return to_attribute_value(pb.ATTRIBUTE_TYPE_BADGE, unbadged)
    tally_id, _, suffix = attribute_id.rpartition(".")
    tally = defs.attributes.get(tally_id)
    if suffix == "favorite" and tally is not None and tally.type == pb.ATTRIBUTE_TYPE_TALLY:
        typed = attribute_value_of(defs, state, tally_id)
        if typed is not None and typed.tally_value.favorite:
            return event_pb2.AttributeValue(string_value=typed.tally_value.favorite)
    return None


def _typed(
    defs: CompiledDefinitions, state: ProfileState, stored: dict[str, Any], builtins: Iterable[str]
) -> dict[str, event_pb2.AttributeValue]:
    metas = plan_for(defs).metas  # per version: no definition protos read per request
    tally_touched = state.tally_touched
    typed: dict[str, event_pb2.AttributeValue] = {}
    for attribute_id, value in stored.items():
        meta = metas.get(attribute_id)
        if meta is None or meta.is_badge:
            continue  # no longer defined, or a badge (listed separately)
        proto = value_protos.to_attribute_value(meta.type, value, tally_touched.get(attribute_id))
        if proto is not None:
            typed[attribute_id] = proto
    for name in builtins:
        # Only the built-ins asked for are read (`builtin_values` would read them all, for
        # the visitor's and again for the visit's values).
        read = BUILTIN_READERS.get(name)
        value = read(state) if read is not None else None
        if value is not None:
            proto = to_attribute_value(BUILTIN_TYPES[name], value, recency_of(value))
            if proto is not None:
                typed[name] = proto
    return typed


_VISITOR_BUILTINS = tuple(
    name for name in BUILTIN_TYPES if name not in VISIT_BUILTINS and name not in BUILTIN_BADGES
)
_SORTED_VISIT_BUILTINS = tuple(sorted(VISIT_BUILTINS))


def visitor_attribute_values(
    defs: CompiledDefinitions, state: ProfileState
) -> dict[str, event_pb2.AttributeValue]:
    """Visitor-scoped values by id, visitor built-ins included, badges excluded (they are
    the assigned badge attribute ids in ``state.attributes``)."""
    return _typed(defs, state, state.attributes, _VISITOR_BUILTINS)


def visit_attribute_values(
    defs: CompiledDefinitions, state: ProfileState
) -> dict[str, event_pb2.AttributeValue]:
    """The open visit's values by id, visit built-ins included (empty without a visit)."""
    if state.visit is None:
        return {}
    return _typed(defs, state, state.visit.attributes, _SORTED_VISIT_BUILTINS)


def profile_badges(defs: CompiledDefinitions, state: ProfileState) -> list[str]:
    """The profile's assigned badges, sorted; ``[UNBADGED]`` (Tealium's preloaded badge of
    visitors with no custom badge) when it has none, unless an attribute has that id."""
    attributes = state.attributes
    badges = [b for b in plan_for(defs).badge_ids if attributes.get(b) is True]
    if not badges and UNBADGED not in defs.attributes:
        return [UNBADGED]
    return badges
