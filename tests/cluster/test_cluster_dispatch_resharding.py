"""Resharding under the dispatch service, on a real Redis Cluster: slots move between masters
(``redis-cli --cluster reshard``, or one slot by hand, held half-way) while actions are
submitted and delivered; nothing is lost or delivered twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import grpc.aio
import pytest
import redis.asyncio.cluster

from braze_sandbox import ALL_PERMISSIONS
from crowd.dispatch.v1 import action_pb2
from service_common.errors import decode_error
from service_common.keys import partition_of
from tests.cluster.helpers_dispatch import (
    PARTITIONS,
    SlotMigration,
    await_states,
    client_of,
    dispatch_on_cluster,
    events_delivered,
    partition_queue,
    refusals,
)
from tests.dispatch.helpers import API_KEY, track_action
from tests.harness import RedisClusterHarness, eventually, running_sandbox

ACCEPTED = action_pb2.ACTION_STATE_ACCEPTED


def _visitors_of_partition(partition: int, count: int) -> list[str]:
    found = (f"visitor-{i}" for i in range(100_000))
    return [v for v in found if partition_of(v, PARTITIONS) == partition][:count]


async def test_slots_moved_during_intake_and_delivery_lose_and_repeat_nothing(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first master's lowest 2,300 slots hold dispatch partitions 15 and 11.
    source, target = redis_cluster.masters()[:2]
    async with (
        running_sandbox(api_keys={API_KEY: ALL_PERMISSIONS}) as sandbox,
        dispatch_on_cluster(redis_cluster, sandbox, tmp_path, monkeypatch) as dispatch,
        client_of(dispatch) as client,
    ):
        sandbox.faults.set(latency_ms=20)  # deliveries overlap the moves
        submitted: list[str] = []
        moving = asyncio.Event()
        moved = asyncio.Event()

        async def keep_submitting() -> None:
            # Batches of 20 visitors over every partition, until the move is over and at
            # least 400 were submitted.
            while not moved.is_set() or len(submitted) < 400:
                batch = [f"visitor-{len(submitted) + i}" for i in range(20)]
                outcomes = await client.submit_actions(
                    [track_action(f"reshard-{v}", visitor=v) for v in batch]
                )
                assert [(o.state, o.duplicate) for o in outcomes] == [(ACCEPTED, False)] * 20
                submitted.extend(batch)
                if len(submitted) >= 100:
                    moving.set()

        submitting = asyncio.create_task(keep_submitting())
        await moving.wait()  # some actions queued or in flight before the first slot moves
        await asyncio.to_thread(redis_cluster.reshard, source, target, 2300)
        moved.set()
        await submitting
        assert redis_cluster.master_of_key(partition_queue("visitor-7")).port != source.port
        keys = [f"reshard-{v}" for v in submitted]
        await await_states(client, keys, within=60)
    assert events_delivered(sandbox) == {v: 1 for v in submitted}


async def test_a_slot_held_half_migrated_delays_intake_and_delivery_but_loses_nothing(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    partition = partition_of("visitor-0", PARTITIONS)
    stuck = _visitors_of_partition(partition, 3)
    others = [
        v for v in (f"other-{i}" for i in range(40)) if partition_of(v, PARTITIONS) != partition
    ]
    async with (
        running_sandbox(api_keys={API_KEY: ALL_PERMISSIONS}) as sandbox,
        dispatch_on_cluster(redis_cluster, sandbox, tmp_path, monkeypatch) as dispatch,
        client_of(dispatch) as client,
    ):
        # Records of the stuck partition exist before its slot starts to move.
        await client.submit_actions([track_action(f"before-{v}", visitor=v) for v in stuck])
        await await_states(client, [f"before-{v}" for v in stuck])
        migration = SlotMigration(redis_cluster, partition_queue(stuck[0]))
        await asyncio.to_thread(migration.begin, [partition_queue(stuck[0])])

        # A script over the queue (moved) and a record (not) cannot run until the slot has
        # moved: intake retries, then answers UNAVAILABLE (retry later), never INTERNAL.
        actions = [track_action(f"during-{v}", visitor=v) for v in [*stuck, *others]]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.submit_actions(actions)
        code, info, _ = decode_error(refused.value)
        assert code == grpc.StatusCode.UNAVAILABLE
        assert info is not None and info.reason == "STORAGE_UNAVAILABLE"

        # The other partitions' actions were stored by that call, and are delivered while
        # the slot is still half-way: one moving slot holds back only its own partition.
        await await_states(client, [f"during-{v}" for v in others])

        # Retried by the caller while the slot is still half-way; the move then completes.
        before = await asyncio.to_thread(refusals, redis_cluster)
        retry = asyncio.create_task(client.submit_actions(actions))
        await eventually(
            lambda: asyncio.to_thread(refusals, redis_cluster),
            lambda n: n > before,
            what="intake refused TRYAGAIN while the slot is half-way",
        )
        await asyncio.to_thread(migration.finish)
        outcomes = await retry
        assert all(o.state == ACCEPTED for o in outcomes)
        # The stuck partition's actions were stored by this retry; the others by the first
        # attempt, which did not fail for them.
        assert [o.duplicate for o in outcomes] == [False] * len(stuck) + [True] * len(others)
        await await_states(client, [f"during-{v}" for v in [*stuck, *others]])
    assert redis_cluster.master_of_key(partition_queue(stuck[0])).port == migration.target.port
    assert events_delivered(sandbox) == {v: 2 for v in stuck} | {v: 1 for v in others}
