"""Ingestion through the real API (issue 3 §6): TrackEvent / TrackEvents / StreamEvents
results, refusal of malformed input naming each field with nothing written, and dedup."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable

import grpc
import grpc.aio
import pytest

from crowd.client import CrowdClient, make_event
from crowd.common.v1 import value_pb2
from crowd.profile.v1 import event_pb2, profile_service_pb2
from profile_service.api.values import from_value
from service_common.errors import decode_error
from tests.profile_api.shop import DELETE_ACTION, VIP_ACTION, VIPS, shop_definitions

EventFactory = Callable[[event_pb2.Event], None]


def changes(result: event_pb2.EventResult) -> dict[str, event_pb2.AttributeValue]:
    return {c.attribute_id: c.value for c in result.changed_attributes}


async def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    code, _, violations = decode_error(error)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    return [v.field for v in violations]


async def assert_not_found(client: CrowdClient, visitor: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await client.get_profile(visitor)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND, visitor


# --- results ---------------------------------------------------------------------------------


async def test_track_event_reports_typed_changes_badges_audiences_and_actions(
    client: CrowdClient,
) -> None:
    version = await client.publish_definitions(shop_definitions())
    first = await client.track_event("shopper", "page_view", {"customer_id": "cust-1"})
    assert first.new_visitor and first.visit_started
    assert first.definitions_version == version.version
    assert changes(first)["customer_id"].string_value == "cust-1"

    # Tealium's preloaded Unbadged: until a custom badge is earned.
    assert list((await client.get_profile("shopper")).badges) == ["unbadged"]

    small = await client.track_event("shopper", "purchase", {"order_total": 320.0})
    assert changes(small)["lifetime_order_value"].number_value == 320.0
    assert changes(small)["purchased"].bool_value is True
    assert not small.badges_assigned and not small.audiences_joined and not small.actions_fired

    big = await client.track_event("shopper", "purchase", {"order_total": 240.5})
    changed = changes(big)
    assert changed["lifetime_order_value"].WhichOneof("kind") == "number_value"
    assert changed["lifetime_order_value"].number_value == 560.5
    # Badges are reported as badges (not repeated among the changed attributes).
    assert list(big.badges_assigned) == ["vip"]
    assert list((await client.get_profile("shopper")).badges) == ["vip"]
    assert list(big.audiences_joined) == [VIPS]
    [fired] = big.actions_fired
    assert fired.action_id == VIP_ACTION and fired.idempotency_key
    assert not big.new_visitor and not big.visit_started
    assert big.profile_id == "shopper" and big.index == 0

    # Already a member: a further purchase changes the value but joins and fires nothing.
    again = await client.track_event("shopper", "purchase", {"order_total": 10.0})
    assert changes(again)["lifetime_order_value"].number_value == 570.5
    assert not again.audiences_joined and not again.actions_fired and not again.badges_assigned

    # An event feed fires on the event itself, with its own idempotency key.
    deleted = await client.track_event("shopper", "account_deleted")
    [feed] = deleted.actions_fired
    assert feed.action_id == DELETE_ACTION
    assert feed.idempotency_key and feed.idempotency_key != fired.idempotency_key

    profile = await client.get_profile("shopper")
    assert profile.attributes["customer_id"].string_value == "cust-1"
    assert profile.attributes["lifetime_order_value"].number_value == 570.5
    assert list(profile.badges) == ["vip"]  # badges are listed here, not among attributes
    assert [a.audience_id for a in profile.audiences] == [VIPS]
    assert profile.current_visit.event_count == 5
    assert profile.current_visit.attributes["purchased"].bool_value is True


async def test_track_events_answers_each_event_in_order(client: CrowdClient) -> None:
    await client.publish_definitions(shop_definitions())
    events = [
        make_event("batch-a", "purchase", {"order_total": 300.0, "customer_id": "cust-a1"}),
        make_event("batch-b", "purchase", {"order_total": 50.0}),
        make_event("batch-a", "purchase", {"order_total": 300.0}),
        make_event("batch-a", "page_view"),
    ]
    results = await client.track_events(events)
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert [r.profile_id for r in results] == ["batch-a", "batch-b", "batch-a", "batch-a"]
    # One visitor's events apply in order: the running total shows it.
    assert changes(results[0])["lifetime_order_value"].number_value == 300.0
    assert changes(results[2])["lifetime_order_value"].number_value == 600.0
    assert list(results[2].audiences_joined) == [VIPS]
    assert [a.action_id for a in results[2].actions_fired] == [VIP_ACTION]
    assert results[0].new_visitor and not results[2].new_visitor and results[1].new_visitor
    profile = await client.get_profile("batch-a")
    assert profile.attributes["lifetime_order_value"].number_value == 600.0
    assert list(profile.badges) == ["vip"]


async def test_stream_events_acknowledges_each_batch_and_survives_a_bad_one(
    counting: CrowdClient,
) -> None:
    requests = [
        profile_service_pb2.StreamEventsRequest(
            sequence=1, events=[make_event("streamer", "a"), make_event("streamer", "b")]
        ),
        profile_service_pb2.StreamEventsRequest(
            sequence=2, events=[make_event("stream-bad-good", "a"), make_event("", "b")]
        ),
        profile_service_pb2.StreamEventsRequest(sequence=3, events=[make_event("streamer", "c")]),
    ]

    async def send() -> AsyncIterator[profile_service_pb2.StreamEventsRequest]:
        for request in requests:
            yield request

    call = counting.profiles.StreamEvents(send(), metadata=counting.metadata, timeout=10)
    answers = [answer async for answer in call]
    assert [a.sequence for a in answers] == [1, 2, 3]
    assert [changes(r)["counter"].number_value for r in answers[0].results] == [1.0, 2.0]
    assert not answers[1].results
    assert [v.field for v in answers[1].violations] == ["events[1].visitor_id"]
    assert [changes(r)["counter"].number_value for r in answers[2].results] == [3.0]
    assert not answers[2].violations
    # The refused batch wrote nothing, not even its good event.
    await assert_not_found(counting, "stream-bad-good")


# --- malformed input -------------------------------------------------------------------------


def _missing_visitor(event: event_pb2.Event) -> None:
    event.visitor_id = ""


def _long_visitor(event: event_pb2.Event) -> None:
    event.visitor_id = "v" * 257


def _long_event_id(event: event_pb2.Event) -> None:
    event.event_id = "e" * 257


def _missing_name(event: event_pb2.Event) -> None:
    event.name = ""


def _nan_value(event: event_pb2.Event) -> None:
    event.data["order_total"].number_value = math.nan


def _infinite_in_list(event: event_pb2.Event) -> None:
    event.data["scores"].number_list.values.extend([1.0, math.inf])


def _unset_value(event: event_pb2.Event) -> None:
    event.data["order_total"].CopyFrom(value_pb2.Value())


def _far_future(event: event_pb2.Event) -> None:
    event.time.FromSeconds(4_102_444_800)  # 2100-01-01


def _seconds_as_millis(event: event_pb2.Event) -> None:
    event.time.FromSeconds(1_700_000)  # 1970: a unit mistake


async def test_event_strings_over_1500_characters_are_cut_not_refused(
    counting: CrowdClient,
) -> None:
    # Tealium cuts long event strings (a long URL must not lose the event): so do we.
    event = make_event("long-note", "purchase", {"order_total": 1.0})
    event.data["note"].string_value = "x" * 1499 + "yz" + "w" * 3000
    event.data["notes"].string_list.values.extend(["v" * 2000])
    assert from_value(event.data["note"]) == "x" * 1499 + "y"
    assert from_value(event.data["notes"]) == ["v" * 1500]
    [result] = await counting.track_events([event])
    assert result.profile_id


@pytest.mark.parametrize(
    ("spoil", "field"),
    [
        (_missing_visitor, "events[3].visitor_id"),
        (_long_visitor, "events[3].visitor_id"),
        (_long_event_id, "events[3].event_id"),
        (_missing_name, "events[3].name"),
        (_nan_value, "events[3].data['order_total']"),
        (_infinite_in_list, "events[3].data['scores']"),
        (_unset_value, "events[3].data['order_total']"),
        (_far_future, "events[3].time"),
        (_seconds_as_millis, "events[3].time"),
    ],
)
async def test_bad_event_refuses_the_whole_batch(
    counting: CrowdClient, spoil: EventFactory, field: str
) -> None:
    events = [make_event(f"good-{i}", "purchase", {"order_total": 1.0}) for i in range(5)]
    spoil(events[3])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await counting.track_events(events)
    assert await field_violations(refused.value) == [field]
    for visitor in ("good-0", "good-1", "good-2", "good-4"):
        await assert_not_found(counting, visitor)


async def test_every_bad_event_of_a_batch_is_named(counting: CrowdClient) -> None:
    events = [make_event(f"several-{i}", "page_view") for i in range(4)]
    events[0].visitor_id = ""
    events[2].name = ""
    events[2].data["x"].number_value = math.nan
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await counting.track_events(events)
    assert sorted(await field_violations(refused.value)) == [
        "events[0].visitor_id",
        "events[2].data['x']",
        "events[2].name",
    ]
    for visitor in ("several-1", "several-3"):
        await assert_not_found(counting, visitor)


async def test_too_many_events_and_empty_batch_are_refused(counting: CrowdClient) -> None:
    too_many = [make_event(f"many-{i}", "page_view") for i in range(1001)]
    with pytest.raises(grpc.aio.AioRpcError) as over:
        await counting.track_events(too_many)
    assert await field_violations(over.value) == ["events"]
    await assert_not_found(counting, "many-0")
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await counting.track_events([])
    assert await field_violations(empty.value) == ["events"]
    # The limit itself is fine.
    results = await counting.track_events(make_event(f"many-{i}", "a") for i in range(1000))
    assert len(results) == 1000


async def test_track_event_names_the_bad_field(counting: CrowdClient) -> None:
    request = profile_service_pb2.TrackEventRequest(event=make_event("", "page_view"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await counting.profiles.TrackEvent(request, metadata=counting.metadata, timeout=5)
    assert await field_violations(refused.value) == ["event.visitor_id"]
    with pytest.raises(grpc.aio.AioRpcError) as no_event:
        await counting.profiles.TrackEvent(
            profile_service_pb2.TrackEventRequest(), metadata=counting.metadata, timeout=5
        )
    assert await field_violations(no_event.value) == ["event"]


async def test_server_stays_healthy_after_bad_input(counting: CrowdClient) -> None:
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError):
            await counting.track_events([make_event("", "")])
    result = await counting.track_event("after-bad", "page_view")
    assert changes(result)["counter"].number_value == 1.0


# --- deduplication ---------------------------------------------------------------------------


async def test_duplicate_event_ids_are_ignored(counting: CrowdClient) -> None:
    first = await counting.track_event("dedup", "page_view", event_id="evt-1")
    again = await counting.track_event("dedup", "page_view", event_id="evt-1")
    assert not first.duplicate and again.duplicate
    assert not again.changed_attributes
    batch = await counting.track_events(
        [
            make_event("dedup", "page_view", event_id="evt-2"),
            make_event("dedup", "page_view", event_id="evt-2"),
            make_event("dedup", "page_view", event_id="evt-1"),
        ]
    )
    assert [r.duplicate for r in batch] == [False, True, True]
    # The same event id for another visitor is another event.
    other = await counting.track_event("dedup-other", "page_view", event_id="evt-1")
    assert not other.duplicate
    profile = await counting.get_profile("dedup")
    assert profile.attributes["counter"].number_value == 2.0
