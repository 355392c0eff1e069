"""Request planning: batch caps per mode, never splitting an action, coalescing, order."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from crowd.common.v1.value_pb2 import StringList
from crowd.dispatch.v1.action_pb2 import Action, Attribute, UserAlias, UserIds
from dispatch_service.braze import (
    BatchMode,
    DeliveryItem,
    Endpoint,
    Outcome,
    Plan,
    PlannedRequest,
    build_objects,
    plan_requests,
)
from dispatch_service.braze.endpoints import MAX_BODY_BYTES, MAX_OBJECT_BYTES
from tests.braze.conftest import connector_for
from tests.braze.helpers import delete_action, identify_action, track_action, value

URL = "http://127.0.0.1:9"


def items_of(actions: list[Action], **overrides: Any) -> list[DeliveryItem]:
    connector = connector_for(URL, **overrides)
    return [
        DeliveryItem(f"k{i}", action, build_objects(action, connector))
        for i, action in enumerate(actions)
    ]


def plan(actions: list[Action], **overrides: Any) -> Plan:
    return plan_requests(connector_for(URL, **overrides), items_of(actions, **overrides))


def array_sizes(request: PlannedRequest) -> dict[str, int]:
    return {name: len(request.body.get(name, [])) for name in ("attributes", "events", "purchases")}


def test_200_track_actions_for_200_users_make_3_requests() -> None:
    actions = [track_action(f"user-{i}", {"plan": "gold"}) for i in range(200)]
    result = plan(actions)
    assert [r.object_count for r in result.requests] == [75, 75, 50]
    assert all(r.endpoint is Endpoint.TRACK for r in result.requests)
    assert result.settled == []
    # Every action is carried exactly once, and each index maps back to its own action.
    carried = [key for r in result.requests for key in r.keys]
    assert sorted(carried) == sorted(f"k{i}" for i in range(200))
    second = result.requests[1]
    assert second.keys_at("attributes", 0) == ("k75",)
    assert second.body["attributes"][0]["external_id"] == "user-75"


def test_one_action_with_many_objects_is_never_split() -> None:
    # 30 objects per action (1 attribute object + 29 events): two fit a 75-object request,
    # a third would have to be split, so it opens the next request.
    actions = [
        track_action(f"user-{i}", {"n": i}, events=[f"e{j}" for j in range(29)]) for i in range(5)
    ]
    result = plan(actions)
    assert [r.keys for r in result.requests] == [("k0", "k1"), ("k2", "k3"), ("k4",)]
    for request in result.requests:
        for key in request.keys:
            owned = [
                (name, index)
                for name, origins in request.origins.items()
                for index, keys in enumerate(origins)
                if key in keys
            ]
            assert len(owned) == 30


def test_small_actions_fill_the_gaps_left_by_big_ones() -> None:
    big = [
        track_action(f"big-{i}", {"n": i}, events=[f"e{j}" for j in range(49)]) for i in range(2)
    ]
    small = [track_action(f"small-{i}", {"n": i}) for i in range(50)]
    result = plan([big[0], big[1], *small])
    # 50 + 25 small in the first request, 50 + 25 in the second: the minimum, 2 requests.
    assert [r.object_count for r in result.requests] == [75, 75]


def test_action_with_more_objects_than_a_request_fails_permanently() -> None:
    actions = [
        track_action("u1", events=[f"e{j}" for j in range(76)]),
        track_action("u2", {"a": 1}),
    ]
    result = plan(actions)
    assert [r.keys for r in result.requests] == [("k1",)]
    [refused] = result.settled
    assert refused.idempotency_key == "k0"
    assert refused.outcome is Outcome.FAILED
    assert "76 objects" in refused.reason and "never split" in refused.reason


def test_coalescing_merges_attribute_objects_of_one_user() -> None:
    first = track_action(
        "u1",
        {"plan": "silver", "city": "Oslo"},
        operations=[
            Attribute(name="points", increment=5),
            Attribute(name="tags", add=StringList(values=["a", "b"])),
        ],
    )
    second = track_action(
        "u1",
        {"plan": "gold"},
        events=["upgraded"],
        operations=[
            Attribute(name="points", increment=3),
            Attribute(name="tags", remove=StringList(values=["a"])),
            Attribute(name="tags", add=StringList(values=["c"])),
        ],
    )
    other = track_action("u2", {"plan": "bronze"})
    [request] = plan([first, second, other]).requests
    assert request.body["attributes"] == [
        {
            "external_id": "u1",
            "plan": "gold",
            "city": "Oslo",
            "points": {"inc": 8},
            "tags": {"add": ["b", "c"], "remove": ["a"]},
        },
        {"external_id": "u2", "plan": "bronze"},
    ]
    assert request.keys_at("attributes", 0) == ("k0", "k1")
    assert request.keys_at("attributes", 1) == ("k2",)
    assert request.keys_at("events", 0) == ("k1",)
    assert request.object_count == 3


def test_coalescing_lets_many_updates_of_few_users_share_one_request() -> None:
    actions = [track_action(f"user-{i % 10}", {"seen": i}) for i in range(500)]
    [request] = plan(actions).requests
    assert len(request.body["attributes"]) == 10
    # Later values win.
    assert request.body["attributes"][3] == {"external_id": "user-3", "seen": 493}
    assert len(request.keys_at("attributes", 3)) == 50


def test_per_array_mode_allows_75_per_array() -> None:
    actions = [track_action(f"user-{i}", {"a": 1}, events=["e"], purchases=1) for i in range(100)]
    result = plan(actions, batch_mode=BatchMode.PER_ARRAY75)
    assert [array_sizes(r) for r in result.requests] == [
        {"attributes": 75, "events": 75, "purchases": 75},
        {"attributes": 25, "events": 25, "purchases": 25},
    ]


def test_combined50_mode_caps_total_objects_at_50() -> None:
    actions = [track_action(f"user-{i}", {"a": 1}, events=["e"]) for i in range(60)]
    result = plan(actions, batch_mode=BatchMode.COMBINED50)
    assert [r.object_count for r in result.requests] == [50, 50, 20]
    assert all(sum(array_sizes(r).values()) <= 50 for r in result.requests)


def test_default_mode_counts_all_arrays_together() -> None:
    actions = [track_action(f"user-{i}", {"a": 1}, events=["e"], purchases=1) for i in range(50)]
    result = plan(actions)
    assert [r.object_count for r in result.requests] == [75, 75]
    assert all(sum(array_sizes(r).values()) <= 75 for r in result.requests)


def test_object_over_100_kb_fails_its_action_and_is_never_sent() -> None:
    # 420 values of 250 characters: each is valid, together ~106 KB of JSON.
    huge = [Attribute(name=f"a{i}", set=value("x" * 250)) for i in range(420)]
    actions = [track_action("u1", operations=huge), track_action("u2", {"ok": True})]
    result = plan(actions)
    assert [r.keys for r in result.requests] == [("k1",)]
    [refused] = result.settled
    assert refused.outcome is Outcome.FAILED
    assert "attributes object" in refused.reason and str(MAX_OBJECT_BYTES) in refused.reason


def test_bodies_stay_under_4_mb() -> None:
    # ~90 KB per attributes object: 75 of them would be ~6.7 MB.
    actions = [
        track_action(
            f"user-{i}",
            operations=[Attribute(name=f"a{j}", set=value("y" * 250)) for j in range(350)],
        )
        for i in range(75)
    ]
    result = plan(actions)
    assert len(result.requests) == 2
    for request in result.requests:
        assert len(request.encoded) <= MAX_BODY_BYTES
    assert sum(r.object_count for r in result.requests) == 75


def test_a_user_never_moves_to_an_earlier_request() -> None:
    # u0 fills most of request 1 with a 74-object action; its next update cannot fit there
    # and goes to request 2. A third update of u0 must not jump back into request 1's last
    # free slot, or Braze could apply it before the second.
    actions = [
        track_action("u0", {"v": 1}, events=[f"e{j}" for j in range(73)]),
        track_action("u0", {"v": 2}, events=["x", "y"]),
        track_action("u0", {"v": 3}),
    ]
    result = plan(actions)
    assert [r.keys for r in result.requests] == [("k0",), ("k1", "k2")]
    assert result.requests[1].body["attributes"] == [{"external_id": "u0", "v": 3}]


def test_plans_stay_near_the_minimum_request_count() -> None:
    rng = random.Random(7)
    actions = []
    for i in range(3000):
        events = [f"e{j}" for j in range(rng.choice([0, 0, 0, 1, 2, 5]))]
        actions.append(track_action(f"user-{rng.randrange(2000)}", {"n": i}, events=events))
    result = plan(actions)
    objects = sum(r.object_count for r in result.requests)
    assert len(result.requests) <= 1.05 * math.ceil(objects / 75)


def test_deletes_are_grouped_by_identifier_kind_50_per_request() -> None:
    actions = [delete_action(UserIds(external_id=f"e{i}")) for i in range(60)]
    actions += [
        delete_action(UserIds(user_alias=UserAlias(alias_name=f"a{i}", alias_label="l")))
        for i in range(3)
    ]
    actions += [delete_action(UserIds(external_id="e0"))]  # the same user twice: one entry
    result = plan(actions)
    bodies = [r.body for r in result.requests]
    assert [list(b) for b in bodies] == [["external_ids"], ["external_ids"], ["user_aliases"]]
    assert len(bodies[0]["external_ids"]) == 50
    assert len(bodies[1]["external_ids"]) == 10
    assert bodies[2]["user_aliases"][0] == {"alias_name": "a0", "alias_label": "l"}
    assert result.requests[0].keys_at("external_ids", 0) == ("k0", "k63")


def test_identifies_go_50_per_request_before_tracks() -> None:
    actions = [track_action("t1", {"a": 1})]
    actions += [identify_action(f"ext-{i}", f"anon-{i}") for i in range(51)]
    result = plan(actions)
    assert [r.endpoint for r in result.requests] == [
        Endpoint.IDENTIFY,
        Endpoint.IDENTIFY,
        Endpoint.TRACK,
    ]
    assert len(result.requests[0].body["aliases_to_identify"]) == 50
    assert result.requests[0].body["merge_behavior"] == "merge"
    assert result.requests[0].body["aliases_to_identify"][0] == {
        "external_id": "ext-0",
        "user_alias": {"alias_name": "anon-0", "alias_label": "crowd_id"},
    }


def test_actions_that_would_overtake_an_earlier_phase_are_deferred() -> None:
    actions = [
        track_action("u1", {"a": 1}),
        delete_action(UserIds(external_id="u1")),
        track_action("u1", {"a": 2}),  # after the delete: would be sent before it
        track_action("u2", {"a": 3}),
        identify_action("u3", "anon"),
        track_action("u3", {"a": 4}),  # after the identify: fine, identify goes first
    ]
    result = plan(actions)
    [deferred] = result.settled
    assert deferred.idempotency_key == "k2"
    assert deferred.outcome is Outcome.RETRY and deferred.retry_after_s == 0.0
    assert [r.endpoint for r in result.requests] == [
        Endpoint.IDENTIFY,
        Endpoint.TRACK,
        Endpoint.DELETE,
    ]
    assert set(result.requests[1].keys) == {"k0", "k3", "k5"}


def test_empty_track_action_is_skipped() -> None:
    result = plan([track_action("u1")])
    assert result.requests == []
    assert [r.outcome for r in result.settled] == [Outcome.SKIPPED]


@pytest.mark.parametrize("mode", list(BatchMode))
def test_every_request_body_is_plain_json_within_the_caps(mode: BatchMode) -> None:
    actions = [track_action(f"user-{i % 97}", {"i": i}, events=["e"] * (i % 3)) for i in range(400)]
    for request in plan(actions, batch_mode=mode).requests:
        decoded = json.loads(request.encoded)
        sizes = [len(decoded.get(n, [])) for n in ("attributes", "events", "purchases")]
        if mode.per_array:
            assert max(sizes) <= 75
        else:
            assert sum(sizes) <= mode.limit
