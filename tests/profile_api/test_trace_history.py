"""Who keeps a trace history (profile_service/storage/trace_history.py), through the real API
on real servers and Redis: not a visitor nobody follows and the sample leaves out; a visitor
while StreamTrace follows it; a visitor whose events carry a live-trace id; and a kept history
stays within its byte cap."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from crowd.client import CrowdClient, make_event
from crowd.profile.v1 import profile_service_pb2, trace_pb2
from profile_service.storage.trace_history import TraceHistory
from service_common.keys import DEFAULT_PARTITIONS, partition_keys_for
from tests.harness.waiting import eventually
from tests.profile_api.helpers import ADMIN_KEY, counter_definitions
from tests.profile_api.servers import Servers

ENTRY_TIMEOUT_S = 20


def _trace_key(visitor_id: str) -> str:
    return partition_keys_for(visitor_id, DEFAULT_PARTITIONS).trace(visitor_id)


async def _unsampled_client(servers: Servers, **overrides: object) -> CrowdClient:
    server = await servers.profile(trace_sample_rate=0.0, **overrides)
    crowd = CrowdClient(server.address, api_key=ADMIN_KEY)
    await crowd.publish_definitions(counter_definitions())
    return crowd


async def test_an_unfollowed_unsampled_visitor_has_no_trace_stream_until_followed(
    servers: Servers, redis_client: aioredis.Redis
) -> None:
    async with await _unsampled_client(servers) as crowd:
        await crowd.track_event("quiet", "page_view", event_id="q1")
        assert await redis_client.exists(_trace_key("quiet")) == 0

        # Following it from now on: its next events are traced and stored.
        call = crowd.profiles.StreamTrace(
            profile_service_pb2.StreamTraceRequest(visitor_id="quiet"),
            metadata=crowd.metadata,
        )
        try:

            async def received_q2() -> trace_pb2.TraceEntry:
                while True:
                    response = await call.read()
                    assert isinstance(response, profile_service_pb2.StreamTraceResponse)
                    if response.entry.event_id == "q2":
                        return response.entry

            # The follower sets the tracing marker before it reads: send once it is there.
            keys = partition_keys_for("quiet", DEFAULT_PARTITIONS)
            reader = asyncio.ensure_future(received_q2())
            await eventually(lambda: redis_client.exists(keys.tracing("quiet")))
            await crowd.track_event("quiet", "page_view", event_id="q2")
            entry = await asyncio.wait_for(reader, ENTRY_TIMEOUT_S)
            assert entry.kind == trace_pb2.TRACE_ENTRY_KIND_EVENT_RECEIVED
        finally:
            call.cancel()
        assert await redis_client.exists(_trace_key("quiet")) == 1


async def test_events_with_a_live_trace_id_keep_the_visitors_history(
    servers: Servers, redis_client: aioredis.Redis
) -> None:
    async with await _unsampled_client(servers) as crowd:
        await crowd.track_events([make_event("debugged", "page_view", trace_id="dbg-1")])
        await crowd.track_events([make_event("plain", "page_view")])
        assert await redis_client.exists(_trace_key("debugged")) == 1
        assert await redis_client.exists(_trace_key("plain")) == 0


async def test_a_traced_visitor_on_an_unsampled_service_keeps_its_full_history(
    servers: Servers,
) -> None:
    # The service builds no trace records for visitors nobody traces: one whose events carry
    # a live-trace id still gets every record the engine writes, in order.
    async with await _unsampled_client(servers) as crowd:
        await crowd.track_events([make_event("full", "page_view", event_id="f1", trace_id="t")])
        await crowd.track_events([make_event("full", "page_view", event_id="f2", trace_id="t")])
        expected = [
            (trace_pb2.TRACE_ENTRY_KIND_EVENT_RECEIVED, "f1"),
            (trace_pb2.TRACE_ENTRY_KIND_NEW_VISITOR, "f1"),
            (trace_pb2.TRACE_ENTRY_KIND_VISIT_STARTED, "f1"),
            (trace_pb2.TRACE_ENTRY_KIND_ATTRIBUTES_CHANGED, "f1"),
            (trace_pb2.TRACE_ENTRY_KIND_EVENT_RECEIVED, "f2"),
            (trace_pb2.TRACE_ENTRY_KIND_ATTRIBUTES_CHANGED, "f2"),
        ]

        async def replayed() -> list[tuple[int, str]]:
            entries: list[tuple[int, str]] = []
            async for entry in crowd.stream_trace("full", after="0"):
                entries.append((entry.kind, entry.event_id))
                if len(entries) == len(expected):
                    return entries
            return entries

        assert await asyncio.wait_for(replayed(), ENTRY_TIMEOUT_S) == expected


async def test_a_kept_history_stays_within_its_byte_cap(
    servers: Servers, redis_client: aioredis.Redis
) -> None:
    server = await servers.profile(trace_sample_rate=1.0, trace_history_max_bytes=1024)
    async with CrowdClient(server.address, api_key=ADMIN_KEY) as crowd:
        await crowd.publish_definitions(counter_definitions())
        for n in range(30):
            await crowd.track_event("chatty", "page_view", event_id=f"c{n}")
        entries = await redis_client.xrange(_trace_key("chatty")) or []
        stored = sum(len(k) + len(v) for _, fields in entries for k, v in (fields or {}).items())
        assert 0 < len(entries) < 30
        assert stored <= 1024


def test_sampling_is_stable_and_follows_the_rate() -> None:
    ids = [f"visitor-{n}" for n in range(2000)]
    half = TraceHistory(sample_rate=0.5)
    picked = [i for i in ids if half.sampled(i)]
    assert 800 < len(picked) < 1200
    assert picked == [i for i in ids if TraceHistory(sample_rate=0.5).sampled(i)]
    assert not any(TraceHistory(sample_rate=0.0).sampled(i) for i in ids)
    assert all(TraceHistory(sample_rate=1.0).sampled(i) for i in ids)
