"""service_common.redis: real redis-server, bounded retries, clear errors, no leaked passwords."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import cast

import pytest
import redis.exceptions
from redis.asyncio import Redis

from service_common import RedisUnavailableError, create_redis, redact_url
from service_common.redis import connect_redis
from tests.harness import RedisServer, eventually, free_port

PASSWORD = "correct-horse-battery-staple"


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url(f"redis://:{PASSWORD}@cache:6380/2") == "redis://:***@cache:6380/2"
    assert redact_url(f"rediss://app:{PASSWORD}@cache/0") == "rediss://app:***@cache/0"
    assert redact_url("unix:///run/redis.sock?db=1") == "unix:///run/redis.sock?db=1"
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"


@pytest.mark.asyncio
async def test_closed_port_fails_after_bounded_retries_naming_host_port_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens there
    with pytest.raises(RedisUnavailableError) as caught:
        await create_redis(
            f"redis://:{PASSWORD}@127.0.0.1:{port}/0", max_attempts=3, initial_backoff=0.01
        )
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "after 3 attempt(s)" in message
    assert PASSWORD not in message
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2  # attempts 1 and 2 are retried; attempt 3 gives up
    assert PASSWORD not in caplog.text


@pytest.mark.asyncio
async def test_connects_to_a_real_server(redis_url: str) -> None:
    client = await create_redis(redis_url)
    try:
        assert await client.set("service-common:probe", b"1")
        assert await client.get("service-common:probe") == b"1"
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_retries_until_redis_comes_up() -> None:
    port = free_port()
    server = RedisServer(port=port)
    first_failure = asyncio.Event()

    class OnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            first_failure.set()

    handler = OnRetry(logging.WARNING)
    logger = logging.getLogger("service_common.redis")
    logger.addHandler(handler)
    try:
        connecting = asyncio.ensure_future(
            create_redis(
                f"redis://127.0.0.1:{port}/0",
                max_attempts=60,
                initial_backoff=0.05,
                max_backoff=0.25,
            )
        )
        await first_failure.wait()
        await asyncio.to_thread(server.start)
        client = await asyncio.wait_for(connecting, timeout=30)
        assert await client.ping()
        await client.aclose()
    finally:
        logger.removeHandler(handler)
        server.cleanup()


@pytest.mark.asyncio
async def test_wrong_password_fails_without_retrying_or_leaking() -> None:
    server = RedisServer()
    await asyncio.to_thread(server.start)
    try:
        # Set after start: the harness's readiness PING does not authenticate.
        admin = server.client()
        admin.config_set("requirepass", "the-real-password-123")
        admin.close()
        with pytest.raises(RedisUnavailableError) as caught:
            await create_redis(
                f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0",
                max_attempts=5,
                initial_backoff=5,  # would make the test slow if it retried
            )
        assert "after 5 attempt(s)" in str(caught.value)
        assert "AuthenticationError" in str(caught.value)
        assert PASSWORD not in str(caught.value)
    finally:
        server.cleanup()


@pytest.mark.asyncio
async def test_cluster_rejects_unix_urls() -> None:
    with pytest.raises(ValueError, match="unix"):
        await create_redis("unix:///tmp/redis.sock", cluster=True)


@pytest.mark.asyncio
async def test_a_hung_server_fails_each_call_within_its_bound() -> None:
    """Standalone clients read replies without a per-read timer; a stopped (SIGSTOP) Redis
    still fails a command and a pipeline with a Redis TimeoutError (UNAVAILABLE for RPCs)."""
    server = RedisServer()
    await asyncio.to_thread(server.start)
    client = cast(Redis, connect_redis(server.url, socket_timeout=0.5))
    assert server.pid is not None
    try:
        assert await client.set("bound:probe", b"1")
        assert client.connection_pool.connection_kwargs["socket_timeout"] is None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            # wait_for only guards the test run: without the bound the call would hang.
            with pytest.raises(redis.exceptions.TimeoutError, match=r"within 0\.5 s"):
                await asyncio.wait_for(client.get("bound:probe"), 60)
            pipe = client.pipeline(transaction=False)
            pipe.get("bound:probe")
            pipe.incr("bound:counter")
            with pytest.raises(redis.exceptions.TimeoutError):
                await asyncio.wait_for(pipe.execute(), 60)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        # The interrupted connections were dropped; the next call gets a clean one.
        assert await client.get("bound:probe") == b"1"
    finally:
        await client.aclose()
        server.cleanup()


@pytest.mark.asyncio
async def test_calls_beyond_the_pool_wait_for_a_connection_instead_of_failing(
    redis_url: str,
) -> None:
    # redis-py's default pool fails a call with "Too many connections" once max_connections
    # are in use: a burst under load would fail requests that only had to wait a moment.
    client = cast(Redis, connect_redis(redis_url, max_connections=2))
    other = Redis.from_url(redis_url)
    lists = ["crowd-test:pool:a", "crowd-test:pool:b"]
    try:
        blocked = [asyncio.ensure_future(client.blpop([key], timeout=0)) for key in lists]
        await eventually(
            lambda: other.info("clients"),
            lambda info: info["blocked_clients"] == 2,
            what="both pool connections blocked in BLPOP",
        )
        # Both connections are held: this call waits for one instead of failing.
        waiting = asyncio.ensure_future(client.incr("crowd-test:pool:counter"))
        await asyncio.sleep(0)  # one step: the old pool raised here, at once
        assert not waiting.done()
        await other.rpush(lists[0], "x")
        assert await waiting == 1
        await other.rpush(lists[1], "y")
        assert await asyncio.gather(*blocked) == [
            (b"crowd-test:pool:a", b"x"),
            (b"crowd-test:pool:b", b"y"),
        ]
    finally:
        await other.aclose()
        await client.aclose()
