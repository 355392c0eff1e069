"""``result_view`` of TrackEvent / TrackEvents / StreamEvents: BASIC answers the same outcomes
without the attribute changes; unset means FULL; an undefined view is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from crowd.client import CrowdClient, make_event
from crowd.profile.v1 import event_pb2, profile_service_pb2
from tests.profile_api.shop import VIP_ACTION, VIPS, shop_definitions

BASIC = event_pb2.EVENT_RESULT_VIEW_BASIC


def outcomes(result: event_pb2.EventResult) -> tuple[object, ...]:
    """What an event did, apart from its attribute values and its visitor's ids."""
    return (
        result.index,
        result.duplicate,
        result.new_visitor,
        result.visit_started,
        list(result.badges_assigned),
        list(result.audiences_joined),
        list(result.audiences_left),
        [a.action_id for a in result.actions_fired],
        result.definitions_version,
    )


def journey(visitor: str) -> list[event_pb2.Event]:
    return [
        make_event(visitor, "page_view", {"customer_id": f"{visitor}-customer"}),
        make_event(visitor, "purchase", {"order_total": 600.0}, event_id=f"{visitor}-1"),
        make_event(visitor, "purchase", {"order_total": 600.0}, event_id=f"{visitor}-1"),
    ]


async def test_basic_results_have_the_same_outcomes_without_attribute_changes(
    client: CrowdClient,
) -> None:
    await client.publish_definitions(shop_definitions())
    full = await client.track_events(journey("view-full"))  # no view given: FULL
    basic = await client.track_events(journey("view-basic"), result_view=BASIC)

    assert all(r.changed_attributes for r in full[:2])
    assert not any(r.changed_attributes for r in basic)
    assert [outcomes(r) for r in basic] == [outcomes(r) for r in full]
    assert list(basic[1].audiences_joined) == [VIPS]
    assert [a.action_id for a in basic[1].actions_fired] == [VIP_ACTION]
    assert basic[1].actions_fired[0].idempotency_key
    assert [r.duplicate for r in basic] == [False, False, True]
    # The view changes the answer only: both profiles were written alike.
    stored_full = await client.get_profile("view-full")
    stored_basic = await client.get_profile("view-basic")
    assert stored_basic.attributes["lifetime_order_value"].number_value == 600.0
    assert set(stored_basic.attributes) == set(stored_full.attributes)
    assert list(stored_basic.badges) == list(stored_full.badges) == ["vip"]


async def test_track_event_and_stream_events_honour_the_view(client: CrowdClient) -> None:
    await client.publish_definitions(shop_definitions())
    one = await client.profiles.TrackEvent(
        profile_service_pb2.TrackEventRequest(
            event=make_event("view-one", "purchase", {"order_total": 20.0}), result_view=BASIC
        ),
        metadata=client.metadata,
    )
    assert one.result.new_visitor and not one.result.changed_attributes

    async def send() -> AsyncIterator[profile_service_pb2.StreamEventsRequest]:
        yield profile_service_pb2.StreamEventsRequest(
            sequence=1, events=[make_event("view-stream", "page_view")], result_view=BASIC
        )
        yield profile_service_pb2.StreamEventsRequest(
            sequence=2, events=[make_event("view-stream", "purchase", {"order_total": 5.0})]
        )

    call = client.profiles.StreamEvents(send(), metadata=client.metadata, timeout=10)
    answers = [answer async for answer in call]
    assert [a.sequence for a in answers] == [1, 2]
    assert answers[0].results[0].new_visitor and not answers[0].results[0].changed_attributes
    assert answers[1].results[0].changed_attributes  # the view is per request


async def test_an_undefined_view_is_invalid_argument(client: CrowdClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.profiles.TrackEvents(
            profile_service_pb2.TrackEventsRequest(
                events=[make_event("view-bad", "page_view")],
                result_view=7,  # type: ignore[arg-type]
            ),
            metadata=client.metadata,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "result_view" in (refused.value.details() or "")
