"""Foundation acceptance (issue 2) through real servers: health, reflection, API-key auth,
keys kept out of logs and spans, and the ``python -m profile_service`` process lifecycle."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from crowd.client import CrowdClient, make_event
from crowd.profile.v1 import profile_service_pb2, profile_service_pb2_grpc
from service_common.errors import decode_error
from service_common.server import ManagedServer
from tests.conftest import free_port
from tests.profile_api.helpers import (
    ADMIN_KEY,
    INGEST_KEY,
    READ_KEY,
    bearer,
    counter_definitions,
    secrets_in_logs,
    secrets_in_spans,
    wait_for,
)
from tests.profile_api.servers import Servers, Tracing, write_connectors

PROFILE_SERVICES = ["crowd.profile.v1.ProfileService", "crowd.profile.v1.DefinitionService"]
DISPATCH_SERVICES = ["crowd.dispatch.v1.DispatchService"]
REPO_ROOT = Path(__file__).resolve().parents[2]


async def health_of(address: str, service: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return int(reply.status)


async def listed_services(address: str) -> set[str]:
    """The service names server reflection (v1alpha) lists, asked without any key."""

    async def one_request() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        names: set[str] = set()
        async for response in stub.ServerReflectionInfo(one_request(), timeout=5):
            names |= {s.name for s in response.list_services_response.service}
        return names


@pytest.fixture
def dispatch_connectors(tmp_path: Path) -> Path:
    # Nothing is sent in these tests: the connector only has to be valid.
    return write_connectors(tmp_path, "http://127.0.0.1:9")


async def test_health_serving_for_both_services(
    servers: Servers, profile_server: ManagedServer, dispatch_connectors: Path
) -> None:
    dispatch_server = await servers.dispatch(dispatch_connectors)
    serving = health_pb2.HealthCheckResponse.SERVING
    for address, names in (
        (profile_server.address, PROFILE_SERVICES),
        (dispatch_server.address, DISPATCH_SERVICES),
    ):
        for name in ["", *names]:
            assert await health_of(address, name) == serving, (address, name)


async def test_reflection_lists_the_services(
    servers: Servers, profile_server: ManagedServer, dispatch_connectors: Path
) -> None:
    dispatch_server = await servers.dispatch(dispatch_connectors)
    assert set(PROFILE_SERVICES) <= await listed_services(profile_server.address)
    assert set(DISPATCH_SERVICES) <= await listed_services(dispatch_server.address)


async def test_health_reports_not_serving_once_shutdown_begins(
    profile_server: ManagedServer,
) -> None:
    # Health follows the lifecycle: stopping reports NOT_SERVING before the port closes.
    await profile_server.health.enter_graceful_shutdown()
    assert (
        await health_of(profile_server.address, PROFILE_SERVICES[0])
        == health_pb2.HealthCheckResponse.NOT_SERVING
    )


async def test_stop_always_completes_with_background_workers_running(
    servers: Servers,
) -> None:
    # Regression: with a Redis socket timeout set, redis-py reads run under asyncio timeouts
    # that can swallow a task.cancel() on Python 3.11, so background loops stopped by a single
    # cancel (definitions watcher, sweeper, reconciler) sometimes never ended and stop() hung.
    for cycle in range(5):
        server = await servers.profile()
        async with CrowdClient(server.address, api_key=ADMIN_KEY) as client:
            await client.publish_definitions(counter_definitions(cycle + 1))
            await client.track_event(f"cycle-{cycle}", "page_view")
        try:
            # Generous bound: a stop takes well under a second; a hang never ends.
            await asyncio.wait_for(server.stop(), 20)
        except TimeoutError:
            raise AssertionError(f"stop() hung in cycle {cycle}") from None
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await health_of(server.address, "")
        assert gone.value.code() == grpc.StatusCode.UNAVAILABLE


def track_request(visitor: str = "auth-visitor") -> profile_service_pb2.TrackEventRequest:
    return profile_service_pb2.TrackEventRequest(event=make_event(visitor, "page_view"))


async def test_call_without_key_is_unauthenticated(profile_server: ManagedServer) -> None:
    async with grpc.aio.insecure_channel(profile_server.address) as channel:
        stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.TrackEvent(track_request(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.TrackEvent(
                track_request(), metadata=bearer("not-a-key-of-this-server-0000"), timeout=5
            )
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_scope_is_permission_denied(profile_server: ManagedServer) -> None:
    async with CrowdClient(profile_server.address, api_key=READ_KEY) as reader:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await reader.track_event("auth-visitor", "page_view")
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The ingest-only key may track but not read, and nothing was written by the refused call.
    async with CrowdClient(profile_server.address, api_key=INGEST_KEY) as ingester:
        with pytest.raises(grpc.aio.AioRpcError) as cannot_read:
            await ingester.get_profile("auth-visitor")
    assert cannot_read.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_keys_never_reach_logs_or_spans(
    profile_server: ManagedServer, tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with CrowdClient(profile_server.address, api_key=ADMIN_KEY) as admin:
        await admin.publish_definitions(counter_definitions())
        await admin.track_event("secret-visitor", "page_view")
        with pytest.raises(grpc.aio.AioRpcError):
            await admin.track_events([make_event("", "page_view")])  # INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError):
            await admin.get_profile("nobody-here")  # NOT_FOUND
    async with CrowdClient(profile_server.address, api_key=READ_KEY) as reader:
        with pytest.raises(grpc.aio.AioRpcError):
            await reader.track_event("secret-visitor", "page_view")  # PERMISSION_DENIED
    wrong_key = "an-unknown-key-that-is-long-enough-1234"
    async with CrowdClient(profile_server.address, api_key=wrong_key) as stranger:
        with pytest.raises(grpc.aio.AioRpcError):
            await stranger.track_event("secret-visitor", "page_view")  # UNAUTHENTICATED

    spans = tracing.exporter.get_finished_spans()
    # Every call above left a server span (so the scan below looked at something).
    server_spans = [s for s in spans if s.name.startswith("/crowd.profile.v1.")]
    assert len(server_spans) >= 6
    keys = [ADMIN_KEY, READ_KEY, INGEST_KEY, wrong_key]
    assert caplog.records, "the servers logged nothing at DEBUG"
    assert secrets_in_logs(caplog.records, keys) == []
    assert secrets_in_spans(spans, keys) == []


async def test_error_messages_do_not_echo_the_key(profile_server: ManagedServer) -> None:
    wrong_key = "an-unknown-key-that-is-long-enough-5678"
    async with CrowdClient(profile_server.address, api_key=wrong_key) as stranger:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stranger.track_event("v", "page_view")
    code, info, _ = decode_error(refused.value)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert wrong_key not in (refused.value.details() or "")
    assert info is None or wrong_key not in str(info)


async def test_profile_process_serves_then_stops_on_sigterm(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    grace_s = 3.0
    env = {
        **os.environ,
        "CROWD_PROFILE_PORT": str(port),
        "CROWD_PROFILE_REDIS_URL": redis_url,
        "CROWD_PROFILE_SHUTDOWN_GRACE_SECONDS": str(grace_s),
        "CROWD_PROFILE_API_KEYS": f'{{"{ADMIN_KEY}": ["read"]}}',
        "CROWD_PROFILE_LOG_LEVEL": "DEBUG",
    }
    log_path = tmp_path / "profile.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "profile_service",
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        address = f"127.0.0.1:{port}"

        async def serving() -> bool:
            if process.returncode is not None:
                raise AssertionError(f"profile_service exited early: {log_path.read_text()}")
            try:
                status = await health_of(address, "")
            except grpc.aio.AioRpcError:
                return False
            return bool(status == health_pb2.HealthCheckResponse.SERVING)

        await wait_for(serving, "the profile service to answer health", within_s=30)
        process.send_signal(signal.SIGTERM)
        # Bounded by the grace period plus the time to close Redis and flush telemetry.
        try:
            returncode = await asyncio.wait_for(process.wait(), grace_s + 10)
        except TimeoutError:
            raise AssertionError(f"no exit after SIGTERM:\n{log_path.read_text()}") from None
        output = log_path.read_text()
        assert returncode == 0, output
        assert "termination signal received" in output
        assert ADMIN_KEY not in output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
