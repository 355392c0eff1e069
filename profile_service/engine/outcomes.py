"""Filling an `Outcome`: changed attributes, badges, audience transitions, fired actions and
the trace records that describe them."""

from __future__ import annotations

from typing import Any

from crowd.common.v1 import value_pb2
from crowd.profile.v1 import trace_pb2
from profile_service.engine.actions import ActionPlan, fire
from profile_service.engine.audiences import Transitions
from profile_service.engine.context import EvalContext
from profile_service.engine.identity_values import identity_record
from profile_service.engine.plan import EnginePlan
from profile_service.engine.state import FiredAction, IdentityNote, Outcome, TraceRecord
from profile_service.engine.value_protos import (
    to_common_value,
)
from profile_service.engine.values import (
    MISSING,
    display_value,
)


def record_changes(plan: EnginePlan, c: EvalContext, outcome: Outcome) -> None:
    """Compare every written attribute with its value before the first write; report the
    differences (badges as assigned/removed) and trace them.

    The trace record's details hold the new plain values (``None``: removed); convert them
    with `trace_details` when writing a ``TraceEntry``.
    """
    details: dict[str, Any] = {}
    traced = outcome.traced
    metas = plan.metas
    visitor_store = c.state.attributes
    visit = c.state.visit
    visit_store: dict[str, Any] = visit.attributes if visit is not None else {}
    for attribute_id, original in c.originals.items():
        meta = metas.get(attribute_id)
        if meta is None:
            continue  # a tally favourite recorded for "has changed"
        # `EvalContext.store_of`, inlined: this runs for every attribute every event writes.
        store = visit_store if meta.visit_scope else visitor_store
        current = store.get(attribute_id, MISSING)
        if current == original:
            continue
        value = None if current is MISSING else current
        if meta.is_badge:
            if value is None:
                outcome.badges_removed.append(attribute_id)
            else:
                outcome.badges_assigned.append(attribute_id)
        else:
            outcome.changed_attributes[attribute_id] = value
        if traced:
            details[attribute_id] = value
    if details:
        outcome.trace.append(
            TraceRecord(
                trace_pb2.TRACE_ENTRY_KIND_ATTRIBUTES_CHANGED,
                f"{len(details)} attribute(s) changed: {', '.join(details)}",
                details,
            )
        )


def record_notes(c: EvalContext, outcome: Outcome) -> None:
    """Trace values that could not be saved or mapped."""
    if c.notes and outcome.traced:
        outcome.trace.append(
            TraceRecord(
                trace_pb2.TRACE_ENTRY_KIND_ATTRIBUTES_CHANGED,
                "not saved: " + "; ".join(c.notes),
                {"not_saved": list(c.notes)},
            )
        )
    c.notes.clear()


def record_identity_notes(notes: list[IdentityNote], outcome: Outcome) -> None:
    """Report visitor-ID values that were not set, each with an IDENTITY_IGNORED record."""
    for note in notes:
        outcome.identity_notes.append(note)
        if outcome.traced:
            outcome.trace.append(identity_record(note))


def record_transitions(plan: EnginePlan, transitions: Transitions, outcome: Outcome) -> None:
    """Report and trace audiences joined and left."""
    outcome.audiences_joined += transitions.joined
    outcome.audiences_left += transitions.left
    outcome.audiences_left += transitions.dropped
    if not outcome.traced:
        return
    for audience_id in transitions.joined:
        outcome.trace.append(
            TraceRecord(
                trace_pb2.TRACE_ENTRY_KIND_AUDIENCE_JOINED,
                f"joined audience {plan.audience_name(audience_id)!r}",
                {"audience_id": audience_id},
            )
        )
    for audience_id in transitions.left:
        outcome.trace.append(
            TraceRecord(
                trace_pb2.TRACE_ENTRY_KIND_AUDIENCE_LEFT,
                f"left audience {plan.audience_name(audience_id)!r}",
                {"audience_id": audience_id},
            )
        )
    for audience_id in transitions.dropped:
        outcome.trace.append(
            TraceRecord(
                trace_pb2.TRACE_ENTRY_KIND_AUDIENCE_LEFT,
                f"left audience {audience_id!r}: it is no longer defined",
                {"audience_id": audience_id},
            )
        )


def fire_and_record(
    action: ActionPlan,
    c: EvalContext,
    key: str,
    left_names: list[str],
    outcome: Outcome,
    cause: str,
    delay_ms: int = 0,
) -> FiredAction | None:
    """Fire one action, add it to the outcome and trace it (or trace why it could not)."""
    result = fire(action, c, key, left_names, delay_ms)
    if not isinstance(result, str):
        outcome.actions.append(result)
    if outcome.traced:
        outcome.trace.append(_fire_record(action, key, cause, delay_ms, result))
    return None if isinstance(result, str) else result


def _fire_record(
    action: ActionPlan, key: str, cause: str, delay_ms: int, result: FiredAction | str
) -> TraceRecord:
    """The trace record of one `fire_and_record` (``result`` a string: why it failed)."""
    details: dict[str, Any] = {"action_id": action.id, "idempotency_key": key, "cause": cause}
    if isinstance(result, str):
        details["reason"] = result
        return TraceRecord(
            trace_pb2.TRACE_ENTRY_KIND_ACTION_FAILED,
            f"action {action.id!r} not fired: {result}",
            details,
        )
    if delay_ms:
        details["delay_ms"] = float(delay_ms)
        return TraceRecord(
            trace_pb2.TRACE_ENTRY_KIND_ACTION_DELAYED,
            f"action {action.id!r} delayed by {delay_ms} ms ({cause})",
            details,
        )
    return TraceRecord(
        trace_pb2.TRACE_ENTRY_KIND_ACTION_TRIGGERED,
        f"action {action.id!r} triggered ({cause})",
        details,
    )


def merge(earlier: Outcome, later: Outcome) -> Outcome:
    """Fold the outcome of an implicit visit end into the outcome of the event after it."""
    changed = dict(earlier.changed_attributes)
    changed.update(later.changed_attributes)
    later.changed_attributes = changed
    later.visit_ended = later.visit_ended or earlier.visit_ended
    later.badges_assigned[:0] = earlier.badges_assigned
    later.badges_removed[:0] = earlier.badges_removed
    later.audiences_joined[:0] = earlier.audiences_joined
    later.audiences_left[:0] = earlier.audiences_left
    later.actions[:0] = earlier.actions
    later.trace[:0] = earlier.trace
    later.identity_notes[:0] = earlier.identity_notes
    return later


def trace_details(details: dict[str, Any]) -> dict[str, value_pb2.Value]:
    """A trace record's details as ``TraceEntry.details``: scalars, dates and string lists
    as typed values, tallies, timelines and funnels as compact JSON strings, ``None`` as
    null."""
    converted: dict[str, value_pb2.Value] = {}
    for key, value in details.items():
        proto = to_common_value(value)
        if proto is None:
            proto = value_pb2.Value(string_value=str(display_value(value)))
        converted[key] = proto
    return converted
