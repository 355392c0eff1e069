"""Visit lifecycle: when a visit has expired, starting one, and closing one.

Visit timing runs on the *activity time* of an event, ``max(event time, processing
time)``: a visit starts at its first event's activity time, each event moves its last
activity forward (never back, events may arrive out of order), and it ends at
``min(last activity + timeout, start + max visit length)``. The timeout is chosen when the
visit starts from the event's platform (``EngineLimits.visit_timeout_for``).
"""

from __future__ import annotations

from typing import Any

from profile_service.definitions.model import EngineLimits
from profile_service.engine.state import NormalizedEvent, ProfileState, VisitState
from profile_service.engine.values import (
    MS_PER_MINUTE,
)


def activity_ms(event: NormalizedEvent, now_ms: int) -> int:
    """The time an event counts as activity at."""
    return max(event.time_ms, now_ms)


def has_expired(state: ProfileState, at_ms: int, limits: EngineLimits) -> bool:
    """True if the profile has an open visit that has ended by ``at_ms``."""
    visit = state.visit
    return visit is not None and at_ms >= visit.expires_ms(limits.max_visit_length_ms)


def start_visit(
    state: ProfileState, event: NormalizedEvent, at_ms: int, limits: EngineLimits
) -> VisitState:
    """Open a new visit with ``event`` (its first event is counted by the caller)."""
    state.visit_count += 1
    visit = VisitState(
        # Unique per profile and deterministic, so reprocessing the same event after a
        # failed commit names the visit (and its end-of-visit actions) the same way.
        visit_id=f"{state.visit_count}-{at_ms}",
        started_ms=at_ms,
        last_event_ms=at_ms,
        timeout_ms=limits.visit_timeout_for(event.platform),
        platform=event.platform,
    )
    if state.first_visit_ms is None:
        state.first_visit_ms = at_ms
    state.visit = visit
    return visit


def end_time_ms(visit: VisitState, now_ms: int, limits: EngineLimits) -> int:
    """When a visit ended: its expiry, or now if it is ended before expiring."""
    return min(now_ms, visit.expires_ms(limits.max_visit_length_ms))


def mark_visit_ended(state: ProfileState, ended_ms: int) -> dict[str, Any]:
    """Update the visitor built-ins for the ending visit (before visit-ended enrichments,
    so they and the audiences see ``last_visit`` = this visit's end).

    Returns the visit's summary for the trace.
    """
    visit = state.visit
    if visit is None:
        return {}
    state.last_visit_ms = ended_ms
    state.last_visit_id = visit.visit_id
    state.time_on_site_ms += visit.last_event_ms - visit.started_ms
    state.ended_visits += 1
    state.updated_ms = max(state.updated_ms, ended_ms)
    return {
        "visit_id": visit.visit_id,
        "event_count": float(visit.event_count),
        "duration_minutes": (visit.last_event_ms - visit.started_ms) / MS_PER_MINUTE,
    }


def close_visit(state: ProfileState, visit_tallies: tuple[str, ...]) -> None:
    """Drop the ended visit with its attributes (and its tallies' recency records)."""
    for tally_id in visit_tallies:
        state.tally_touched.pop(tally_id, None)
    state.visit = None
