"""Shared fixtures: real redis-server processes (see tests/harness/redis_server.py).

- redis_server  (session)  one non-persistent server for the whole session
- redis_url     (function) that server's URL, FLUSHALLed before the test
- durable_redis (function) a fresh server with appendonly yes + appendfsync always, for
                           restart/crash tests; stopped and its dir removed after the test
- redis_client  (function) an asyncio client on redis_url, closed after the test
- redis_cluster (session)  a real Redis Cluster, 3 masters + 3 replicas (see
                           tests/harness/redis_cluster.py), started only when a test asks for it;
                           every test using it gets the `cluster` marker (`-m "not cluster"`)
- redis_cluster_client (function) a redis.asyncio.cluster.RedisCluster on that cluster, after
                           every stopped node is back, the cluster is stable and all masters are
                           flushed

free_port() (re-exported from tests.harness) gives a free loopback TCP port.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import redis.asyncio.cluster

from tests.harness import RedisClusterHarness, RedisServer, free_port

# The API-level suites (profile_api, e2e, robustness) share `tracing` and `sandbox`; suites
# with their own `sandbox` fixture override it in their conftest.
pytest_plugins = ["tests.profile_api.fixtures"]

__all__ = ["free_port"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    # A previous test may have stopped or killed the shared server: bring it back.
    if not redis_server.is_running:
        redis_server.start()
    client = redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    server = RedisServer(appendonly=True)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest_asyncio.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Collect the session's garbage before pytest's exit check, with ResourceWarning off.

    Clients a test dropped without closing (a redis-py connection, a cluster node, their
    sockets) can outlive the session's event loop; their finalisers then warn when pytest
    collects garbage at exit, which fails a run whose every test passed, with no test to
    blame and nothing left to close. Leaks *during* the session still fail their test
    (``filterwarnings = error``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One place decides what a cluster test is: whatever uses the cluster fixture.
    for item in items:
        if "redis_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterHarness]:
    cluster = RedisClusterHarness()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest_asyncio.fixture
async def redis_cluster_client(
    redis_cluster: RedisClusterHarness,
) -> AsyncIterator[redis.asyncio.cluster.RedisCluster]:
    # A previous test may have killed a node or moved slots: bring everything back, then empty
    # every master. In a thread: the session's event loop may be serving other fixtures.
    await asyncio.to_thread(redis_cluster.heal)
    await asyncio.to_thread(redis_cluster.flushall)
    client = redis_cluster.async_client()
    try:
        yield client
    finally:
        await client.aclose()
