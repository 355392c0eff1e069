"""A master of the cluster dies in the middle of ingestion: its replica is promoted, the profile
service finds the new master by itself (MOVED, topology refresh, retries) and ingestion
finishes with exact counts.

With ``redis_wait_replicas=1`` every acknowledged event is on a replica before TrackEvents
answers, so the kill loses none of them although events are acknowledged right up to the kill.
Without it, asynchronous replication may lose the last acknowledged writes; that test lets the
replicas catch up before the kill, so it checks reconnection, not durability.
"""

from __future__ import annotations

import asyncio

from crowd.client import CrowdClient
from tests.cluster.helpers import (
    ClusterProfileServers,
    RetryingIngest,
    counters,
    profile_master,
    visitors_on_every_master,
)
from tests.harness import RedisClusterHarness, RedisServer
from tests.profile_api.helpers import ADMIN_KEY, counter_definitions

ROUNDS_AFTER = 3
"""Rounds acknowledged after the cluster is whole again, before the ingest stops."""


async def _kill_the_master_of(cluster: RedisClusterHarness, visitor: str) -> RedisServer:
    """SIGKILL the master serving ``visitor``; return it."""
    victim = profile_master(cluster, visitor)
    index = [m.port for m in cluster.masters()].index(victim.port)
    return await asyncio.to_thread(cluster.kill_master, index)


async def test_with_wait_every_acknowledged_event_survives_a_master_killed_mid_ingest(
    redis_cluster: RedisClusterHarness, cluster_profile_servers: ClusterProfileServers
) -> None:
    server = await cluster_profile_servers.profile(
        redis_wait_replicas=1, redis_wait_timeout_ms=1000
    )
    visitors = visitors_on_every_master(redis_cluster, 18, prefix="wait", per_master=2)
    async with CrowdClient(server.address, api_key=ADMIN_KEY) as client:
        await client.publish_definitions(counter_definitions())
        ingest = RetryingIngest(client, visitors)
        stop = asyncio.Event()
        running = asyncio.create_task(ingest.run(stop))
        try:
            await ingest.reached(3)
            old = await _kill_the_master_of(redis_cluster, visitors[0])  # rounds keep coming
            promoted = await asyncio.to_thread(redis_cluster.await_failover, old)
            assert profile_master(redis_cluster, visitors[0]).port == promoted.port
            # The promoted master has no replica to confirm writes until the old one is back
            # as its replica: until then its visitors' rounds are answered UNAVAILABLE.
            await asyncio.to_thread(redis_cluster.restart_node, old)
            await ingest.reached(ingest.acknowledged_rounds + ROUNDS_AFTER)
            stop.set()
            await running
        finally:
            running.cancel()
        # Every round was acknowledged once, after replicas confirmed it: none was lost, and
        # the retried attempts applied nothing twice.
        rounds = float(ingest.acknowledged_rounds)
        assert await counters(client, visitors) == dict.fromkeys(visitors, rounds)


async def test_without_wait_the_service_reconnects_by_itself_after_a_failover(
    redis_cluster: RedisClusterHarness, cluster_profile_servers: ClusterProfileServers
) -> None:
    server = await cluster_profile_servers.profile()
    visitors = visitors_on_every_master(redis_cluster, 18, prefix="nowait", per_master=2)
    async with CrowdClient(server.address, api_key=ADMIN_KEY) as client:
        await client.publish_definitions(counter_definitions())
        ingest = RetryingIngest(client, visitors)
        for number in range(3):
            await ingest.send_round(number)
        await asyncio.to_thread(redis_cluster.await_replicated)  # nothing acknowledged in flight
        old = await _kill_the_master_of(redis_cluster, visitors[0])
        stop = asyncio.Event()
        running = asyncio.create_task(ingest.run(stop))  # into the failover
        try:
            promoted = await asyncio.to_thread(redis_cluster.await_failover, old)
            assert profile_master(redis_cluster, visitors[0]).port == promoted.port
            await ingest.reached(ingest.acknowledged_rounds + ROUNDS_AFTER)
            stop.set()
            await running
        finally:
            running.cancel()
        rounds = float(ingest.acknowledged_rounds)
        assert await counters(client, visitors) == dict.fromkeys(visitors, rounds)
