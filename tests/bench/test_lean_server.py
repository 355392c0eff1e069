"""The benchmark's lean baseline server (bench/lean_server.py): a real server on port 0 and the
test Redis, over real gRPC. It is the floor the ingest ratios divide by, so it must do the
work it claims: one result per event, profiles that persist, GetProfile reading them back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bench.lean_server import LEAN_VERSION, create_lean_server, lean_key
from crowd.client import CrowdClient, make_event
from crowd.profile.v1 import event_pb2, profile_service_pb2
from profile_service.settings import ProfileSettings
from service_common.server import ManagedServer
from tests.profile_api.helpers import ADMIN_KEY, PROFILE_KEYS


@pytest_asyncio.fixture
async def lean(redis_url: str) -> AsyncIterator[ManagedServer]:
    settings = ProfileSettings.model_validate(
        {"port": 0, "redis_url": redis_url, "api_keys": PROFILE_KEYS}
    )
    server = await create_lean_server(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(1.0)


@pytest_asyncio.fixture
async def crowd(lean: ManagedServer) -> AsyncIterator[CrowdClient]:
    async with CrowdClient(lean.address, api_key=ADMIN_KEY) as client:
        yield client


async def test_track_events_answers_each_event_and_get_profile_reads_it_back(
    crowd: CrowdClient, redis_client: aioredis.Redis
) -> None:
    response = await crowd.profiles.TrackEvents(
        profile_service_pb2.TrackEventsRequest(
            events=[
                make_event("lean-a", "page_view", {"page": "/x"}, event_id="e1"),
                make_event("lean-b", "purchase", {"order_total": 12.5}, event_id="e2"),
                make_event("lean-a", "page_view", {"page": "/y"}, event_id="e3"),
            ]
        ),
        metadata=crowd.metadata,
    )
    results = list(response.results)
    assert [(r.index, r.event_id, r.profile_id) for r in results] == [
        (0, "e1", "lean-a"),
        (1, "e2", "lean-b"),
        (2, "e3", "lean-a"),
    ]
    assert [r.new_visitor for r in results] == [True, True, False]
    assert {r.definitions_version for r in results} == {LEAN_VERSION}
    changed = {c.attribute_id: c.value for c in results[2].changed_attributes}
    assert changed["page_view_count"].number_value == 2
    assert changed["page"].string_value == "/y"
    assert await redis_client.exists(lean_key("lean-a")) == 1

    reply = await crowd.profiles.GetProfile(
        profile_service_pb2.GetProfileRequest(visitor=event_pb2.VisitorLookup(visitor_id="lean-b")),
        metadata=crowd.metadata,
    )
    assert reply.profile.profile_id == "lean-b"
    assert reply.profile.attributes["order_total"].number_value == 12.5


async def test_unknown_visitor_is_not_found_and_other_methods_are_unimplemented(
    crowd: CrowdClient,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await crowd.profiles.GetProfile(
            profile_service_pb2.GetProfileRequest(
                visitor=event_pb2.VisitorLookup(visitor_id="never-seen")
            ),
            metadata=crowd.metadata,
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await crowd.profiles.TrackEvents(
            profile_service_pb2.TrackEventsRequest(), metadata=crowd.metadata
        )
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await crowd.profiles.DeleteProfile(
            profile_service_pb2.DeleteProfileRequest(
                visitor=event_pb2.VisitorLookup(visitor_id="lean-a")
            ),
            metadata=crowd.metadata,
        )
    assert other.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_basic_view_leaves_out_the_changes_like_the_real_service(
    crowd: CrowdClient,
) -> None:
    results = await crowd.track_events(
        [make_event("lean-basic", "page_view", {"page": "/x"}, event_id="b1")],
        result_view=event_pb2.EVENT_RESULT_VIEW_BASIC,
    )
    assert [(r.index, r.event_id, r.new_visitor) for r in results] == [(0, "b1", True)]
    assert not results[0].changed_attributes
    profile = await crowd.get_profile("lean-basic")
    assert profile.attributes["page"].string_value == "/x"  # written all the same
