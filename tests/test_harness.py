"""The test harness itself: real redis-server processes, flush isolation, AOF durability."""

from __future__ import annotations

import socket

import pytest
import redis
import redis.asyncio as aioredis

from tests.harness import RedisServer, RedisServerError, free_port, wait_for_port


def test_fixture_server_answers_ping(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("appendonly")["appendonly"] == "no"
        assert client.config_get("save")["save"] == ""
    finally:
        client.close()


async def test_asyncio_client_works(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.ping() is True
        await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


# The two tests below run in file order: the first leaves a key behind, the second must not see
# it (redis_url flushes the shared server before every test).
def test_flush_isolation_writer(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.set("crowd:test:leftover", "1")
        assert client.dbsize() == 1
    finally:
        client.close()


def test_flush_isolation_reader(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.get("crowd:test:leftover") is None
        assert client.dbsize() == 0
    finally:
        client.close()


def test_durable_restart_keeps_aof_data(durable_redis: RedisServer) -> None:
    port = durable_redis.port
    client = durable_redis.client()
    try:
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("appendfsync")["appendfsync"] == "always"
        client.set("a", "1")
        client.rpush("q", "x", "y")
    finally:
        client.close()

    durable_redis.restart()  # clean SIGTERM shutdown
    assert durable_redis.port == port
    client = durable_redis.client()
    try:
        assert client.get("a") == b"1"
        assert client.lrange("q", 0, -1) == [b"x", b"y"]
        client.set("b", "2")  # acknowledged => fsynced (appendfsync always)
    finally:
        client.close()

    durable_redis.kill()  # crash: SIGKILL, no shutdown handling
    assert not durable_redis.is_running
    durable_redis.start()
    assert durable_redis.port == port
    client = durable_redis.client()
    try:
        assert client.get("a") == b"1"
        assert client.get("b") == b"2"
    finally:
        client.close()


def test_shared_server_comes_back_after_a_test_stops_it(
    redis_server: RedisServer, redis_url: str
) -> None:
    redis_server.stop()
    assert not redis_server.is_running
    redis_server.start()
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_non_durable_server_loses_data_on_restart() -> None:
    with RedisServer() as server:
        client = server.client()
        client.set("gone", "1")
        client.close()
        server.restart()
        client = server.client()
        try:
            assert client.get("gone") is None
        finally:
            client.close()


def test_start_retries_when_port_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    # Hold a port, make the first free_port() answer return it: start() must move on.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        answers = iter([taken])

        monkeypatch.setattr(
            "tests.harness.redis_server.free_port", lambda: next(answers, None) or free_port()
        )
        with RedisServer() as server:
            assert server.port != taken
            wait_for_port(server.port)


def test_start_does_not_mistake_a_foreign_redis_for_its_own(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The port handed out is already served by another redis: PONG from it must not count.
    answers = iter([redis_server.port])
    monkeypatch.setattr(
        "tests.harness.redis_server.free_port", lambda: next(answers, None) or free_port()
    )
    with RedisServer() as server:
        assert server.port != redis_server.port
        assert server.pid != redis_server.pid
        client = server.client()
        try:
            assert client.info("server")["process_id"] == server.pid
        finally:
            client.close()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_missing_binary_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROWD_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RedisServerError, match="make redis-server"):
        RedisServer().start()
