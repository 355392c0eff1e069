"""A master of a real Redis Cluster killed under the dispatch service mid-delivery: its replica
is promoted, the service finds the new master on its own and every accepted action reaches
Braze exactly once; with ``redis_wait_replicas=1`` every action acknowledged right up to the
kill survives it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio.cluster

from braze_sandbox import ALL_PERMISSIONS
from crowd.dispatch.v1 import action_pb2
from tests.cluster.helpers_dispatch import (
    PARTITIONS,
    RetryingSubmit,
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


async def test_with_wait_every_acknowledged_action_survives_a_master_killed_mid_intake(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With redis_wait_replicas=1 SubmitActions answers only once a replica holds the actions,
    # so the kill may come at any moment (no await_replicated here): every acknowledged
    # action is on the replica that is promoted, and is delivered.
    visitors = [f"wait-{i}" for i in range(24)]
    masters = {redis_cluster.master_of_key(partition_queue(v)).port for v in visitors}
    assert len(masters) == len(redis_cluster.masters())
    victim = redis_cluster.master_of_key(partition_queue(visitors[0]))
    async with (
        running_sandbox(api_keys={API_KEY: ALL_PERMISSIONS}) as sandbox,
        dispatch_on_cluster(
            redis_cluster,
            sandbox,
            tmp_path,
            monkeypatch,
            redis_wait_replicas=1,
            redis_wait_timeout_ms=1000,
        ) as dispatch,
        client_of(dispatch) as client,
    ):
        intake = RetryingSubmit(client, visitors)
        stop = asyncio.Event()
        running = asyncio.create_task(intake.run(stop))
        try:
            await intake.reached(3)
            killed = await asyncio.to_thread(
                redis_cluster.kill_master, redis_cluster.masters().index(victim)
            )  # rounds keep coming
            await asyncio.to_thread(redis_cluster.await_failover, killed)
            # The promoted master confirms nothing until the old one is back as its replica.
            await asyncio.to_thread(redis_cluster.restart_node, killed)
            await intake.reached(intake.acknowledged_rounds + 3)
            stop.set()
            await running
        finally:
            running.cancel()
        acknowledged = intake.acknowledged_keys()
        await await_states(client, acknowledged, within=60)
    rounds = intake.acknowledged_rounds
    assert all(n >= rounds for n in events_delivered(sandbox).values())
    assert set(events_delivered(sandbox)) == set(visitors)
