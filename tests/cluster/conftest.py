"""Fixtures of the cluster suites (tests/cluster): real servers on the session's Redis Cluster
(tests/conftest.py ``redis_cluster``; each test starts from a healed, flushed cluster through
``redis_cluster_client``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio.cluster

from tests.cluster.helpers import ClusterProfileServers, ClusterServers
from tests.harness import RedisClusterHarness
from tests.profile_api.servers import Tracing


@pytest_asyncio.fixture
async def cluster_profile_servers(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,
    tracing: Tracing,
) -> AsyncIterator[ClusterProfileServers]:
    """Profile servers on the (healed, flushed) cluster; stopped after the test."""
    servers = ClusterProfileServers(redis_cluster, tracing)
    try:
        yield servers
    finally:
        await servers.close()


@pytest_asyncio.fixture
async def cluster_servers(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,
    tracing: Tracing,
) -> AsyncIterator[ClusterServers]:
    """Profile and dispatch servers on the (healed, flushed) cluster; stopped after the test."""
    servers = ClusterServers(redis_cluster, tracing)
    try:
        yield servers
    finally:
        await servers.close()
