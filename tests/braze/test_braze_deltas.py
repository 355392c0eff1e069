"""Deltas: only attributes Braze does not already hold are sent; memory follows acceptance."""

from __future__ import annotations

import redis.asyncio as aioredis

from braze_sandbox import BrazeSandbox
from crowd.common.v1.value_pb2 import StringList
from crowd.dispatch.v1.action_pb2 import Action, Attribute, UserIds
from dispatch_service.braze import Outcome, PendingAction
from dispatch_service.braze.deltas import SKIP_REASON
from tests.braze.conftest import StackFactory
from tests.braze.helpers import delete_action, identify_action, track_action


def one(key: str, action: Action) -> list[PendingAction]:
    return [PendingAction(key, action)]


async def test_second_identical_update_sends_nothing_and_is_skipped(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    first = await stack.delivery.deliver(one("k1", track_action("u1", {"plan": "gold", "n": 3})))
    assert first[0].outcome is Outcome.DELIVERED
    [second] = await stack.delivery.deliver(
        one("k2", track_action("u1", {"n": 3.0, "plan": "gold"}))
    )
    assert (second.outcome, second.reason) == (Outcome.SKIPPED, SKIP_REASON)
    assert len(sandbox.requests) == 1
    assert sandbox.data_points.attributes == 2


async def test_changed_update_sends_only_the_change_and_events_always_go(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    await stack.delivery.deliver(one("k1", track_action("u1", {"plan": "gold", "city": "Oslo"})))
    [result] = await stack.delivery.deliver(
        one("k2", track_action("u1", {"plan": "gold", "city": "Bergen"}, events=["moved"]))
    )
    assert result.outcome is Outcome.DELIVERED
    body = sandbox.requests[-1].body
    assert body["attributes"] == [{"external_id": "u1", "city": "Bergen"}]
    assert [e["name"] for e in body["events"]] == ["moved"]
    # Unchanged attributes with an event: the event still goes, the attribute does not.
    await stack.delivery.deliver(one("k3", track_action("u1", {"plan": "gold"}, events=["x"])))
    assert "attributes" not in sandbox.requests[-1].body
    assert sandbox.get_user("u1").attributes == {"plan": "gold", "city": "Bergen"}  # type: ignore[union-attr]


async def test_operations_are_never_filtered_and_make_the_value_unknown(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    await stack.delivery.deliver(one("k1", track_action("u1", {"points": 5, "tags": ["a"]})))
    bump = [
        Attribute(name="points", increment=1),
        Attribute(name="tags", add=StringList(values=["b"])),
    ]
    await stack.delivery.deliver(one("k2", track_action("u1", operations=bump)))
    await stack.delivery.deliver(one("k3", track_action("u1", operations=bump)))
    # After the increments the remembered 5 is void: setting 5 again must be sent.
    [reset] = await stack.delivery.deliver(one("k4", track_action("u1", {"points": 5})))
    assert reset.outcome is Outcome.DELIVERED
    assert [r.body["attributes"][0] for r in sandbox.requests[1:]] == [
        {"external_id": "u1", "points": {"inc": 1}, "tags": {"add": ["b"]}},
        {"external_id": "u1", "points": {"inc": 1}, "tags": {"add": ["b"]}},
        {"external_id": "u1", "points": 5},
    ]


async def test_objects_braze_rejected_are_not_remembered(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    sandbox.faults.add_minor_error("u1", "forced", input_array="attributes", times=1)
    [refused] = await stack.delivery.deliver(one("k1", track_action("u1", {"plan": "gold"})))
    assert refused.outcome is Outcome.FAILED
    [accepted] = await stack.delivery.deliver(one("k2", track_action("u1", {"plan": "gold"})))
    assert accepted.outcome is Outcome.DELIVERED
    assert sandbox.requests[-1].body["attributes"] == [{"external_id": "u1", "plan": "gold"}]


async def test_failed_requests_are_not_remembered(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    await stack.delivery.deliver(one("k1", track_action("u1", {"plan": "silver"})))
    sandbox.faults.set(down=True)
    [lost] = await stack.delivery.deliver(one("k2", track_action("u1", {"plan": "gold"})))
    assert lost.outcome is Outcome.RETRY
    sandbox.faults.set(down=False)
    # Braze still holds silver; gold was never accepted, so a retry sends it.
    [again] = await stack.delivery.deliver(one("k2", track_action("u1", {"plan": "gold"})))
    assert again.outcome is Outcome.DELIVERED
    assert sandbox.get_user("u1").attributes == {"plan": "gold"}  # type: ignore[union-attr]


async def test_update_only_writes_are_not_remembered(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    # u1 does not exist: Braze ignores an update-only object silently.
    await stack.delivery.deliver(
        one("k1", track_action("u1", {"plan": "gold"}, update_existing_only=True))
    )
    assert sandbox.get_user("u1") is None
    [create] = await stack.delivery.deliver(one("k2", track_action("u1", {"plan": "gold"})))
    assert create.outcome is Outcome.DELIVERED
    assert sandbox.get_user("u1").attributes == {"plan": "gold"}  # type: ignore[union-attr]


async def test_a_value_reverted_within_a_batch_is_still_sent_in_order(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    await stack.delivery.deliver(one("k1", track_action("u1", {"plan": "silver"})))
    results = await stack.delivery.deliver(
        [
            PendingAction("k2", track_action("u1", {"plan": "gold"})),
            PendingAction("k3", track_action("u1", {"plan": "silver"})),
            PendingAction("k4", track_action("u1", {"plan": "silver"})),
        ]
    )
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.DELIVERED, Outcome.SKIPPED]
    assert sandbox.get_user("u1").attributes == {"plan": "silver"}  # type: ignore[union-attr]


async def test_delete_and_identify_forget_the_memory(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    await stack.delivery.deliver(one("k1", track_action("u1", {"plan": "gold"})))
    await stack.delivery.deliver(one("k2", delete_action(UserIds(external_id="u1"))))
    [recreate] = await stack.delivery.deliver(one("k3", track_action("u1", {"plan": "gold"})))
    assert recreate.outcome is Outcome.DELIVERED
    assert sandbox.get_user("u1").attributes == {"plan": "gold"}  # type: ignore[union-attr]
    await stack.delivery.deliver(one("k4", identify_action("u1", "anon-1")))
    [after] = await stack.delivery.deliver(one("k5", track_action("u1", {"plan": "gold"})))
    assert after.outcome is Outcome.DELIVERED


async def test_memory_lives_in_redis_with_a_ttl_and_is_shared_by_replicas(
    sandbox: BrazeSandbox, make_stack: StackFactory, redis_client: aioredis.Redis
) -> None:
    one_replica = await make_stack(sandbox.url)
    other_replica = await make_stack(sandbox.url)
    await one_replica.delivery.deliver(one("k1", track_action("u1", {"plan": "gold", "n": 1})))
    key = one_replica.deltas.key("external_id:u1")
    assert await redis_client.hgetall(key) == {b"plan": b'"gold"', b"n": b"1"}
    assert 29 * 86400 < await redis_client.ttl(key) <= 30 * 86400
    [result] = await other_replica.delivery.deliver(one("k2", track_action("u1", {"n": 1})))
    assert result.outcome is Outcome.SKIPPED


async def test_deltas_can_be_turned_off(sandbox: BrazeSandbox, make_stack: StackFactory) -> None:
    stack = await make_stack(sandbox.url, deltas=False)
    for key in ("k1", "k2"):
        [result] = await stack.delivery.deliver(one(key, track_action("u1", {"plan": "gold"})))
        assert result.outcome is Outcome.DELIVERED
    assert len(sandbox.requests) == 2
    assert sandbox.data_points.attributes == 2


async def test_mostly_repeated_updates_cut_attribute_data_points(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    rounds = 5
    for r in range(rounds):
        actions = [
            PendingAction(
                f"r{r}-{u}",
                track_action(
                    f"user-{u}", {"plan": "gold", "country": "NO", "visits": u + (r == 4)}
                ),
            )
            for u in range(100)
        ]
        await stack.delivery.deliver(actions)
    # Without deltas: 5 rounds x 100 users x 3 attributes. With: the first round, plus one
    # changed attribute per user in the last round.
    assert sandbox.data_points.attributes == 300 + 100
