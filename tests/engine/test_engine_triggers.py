"""Audience transitions and the actions they fire: joined, left, in audience at the start
and end of a visit (delayed included), event feeds; delayed re-evaluation."""

from __future__ import annotations

from typing import Any

from crowd.profile.v1 import trace_pb2
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.processor import evaluate_delayed
from profile_service.engine.state import Outcome
from tests.engine.helpers import (
    HOUR,
    MINUTE,
    T0,
    Visitor,
    attr,
    attribute,
    compile_doc,
    cond,
    const,
    enrichment,
    evt,
    is_event,
)

K = trace_pb2.TraceEntryKind


def action(action_id: str, source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": action_id,
        "connector_id": "braze",
        **source,
        "track_user": {"identifier": {"external_id": attr("cid")}},
        **extra,
    }


def on(audience: str, trigger: str) -> dict[str, Any]:
    return {"audience": {"audience_id": audience, "trigger": trigger}}


def defs_with(
    *actions: dict[str, Any], audiences: list[dict[str, Any]] | None = None
) -> CompiledDefinitions:
    return compile_doc(
        {
            "attributes": [
                attribute(
                    "cid", "string", enrichment("set", evt("event.visitor_id"), when="new_visitor")
                ),
                attribute("points", "number", enrichment("increment", evt("points"))),
                attribute(
                    "closed_visits", "number", enrichment("increment", const(1), when="visit_ended")
                ),
            ],
            "audiences": audiences
            if audiences is not None
            else [
                {
                    "id": "gold",
                    "name": "Gold",
                    "expression": {
                        "condition": cond(attr("points"), "greater_than_or_equal", const(100))
                    },
                }
            ],
            "event_feeds": [
                {"id": "purchases", "rule": {"groups": [{"conditions": [is_event("purchase")]}]}}
            ],
            "actions": list(actions),
        }
    )


def fired(outcome: Outcome) -> list[tuple[str, str, int]]:
    return [(a.action_id, a.idempotency_key, a.delay_ms) for a in outcome.actions]


def test_joined_fires_once_per_join_and_left_fires_on_leaving() -> None:
    defs = defs_with(
        action("on_join", on("gold", "joined")), action("on_leave", on("gold", "left"))
    )
    v = Visitor(defs)
    assert fired(v.send("earn", T0, points=60.0)) == []
    outcome = v.send("earn", T0 + MINUTE, points=50.0)
    assert outcome.audiences_joined == ["gold"]
    assert fired(outcome) == [("on_join", f"visitor-1:on_join:earn-{T0 + MINUTE}", 0)]
    assert fired(v.send("earn", T0 + 2 * MINUTE, points=5.0)) == []  # still in: no re-fire
    outcome = v.send("spend", T0 + 3 * MINUTE, points=-100.0)
    assert outcome.audiences_left == ["gold"]
    assert fired(outcome) == [("on_leave", f"visitor-1:on_leave:spend-{T0 + 3 * MINUTE}", 0)]
    outcome = v.send("earn", T0 + 4 * MINUTE, points=200.0)
    assert [a.action_id for a in outcome.actions] == ["on_join"]  # joining again fires again
    kinds = [r.kind for r in outcome.trace]
    assert K.TRACE_ENTRY_KIND_AUDIENCE_JOINED in kinds
    assert K.TRACE_ENTRY_KIND_ACTION_TRIGGERED in kinds


def test_in_audience_at_visit_start_fires_on_the_first_event_of_each_visit() -> None:
    defs = defs_with(action("at_start", on("gold", "in_audience_at_visit_start")))
    v = Visitor(defs)
    # The event opening the visit qualifies the visitor: that counts as in the audience
    # at the start of the visit (membership is taken after the event's enrichments).
    outcome = v.send("earn", T0, points=150.0)
    assert fired(outcome) == [("at_start", f"visitor-1:at_start:earn-{T0}", 0)]
    assert fired(v.send("view", T0 + MINUTE)) == []  # not at the start of a visit
    outcome = v.send("view", T0 + 2 * HOUR)  # a new visit, still in the audience
    assert [a.action_id for a in outcome.actions] == ["at_start"]
    assert v.profile.visit is not None and v.profile.visit.audiences_at_start == ["gold"]
    v.send("spend", T0 + 2 * HOUR + MINUTE, points=-150.0)
    assert fired(v.send("view", T0 + 4 * HOUR)) == []  # a new visit, not in the audience


