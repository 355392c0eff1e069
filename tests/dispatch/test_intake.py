"""Intake: validation, durable storage, idempotency."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from crowd.dispatch.v1 import action_pb2
from dispatch_service.queue import ActionStore
from service_common.errors import InvalidArgument
from service_common.keys import DISPATCH_META_PARTITIONS, DispatchKeys, partition_of
from tests.dispatch.conftest import PARTITIONS
from tests.dispatch.helpers import CONNECTOR, queued_keys, track_action

ACCEPTED = action_pb2.ACTION_STATE_ACCEPTED


async def test_accepted_action_is_stored_and_queued(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    action = track_action("k1", visitor="v-42", attributes={"tier": "gold"})
    (outcome,) = await store.submit([action], now=1_700_000_000.0)

    assert (outcome.idempotency_key, outcome.state, outcome.duplicate) == ("k1", ACCEPTED, False)
    assert await queued_keys(redis_client, PARTITIONS) == ["k1"]
    record = DispatchKeys(partition_of("v-42", PARTITIONS)).action("k1")
    stored = action_pb2.Action.FromString(await _hget(redis_client, record, "action"))
    assert stored.track_user == action.track_user
    # Defaults are filled in at acceptance: fired_at is when it was received.
    assert stored.fired_at.ToMilliseconds() == 1_700_000_000_000
    status = await store.get("k1")
    assert status is not None
    assert (status.state, status.attempts, status.visitor_id) == (ACCEPTED, 0, "v-42")
    assert status.accepted_at.ToMilliseconds() == 1_700_000_000_000


async def test_same_key_twice_returns_first_outcome_and_queues_once(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    first = await store.submit([track_action("dup", attributes={"a": 1})])
    # A second submission with a different payload changes nothing.
    again = await store.submit([track_action("dup", attributes={"a": 2}), track_action("new")])

    assert first[0].duplicate is False
    assert (again[0].state, again[0].duplicate) == (ACCEPTED, True)
    assert again[1].duplicate is False
    assert sorted(await queued_keys(redis_client, PARTITIONS)) == ["dup", "new"]
    record = DispatchKeys(partition_of("visitor-1", PARTITIONS)).action("dup")
    stored = action_pb2.Action.FromString(await _hget(redis_client, record, "action"))
    assert stored.track_user.attributes[0].set.number_value == 1


async def test_key_repeated_within_one_request_is_stored_once(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    outcomes = await store.submit([track_action("same"), track_action("same", visitor="v-2")])

    assert [(o.state, o.duplicate) for o in outcomes] == [(ACCEPTED, False), (ACCEPTED, True)]
    assert await queued_keys(redis_client, PARTITIONS) == ["same"]


async def test_actions_of_many_visitors_take_one_outcome_each_in_order(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    actions = [track_action(f"key-{i}", visitor=f"visitor-{i}") for i in range(300)]
    outcomes = await store.submit(actions)

    assert [o.idempotency_key for o in outcomes] == [a.idempotency_key for a in actions]
    assert all(o.state == ACCEPTED and not o.duplicate for o in outcomes)
    queued = await queued_keys(redis_client, PARTITIONS)
    assert sorted(queued) == sorted(a.idempotency_key for a in actions)


async def test_invalid_request_is_refused_whole_naming_each_field(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    good = track_action("good")
    no_user = track_action("no-user")
    no_user.track_user.user.Clear()
    bad_purchase = track_action("bad-purchase")
    bad_purchase.track_user.purchases.append(
        action_pb2.Purchase(product_id="", currency="usd", price=1.0, quantity=101)
    )
    unknown_connector = track_action("", connector="nowhere")
    no_payload = action_pb2.Action(idempotency_key="x" * 513, connector_id=CONNECTOR)
    half_alias = action_pb2.Action(
        idempotency_key="alias",
        connector_id=CONNECTOR,
        visitor_id="v",
        identify_user=action_pb2.IdentifyUser(
            external_id="e", user_alias=action_pb2.UserAlias(alias_name="n")
        ),
    )
    empty_attribute = track_action("attr", attributes={"": "x"})

    with pytest.raises(InvalidArgument) as caught:
        await store.submit(
            [
                good,
                no_user,
                bad_purchase,
                unknown_connector,
                no_payload,
                half_alias,
                empty_attribute,
            ]
        )

    fields = {v.field for v in caught.value.violations}
    assert fields == {
        "actions[1].track_user.user",
        "actions[2].track_user.purchases[0].product_id",
        "actions[2].track_user.purchases[0].currency",
        "actions[2].track_user.purchases[0].quantity",
        "actions[3].idempotency_key",
        "actions[3].connector_id",
        "actions[4].idempotency_key",
        "actions[4].visitor_id",
        "actions[4].payload",
        "actions[5].identify_user.user_alias.alias_label",
        "actions[6].track_user.attributes[0].name",
    }
    # Only what ensure_queues created before the test: empty queues and the partition count.
    keys = {key.decode() async for key in redis_client.scan_iter()}
    assert keys == {DispatchKeys(p).queue for p in range(PARTITIONS)} | {DISPATCH_META_PARTITIONS}
    assert await queued_keys(redis_client, PARTITIONS) == []


async def test_request_size_and_cap_policy_are_validated(store: ActionStore) -> None:
    with pytest.raises(InvalidArgument) as empty:
        await store.submit([])
    assert [v.field for v in empty.value.violations] == ["actions"]

    capped = track_action("capped")  # max_sends counts per action_id, which it lacks
    capped.frequency_cap.max_sends = 2
    grouped = track_action("grouped")
    grouped.frequency_cap.cooldown_group = "promo"
    with pytest.raises(InvalidArgument) as caught:
        await store.submit([capped, grouped])
    assert {v.field for v in caught.value.violations} == {
        "actions[0].frequency_cap.max_sends",
        "actions[0].frequency_cap.window",
        "actions[1].frequency_cap.cooldown",
    }


async def test_action_without_trace_context_continues_the_active_span(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("SubmitActions") as span:
        await store.submit([track_action("traced")])
        expected = span.get_span_context()
    record = DispatchKeys(partition_of("visitor-1", PARTITIONS)).action("traced")
    traceparent = (await _hget(redis_client, record, "traceparent")).decode()
    assert traceparent == (
        f"00-{expected.trace_id:032x}-{expected.span_id:016x}-{expected.trace_flags:02x}"
    )
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_unknown_key_has_no_status(store: ActionStore) -> None:
    assert await store.get("never-submitted") is None


async def _hget(redis_client: aioredis.Redis, key: str, field: str) -> bytes:
    value = await redis_client.hget(key, field)
    assert isinstance(value, bytes)
    return value


async def test_store_refuses_a_dataset_of_another_partition_count(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    other = ActionStore(redis_client, PARTITIONS * 2, [CONNECTOR])
    with pytest.raises(ValueError, match="16 partitions"):
        await other.ensure_queues()


async def test_status_of_an_empty_key_is_invalid(store: ActionStore) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await store.get("")
    assert [v.field for v in caught.value.violations] == ["idempotency_key"]
