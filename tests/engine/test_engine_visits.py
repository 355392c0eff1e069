"""Visits: start, expiry (inactivity, maximum length, per platform), end, built-ins."""

from __future__ import annotations

from crowd.profile.v1 import trace_pb2
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.builtin_values import builtin_values
from profile_service.engine.processor import end_visit, process_event
from tests.engine.helpers import (
    DAY,
    HOUR,
    MINUTE,
    T0,
    Visitor,
    attribute,
    const,
    enrichment,
    event,
    evt,
    single,
)

K = trace_pb2.TraceEntryKind


def visit_defs(**settings: object) -> CompiledDefinitions:
    return single(
        attribute("page", "string", enrichment("set", evt("page")), scope="visit"),
        attribute("ends", "number", enrichment("increment", const(1), when="visit_ended")),
        settings=dict(settings),
    )


def test_first_event_creates_the_visitor_and_starts_a_visit_with_builtins() -> None:
    v = Visitor(visit_defs())
    outcome = v.send("view", T0, page="/")
    assert outcome.new_visitor and outcome.visit_started and not outcome.visit_ended
    state = v.profile
    assert state.profile_id == "visitor-1" and state.visitor_ids == ["visitor-1"]
    assert builtin_values(state) == {
        "lifetime_event_count": 1.0,
        "lifetime_visit_count": 1.0,
        "first_visit": T0,
        "returning_visitor": False,
        "visit_start": T0,
        "visit_event_count": 1.0,
        "visit_duration": 0.0,
        "visit_end": T0,
        "total_time_on_site": 0.0,
        "weeks_since_first_visit": 0.0,
        "average_visits_per_week": 1.0,
    }
    kinds = [record.kind for record in outcome.trace]
    assert kinds[:3] == [
        K.TRACE_ENTRY_KIND_EVENT_RECEIVED,
        K.TRACE_ENTRY_KIND_NEW_VISITOR,
        K.TRACE_ENTRY_KIND_VISIT_STARTED,
    ]


def test_events_within_the_timeout_stay_in_one_visit() -> None:
    v = Visitor(visit_defs())
    v.send("view", T0, page="/a")
    outcome = v.send("view", T0 + 29 * MINUTE, page="/b")
    outcome = v.send("view", T0 + 58 * MINUTE, page="/c")
    assert not outcome.visit_started and not outcome.new_visitor
    values = builtin_values(v.profile)
    assert values["visit_event_count"] == 3.0
    assert values["visit_duration"] == 58.0
    assert values["lifetime_visit_count"] == 1.0


def test_an_event_after_the_timeout_ends_the_visit_first_then_starts_a_new_one() -> None:
    v = Visitor(visit_defs())
    v.send("view", T0, page="/a")
    v.send("view", T0 + 10 * MINUTE, page="/b")
    outcome = v.send("view", T0 + 41 * MINUTE)  # 31 minutes of inactivity
    assert outcome.visit_ended and outcome.visit_started
    state = v.profile
    assert v.value("ends") == 1.0  # the visit-ended enrichment ran
    assert v.value("page") is None  # the old visit's attributes are gone
    assert outcome.changed_attributes["page"] is None
    values = builtin_values(state)
    assert values["last_visit"] == T0 + 40 * MINUTE  # the end: last event + 30 minutes
    assert values["returning_visitor"] is True
    assert values["lifetime_visit_count"] == 2.0
    assert values["visit_event_count"] == 1.0
    assert values["lifetime_event_count"] == 3.0
    kinds = [record.kind for record in outcome.trace]
    assert kinds.index(K.TRACE_ENTRY_KIND_VISIT_ENDED) < kinds.index(
        K.TRACE_ENTRY_KIND_EVENT_RECEIVED
    )


def test_expiry_uses_processing_time_for_late_events() -> None:
    # An event stamped inside the visit but processed after the visit expired belongs to
    # a new visit: the sweeper would have ended the old one by then.
    v = Visitor(visit_defs())
    v.send("view", T0, page="/a")
    outcome = v.send("view", T0 + MINUTE, now_ms=T0 + HOUR)
    assert outcome.visit_ended and outcome.visit_started


def test_out_of_order_events_do_not_move_the_visit_back() -> None:
    v = Visitor(visit_defs())
    v.send("view", T0 + 10 * MINUTE, now_ms=T0 + 10 * MINUTE)
    v.send("view", T0, now_ms=T0 + 11 * MINUTE)
    visit = v.profile.visit
    assert visit is not None and visit.last_event_ms == T0 + 11 * MINUTE


def test_a_visit_ends_after_the_maximum_length_despite_activity() -> None:
    v = Visitor(visit_defs())
    started = 0
    for i in range(0, 25 * 3):  # an event every 20 minutes for 25 hours
        if v.send("view", T0 + i * 20 * MINUTE).visit_started:
            started += 1
    assert started == 2
    assert v.profile.last_visit_ms == T0 + DAY


def test_platform_visit_timeouts() -> None:
    defs = visit_defs(platform_visit_timeouts={"ios": "2m"})
    ios = Visitor(defs, visitor_id="ios")
    ios.apply(event("open", T0, platform="ios", visitor_id="ios"))
    outcome = ios.apply(event("open", T0 + 3 * MINUTE, platform="ios", visitor_id="ios"))
    assert outcome.visit_started and outcome.visit_ended
    web = Visitor(defs, visitor_id="web")
    web.apply(event("open", T0, platform="web", visitor_id="web"))
    outcome = web.apply(event("open", T0 + 3 * MINUTE, platform="web", visitor_id="web"))
    assert not outcome.visit_started


def test_end_visit_runs_visit_end_processing_once_and_clears_the_visit() -> None:
    v = Visitor(visit_defs())
    v.send("view", T0, page="/a")
    outcome = v.end(T0 + 2 * HOUR)
    assert outcome.visit_ended
    assert v.profile.visit is None
    assert v.value("ends") == 1.0
    assert v.profile.last_visit_ms == T0 + 30 * MINUTE  # the expiry, not the sweep time
    assert v.profile.last_visit_id != ""
    assert outcome.changed_attributes == {"ends": 1.0, "page": None}
    ended = [r for r in outcome.trace if r.kind == K.TRACE_ENTRY_KIND_VISIT_ENDED]
    assert ended[0].details["event_count"] == 1.0
    again = v.end(T0 + 3 * HOUR)  # no open visit: nothing happens
    assert not again.visit_ended and again.trace == []
    assert v.value("ends") == 1.0


def test_processing_the_same_event_twice_from_the_same_state_is_deterministic() -> None:
    defs = visit_defs()
    first = process_event(defs, None, event("view", T0), T0)
    second = process_event(defs, None, event("view", T0), T0)
    assert first.state.to_bytes() == second.state.to_bytes()
    ended_a = end_visit(defs, first.state, T0 + HOUR)
    ended_b = end_visit(defs, second.state, T0 + HOUR)
    assert ended_a.state.last_visit_id == ended_b.state.last_visit_id