def test_in_audience_at_visit_end_immediate_and_delayed() -> None:
    defs = defs_with(
        action("at_end", on("gold", "in_audience_at_visit_end")),
        action("later", on("gold", "in_audience_at_visit_end"), delay="2h"),
    )
    v = Visitor(defs)
    v.send("earn", T0, points=150.0)
    visit_id = v.profile.visit.visit_id if v.profile.visit else ""
    outcome = v.end(T0 + HOUR)
    assert fired(outcome) == [
        ("at_end", f"visitor-1:at_end:{visit_id}:end", 0),
        ("later", f"visitor-1:later:{visit_id}:end", 2 * HOUR),
    ]
    kinds = [r.kind for r in outcome.trace]
    assert K.TRACE_ENTRY_KIND_ACTION_DELAYED in kinds
    # Not in the audience at the end of the next visit: nothing fires.
    v.send("spend", T0 + 2 * HOUR, points=-150.0)
    assert fired(v.end(T0 + 4 * HOUR)) == []


def test_delayed_action_fires_only_if_still_in_the_audience_when_due() -> None:
    defs = defs_with(
        action("later", on("gold", "in_audience_at_visit_end"), delay="2h"),
        action("on_join", on("gold", "joined")),
    )
    v = Visitor(defs)
    v.send("earn", T0, points=150.0)
    scheduled = v.end(T0 + HOUR).actions[0]
    due = evaluate_delayed(defs, v.profile, "later", T0 + 3 * HOUR)
    assert due is not None
    assert due.idempotency_key == scheduled.idempotency_key  # one key per visit end
    assert due.action.fired_at.ToMilliseconds() == T0 + 3 * HOUR
    assert due.action.track_user.user.external_id == "visitor-1"
    assert evaluate_delayed(defs, v.profile, "on_join", T0 + 3 * HOUR) is None  # not delayed
    assert evaluate_delayed(defs, v.profile, "nope", T0 + 3 * HOUR) is None
    v.send("spend", T0 + 2 * HOUR, points=-100.0)  # left before it was due
    assert evaluate_delayed(defs, v.profile, "later", T0 + 3 * HOUR) is None


def test_transitions_at_visit_end_fire_joined_with_a_visit_key() -> None:
    audiences = [
        {
            "id": "regular",
            "name": "Regular",
            "expression": {
                "condition": cond(attr("closed_visits"), "greater_than_or_equal", const(2))
            },
        }
    ]
    defs = defs_with(action("on_join", on("regular", "joined")), audiences=audiences)
    v = Visitor(defs)
    v.send("view", T0)
    assert fired(v.end(T0 + HOUR)) == []
    v.send("view", T0 + 2 * HOUR)
    visit_id = v.profile.visit.visit_id if v.profile.visit else ""
    outcome = v.end(T0 + 3 * HOUR)
    assert outcome.audiences_joined == ["regular"]
    assert fired(outcome) == [("on_join", f"visitor-1:on_join:{visit_id}:end", 0)]


def test_event_feed_actions_fire_on_every_matching_event() -> None:
    defs = defs_with(action("feed", {"event_feed": "purchases"}))
    v = Visitor(defs)
    assert fired(v.send("view", T0)) == []
    outcome = v.send("purchase", T0 + MINUTE)
    assert fired(outcome) == [("feed", f"visitor-1:feed:purchase-{T0 + MINUTE}", 0)]
    assert outcome.trace[0].details["feeds_matched"] == ["purchases"]
    assert len(v.send("purchase", T0 + 2 * MINUTE).actions) == 1
    assert fired(v.end(T0 + HOUR)) == []  # feeds match events only


def test_disabled_actions_never_fire() -> None:
    defs = defs_with(action("off", {"event_feed": "purchases"}, disabled=True))
    assert Visitor(defs).send("purchase", T0).actions == []


def test_an_action_without_a_user_identifier_is_not_fired_and_traced() -> None:
    defs = defs_with(
        {
            "id": "anonymous",
            "connector_id": "braze",
            "event_feed": "purchases",
            "track_user": {"identifier": {"external_id": evt("customer_id")}},
        }
    )
    outcome = Visitor(defs).send("purchase", T0)
    assert outcome.actions == []
    failed = [r for r in outcome.trace if r.kind == K.TRACE_ENTRY_KIND_ACTION_FAILED]
    assert failed and "identifier" in failed[0].details["reason"]


def test_memberships_of_audiences_no_longer_defined_are_dropped_without_firing() -> None:
    v = Visitor(defs_with(action("on_leave", on("gold", "left"))))
    v.send("earn", T0, points=150.0)
    v.defs = defs_with(action("on_leave", on("gold", "left")), audiences=[])
    outcome = v.send("view", T0 + MINUTE)
    assert outcome.audiences_left == ["gold"]
    assert outcome.actions == []
    assert v.profile.audiences == {}
