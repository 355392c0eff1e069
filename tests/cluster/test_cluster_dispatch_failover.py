"""A master of a real Redis Cluster killed under the dispatch service mid-delivery: its replica
is promoted, the service finds the new master on its own and every accepted action reaches
Braze exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio.cluster

from braze_sandbox import ALL_PERMISSIONS
from crowd.dispatch.v1 import action_pb2
from tests.cluster.helpers_dispatch import (
    PARTITIONS,
    await_states,
    client_of,
    dispatch_on_cluster,
    events_delivered,
    partition_queue,
    pending_entries,
)
from tests.dispatch.helpers import API_KEY, track_action
from tests.harness import RedisClusterHarness, eventually, running_sandbox

ACCEPTED = action_pb2.ACTION_STATE_ACCEPTED


async def test_a_master_killed_mid_delivery_loses_and_repeats_nothing(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    visitors = [f"visitor-{i}" for i in range(120)]
    keys = [f"failover-{v}" for v in visitors]
    victim = redis_cluster.master_of_key(partition_queue(visitors[0]))
    on_victim = [v for v in visitors if redis_cluster.master_of_key(partition_queue(v)) is victim]
    assert on_victim
    async with (
        running_sandbox(api_keys={API_KEY: ALL_PERMISSIONS}) as sandbox,
        dispatch_on_cluster(redis_cluster, sandbox, tmp_path, monkeypatch) as dispatch,
        client_of(dispatch) as client,
    ):
        # Braze answers slowly: the requests are in flight while the master dies, and their
        # results are recorded on the promoted replica.
        sandbox.faults.set(latency_ms=1500)
        outcomes = await client.submit_actions(
            [track_action(k, visitor=v) for k, v in zip(keys, visitors, strict=True)]
        )
        assert {o.state for o in outcomes} == {ACCEPTED}
        await eventually(
            lambda: pending_entries(redis_cluster_client, range(PARTITIONS)),
            lambda n: n == len(keys),
            what="every action taken by the worker",
        )
        # Asynchronous replication: what the replica has not received dies with the master.
        # Wait for it, so that this tests reconnection and redelivery, not replication.
        await asyncio.to_thread(redis_cluster.await_replicated)
        killed = await asyncio.to_thread(
            redis_cluster.kill_master, redis_cluster.masters().index(victim)
        )
        promoted = await asyncio.to_thread(redis_cluster.await_failover, killed)
        sandbox.faults.set(latency_ms=0)

        await await_states(client, keys, within=60)
        assert redis_cluster.master_of_key(partition_queue(on_victim[0])).port == promoted.port
        assert await pending_entries(redis_cluster_client, range(PARTITIONS)) == 0
    assert events_delivered(sandbox) == {v: 1 for v in visitors}
