"""`crowd.channels.ChannelPool`: several connections, used in turn, skipping failing ones."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from crowd.channels import ChannelPool
from tests.harness import free_port


@pytest_asyncio.fixture
async def live_target() -> AsyncIterator[str]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def _check(channel: grpc.aio.Channel) -> None:
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)


async def test_channels_are_taken_in_turn_each_on_its_own_connection(live_target: str) -> None:
    pool = ChannelPool.open(live_target, 3)
    try:
        taken = [pool.take() for _ in range(6)]
        assert taken == pool.channels * 2
        for channel in pool.channels:
            await _check(channel)
        # Each connected on its own (a shared connection would leave the others IDLE).
        assert {c.get_state() for c in pool.channels} == {grpc.ChannelConnectivity.READY}
    finally:
        await pool.close()


async def test_a_failing_channel_is_skipped_while_another_works(live_target: str) -> None:
    dead = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
    live = grpc.aio.insecure_channel(live_target)
    pool = ChannelPool([dead, live])
    try:
        with pytest.raises(grpc.aio.AioRpcError):
            await _check(dead)
        assert dead.get_state() == grpc.ChannelConnectivity.TRANSIENT_FAILURE
        for _ in range(4):
            channel = pool.take()
            assert channel is live
            await _check(channel)
    finally:
        await pool.close()


def test_a_pool_needs_a_channel() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ChannelPool([])
