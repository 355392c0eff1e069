"""The WAIT acknowledgement (``redis_wait_replicas``) on one Redis: a write is acknowledged only
once replicas confirmed it, and answered UNAVAILABLE when they do not, by the toolkit
(`execute_acknowledged`, `run_scripts`) and by both services (TrackEvent, SubmitActions).
The cluster side is in tests/cluster/test_cluster_profile_failover.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
import pytest_asyncio
import redis.asyncio
from redis.asyncio.client import Pipeline

from crowd.client import CrowdClient
from crowd.dispatch.v1 import action_pb2
from crowd.profile.v1 import event_pb2
from service_common.errors import decode_error
from service_common.redis_toolkit.replication import (
    ReplicasNotConfirmed,
    WaitPolicy,
    execute_acknowledged,
)
from service_common.redis_toolkit.scripts import LuaScript, ScriptCall, run_scripts
from tests.dispatch.helpers import track_action
from tests.harness import RedisServer, eventually
from tests.profile_api.helpers import ADMIN_KEY, DISPATCH_KEY, counter_definitions
from tests.profile_api.servers import Servers, Tracing, write_connectors

SET_SCRIPT = LuaScript("return redis.call('SET', KEYS[1], ARGV[1])", name="set")


@pytest.fixture
def replicated(redis_server: RedisServer, redis_url: str) -> Iterator[RedisServer]:
    """A replica of the shared server, in sync before the test starts."""
    replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(redis_server.port)))
    replica.start()
    try:
        yield replica
    finally:
        replica.cleanup()


async def _linked(client: redis.asyncio.Redis) -> bool:
    info = await client.info("replication")
    replica = info.get("slave0")
    return isinstance(replica, dict) and replica.get("state") == "online"


@pytest_asyncio.fixture
async def primary(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_without_a_replica_the_write_happens_but_is_not_confirmed(
    primary: redis.asyncio.Redis,
) -> None:
    with pytest.raises(ReplicasNotConfirmed) as unconfirmed:
        await execute_acknowledged(
            primary, lambda pipe: pipe.set("k", "v"), WaitPolicy(replicas=1, timeout_ms=50)
        )
    assert unconfirmed.value.code == grpc.StatusCode.UNAVAILABLE
    assert (unconfirmed.value.wanted, unconfirmed.value.confirmed) == (1, 0)
    assert await primary.get("k") == b"v"
    # Off: no WAIT at all, the replies as a plain pipeline gives them.
    assert await execute_acknowledged(primary, lambda pipe: pipe.set("k", "w"), WaitPolicy()) == [
        True
    ]


async def test_with_a_replica_replies_come_back_once_it_holds_the_writes(
    replicated: RedisServer, primary: redis.asyncio.Redis
) -> None:
    await eventually(lambda: _linked(primary), what="the replica to attach")
    policy = WaitPolicy(replicas=1, timeout_ms=4000)

    def fill(pipe: Pipeline) -> None:
        pipe.set("a", "1")
        pipe.incr("n")

    replies = await execute_acknowledged(
        primary,
        fill,
        policy,
        confirm_keys=["{tag}:earlier"],
    )
    assert replies == [True, 1]  # no WAIT or marker reply among them
    replica = replicated.client()
    try:
        assert replica.get("a") == b"1" and replica.get("n") == b"1"  # confirmed: already there
    finally:
        replica.close()
    assert await run_scripts(primary, [ScriptCall(SET_SCRIPT, ["s"], ["x"])], wait=policy) == [
        b"OK"
    ]
    with pytest.raises(ReplicasNotConfirmed):  # more replicas than there are
        await run_scripts(
            primary, [ScriptCall(SET_SCRIPT, ["s"], ["y"])], wait=WaitPolicy(2, timeout_ms=50)
        )


async def test_track_event_is_unavailable_until_a_replica_confirms_and_never_counted_twice(
    redis_server: RedisServer, redis_url: str, tracing: Tracing
) -> None:
    servers = Servers(redis_url, tracing)
    try:
        server = await servers.profile(redis_wait_replicas=1, redis_wait_timeout_ms=100)
        async with CrowdClient(server.address, api_key=ADMIN_KEY) as client:
            await client.publish_definitions(counter_definitions())
            for _ in range(2):  # the retry of a written but unconfirmed event: still refused
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await client.track_event("waiting", "page_view", event_id="e1")
                code, info, _ = decode_error(refused.value)
                assert code == grpc.StatusCode.UNAVAILABLE
                assert info is not None and info.reason == "REPLICATION_NOT_CONFIRMED"
                assert "replica" in (refused.value.details() or "")
            replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(redis_server.port)))
            replica.start()
            try:
                replica_client = replica.client()
                try:
                    # Once the replica holds it, the same event is acknowledged (a duplicate).
                    result = await eventually(
                        lambda: _acknowledged(client), what="an acknowledged retry", within=30
                    )
                    assert result is not None and result.duplicate
                    profile = await client.get_profile("waiting")
                    assert profile.attributes["counter"].number_value == 1.0
                    assert replica_client.exists(*replica_client.keys("*profile*waiting*"))
                finally:
                    replica_client.close()
            finally:
                replica.cleanup()
    finally:
        await servers.close()


async def _acknowledged(client: CrowdClient) -> event_pb2.EventResult | None:
    try:
        return await client.track_event("waiting", "page_view", event_id="e1")
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None


async def test_submit_actions_waits_for_a_replica_when_configured(
    redis_url: str, tracing: Tracing, tmp_path: Path
) -> None:
    servers = Servers(redis_url, tracing)
    try:
        dispatch = await servers.dispatch(
            write_connectors(tmp_path, "http://127.0.0.1:9", connector_id="braze-main"),
            background_workers=False,
            redis_wait_replicas=1,
            redis_wait_timeout_ms=100,
        )
        async with CrowdClient("", dispatch.address, api_key=DISPATCH_KEY) as client:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.submit_actions([track_action("wait-1")])
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()
            status = await client.get_action("wait-1")  # written, only not confirmed
            assert status.state == action_pb2.ACTION_STATE_ACCEPTED
    finally:
        await servers.close()
