"""Slots move between masters (``redis-cli --cluster reshard``, keys and all) while events flow:
the profile service follows MOVED/ASK (and TRYAGAIN while a slot is half-moved) and every event
is applied exactly once. With ``redis_wait_replicas=1`` the writes bypass the client's redirect
handling (each master's writes and WAIT go over its own connection): a refused write is
answered UNAVAILABLE, the client retries, and the retry reaches the new owner."""

from __future__ import annotations

import asyncio

import pytest
from redis.crc import key_slot

from crowd.client import CrowdClient
from service_common.keys import DEFAULT_PARTITIONS, partition_keys_for
from tests.cluster.helpers import (
    ClusterProfileServers,
    RetryingIngest,
    counters,
    profile_master,
    visitors_on_every_master,
)
from tests.harness import RedisClusterHarness
from tests.profile_api.helpers import ADMIN_KEY, counter_definitions

MOVED_SLOTS = 600


def _visitors_in_slots(slots: set[int], count: int, prefix: str) -> list[str]:
    """``count`` visitor ids whose profile keys hash to one of ``slots``."""
    found: list[str] = []
    for i in range(100_000):
        visitor = f"{prefix}-{i}"
        key = partition_keys_for(visitor, DEFAULT_PARTITIONS).profile(visitor)
        if key_slot(key.encode()) in slots:
            found.append(visitor)
            if len(found) == count:
                return found
    raise AssertionError("no visitor hashes to the slots to move")


@pytest.mark.parametrize("wait_replicas", [0, 1], ids=["async-replication", "wait-1"])
async def test_resharding_during_ingest_loses_nothing_and_applies_nothing_twice(
    redis_cluster: RedisClusterHarness,
    cluster_profile_servers: ClusterProfileServers,
    wait_replicas: int,
) -> None:
    server = await cluster_profile_servers.profile(redis_wait_replicas=wait_replicas)
    source, target = redis_cluster.masters()[:2]
    # redis-cli takes the slots to move from the start of the source's range.
    moving = set(redis_cluster.slots(source)[:MOVED_SLOTS])
    prefix = f"reshard{wait_replicas}"
    movers = _visitors_in_slots(moving, 6, prefix)
    visitors = movers + visitors_on_every_master(redis_cluster, 12, prefix=prefix)
    async with CrowdClient(server.address, api_key=ADMIN_KEY) as client:
        await client.publish_definitions(counter_definitions())
        ingest = RetryingIngest(client, visitors)
        stop = asyncio.Event()
        running = asyncio.create_task(ingest.run(stop))
        try:
            await ingest.reached(2)
            await asyncio.to_thread(redis_cluster.reshard, source, target, MOVED_SLOTS)
            await ingest.reached(ingest.acknowledged_rounds + 3)
            stop.set()
            await running
        finally:
            running.cancel()
        assert {profile_master(redis_cluster, v).port for v in movers} == {target.port}
        rounds = float(ingest.acknowledged_rounds)
        assert await counters(client, visitors) == dict.fromkeys(visitors, rounds)
