"""A service rides out Redis being down: at start (it keeps retrying and says NOT_SERVING)
and later (the watchdog flips health to NOT_SERVING and back).

Real parts only: redis-server processes of the harness started late, SIGKILLed and started
again on the same port; the services built by ``create_server`` (and one run as
``python -m profile_service``), queried over real gRPC channels.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crowd.profile.v1 import profile_service_pb2, profile_service_pb2_grpc
from dispatch_service.server import create_server as create_dispatch_server
from dispatch_service.settings import DispatchSettings
from profile_service.server import create_server as create_profile_server
from profile_service.settings import ProfileSettings
from service_common.server import ManagedServer
from tests.harness import RedisServer, free_port
from tests.profile_api.helpers import wait_for

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
KEY = "outage-test-key-0123456789"
PASSWORD = "outage-secret-password"
REPO = Path(__file__).resolve().parents[2]


async def _health(address: str) -> int | None:
    """The overall health status, or ``None`` while the server does not answer."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.aio.AioRpcError:
            return None
        return int(reply.status)


def _health_is(address: str, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await _health(address) == status

    return check


@pytest.fixture
async def late_redis() -> AsyncIterator[RedisServer]:
    """A redis-server with a fixed free port that is NOT started yet."""
    server = RedisServer(port=free_port())
    try:
        yield server
    finally:
        await asyncio.to_thread(server.cleanup)


async def _ride_out_outages(managed: ManagedServer, redis: RedisServer) -> None:
    await managed.start()  # returns although Redis is down (a no-op when already started)
    try:
        assert await _health(managed.address) == NOT_SERVING
        await asyncio.to_thread(redis.start)
        await wait_for(_health_is(managed.address, SERVING), "SERVING once Redis is up")
        await asyncio.to_thread(redis.kill)
        await wait_for(_health_is(managed.address, NOT_SERVING), "NOT_SERVING after SIGKILL")
        await asyncio.to_thread(redis.start)
        await wait_for(_health_is(managed.address, SERVING), "SERVING after the restart")
    finally:
        await managed.stop(0)


@pytest.mark.asyncio
async def test_profile_service_waits_for_redis_and_follows_it(late_redis: RedisServer) -> None:
    settings = ProfileSettings.load(
        port=0,
        redis_url=f"redis://127.0.0.1:{late_redis.port}/0",
        api_keys={KEY: ["ingest", "read", "admin"]},
        redis_watchdog_interval_seconds=0.1,
    )
    managed = await create_profile_server(settings)
    await managed.start()
    try:
        # While Redis has never answered, RPCs that need it are refused as UNAVAILABLE.
        async with grpc.aio.insecure_channel(managed.address) as channel:
            stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetProfile(
                    profile_service_pb2.GetProfileRequest(),
                    metadata=[("authorization", f"Bearer {KEY}")],
                    timeout=5,
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    except BaseException:
        await managed.stop(0)
        raise
    await _ride_out_outages(managed, late_redis)


@pytest.mark.asyncio
async def test_dispatch_service_waits_for_redis_and_follows_it(late_redis: RedisServer) -> None:
    settings = DispatchSettings.load(
        port=0,
        redis_url=f"redis://127.0.0.1:{late_redis.port}/0",
        api_keys={KEY: ["dispatch", "read", "admin"]},
        redis_watchdog_interval_seconds=0.1,
    )
    managed = await create_dispatch_server(settings)
    await _ride_out_outages(managed, late_redis)


@pytest.mark.asyncio
async def test_profile_process_keeps_running_without_redis_and_stops_on_sigterm() -> None:
    port, redis_port = free_port(), free_port()  # nothing listens on redis_port
    env = {
        **os.environ,
        "CROWD_PROFILE_API_KEYS": f'{{"{KEY}": ["read"]}}',
        # The password travels in the environment, never on the command line.
        "CROWD_PROFILE_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{redis_port}/0",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "profile_service",
        "--port",
        str(port),
        "--log-format",
        "text",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        address = f"127.0.0.1:{port}"
        status = await wait_for(lambda: _health(address), "the health service to answer", 60)
        assert status == NOT_SERVING
        assert proc.returncode is None  # still alive, still retrying
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    log = stderr.decode()
    assert f"Redis at 127.0.0.1:{redis_port} not ready" in log
    assert PASSWORD not in log


@pytest.mark.asyncio
async def test_a_hung_redis_answers_unavailable_not_a_hang(late_redis: RedisServer) -> None:
    """Redis stopped (SIGSTOP: connections open, nothing answers): with no socket timeout per
    reply, each Redis call's own bound still ends the RPC with UNAVAILABLE (a hang would
    reach the 60 s deadline as DEADLINE_EXCEEDED); after SIGCONT the service serves again."""
    await asyncio.to_thread(late_redis.start)
    settings = ProfileSettings.load(
        port=0, redis_url=late_redis.url, api_keys={KEY: ["ingest", "read", "admin"]}
    )
    managed = await create_profile_server(settings)
    await managed.start()
    assert late_redis.pid is not None
    try:
        await wait_for(_health_is(managed.address, SERVING), "SERVING")
        async with grpc.aio.insecure_channel(managed.address) as channel:
            stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
            request = profile_service_pb2.GetProfileRequest()
            request.visitor.visitor_id = "hung-visitor"
            metadata = [("authorization", f"Bearer {KEY}")]
            os.kill(late_redis.pid, signal.SIGSTOP)
            try:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.GetProfile(request, metadata=metadata, timeout=60)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            finally:
                os.kill(late_redis.pid, signal.SIGCONT)
            await wait_for(_health_is(managed.address, SERVING), "SERVING after SIGCONT")
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.GetProfile(request, metadata=metadata, timeout=60)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await managed.stop(0)
