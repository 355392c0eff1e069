"""A second queue entry of an action the worker still holds is never acknowledged early.

The interleaving (seen when a Redis restart slows recording down): the worker records a
RETRY for entry E1 (the script acknowledges E1 and puts the action in the retry set), the
retry is due at once and promoted to a new entry E2, and the worker reads E2 before the
reply of the recording came back, so E1 is still held. E2 is then the action's only way
back to Braze: acknowledging it as a duplicate would leave the action ACCEPTED forever with
no queue entry, no retry and nothing pending. The worker's internals are driven step by
step against a real Redis, so the interleaving is reproduced without timing.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis

from braze_sandbox import BrazeSandbox
from crowd.dispatch.v1 import action_pb2
from dispatch_service.braze import create_session
from dispatch_service.delivery import braze_deliveries
from dispatch_service.queue import ActionStore
from dispatch_service.queue.queues import (
    GROUP,
    Completion,
    Taken,
    complete,
    promote_due,
    read_new,
)
from dispatch_service.worker import DispatchWorker
from service_common.keys import DispatchKeys, partition_of
from tests.dispatch.conftest import PARTITIONS, connector_for
from tests.dispatch.helpers import CONNECTOR, track_action

DELIVERED = action_pb2.ACTION_STATE_DELIVERED
VISITOR = "repeat-user"
KEY = "repeat-1"


async def _carriers(redis: aioredis.Redis) -> tuple[list[bytes], list[bytes], float | None]:
    """(queue entries of the action, of which pending in the group, its retry due time)."""
    keys = DispatchKeys(partition_of(VISITOR, PARTITIONS))
    stream: Any = await redis.xrange(keys.queue)
    entries = [bytes(entry_id) for entry_id, fields in stream if fields.get(b"k") == KEY.encode()]
    pel: Any = await redis.xpending_range(keys.queue, GROUP, "-", "+", 100)
    pending = [bytes(p["message_id"]) for p in pel if bytes(p["message_id"]) in entries]
    return entries, pending, await redis.zscore(keys.retry, KEY)


async def _read_one(redis: aioredis.Redis) -> Taken:
    taken = await read_new(redis, PARTITIONS, "worker-1", 10, 0)
    assert [t.key for t in taken] == [KEY]
    return taken[0]


async def test_repeat_entry_of_a_held_action_stays_until_the_held_one_is_recorded(
    store: ActionStore, redis_client: aioredis.Redis, sandbox: BrazeSandbox
) -> None:
    session = create_session()
    try:
        deliveries = braze_deliveries(
            {CONNECTOR: connector_for(sandbox)}, redis_client, PARTITIONS, session
        )
        worker = DispatchWorker(store, deliveries, consumer_name="worker-1")  # loops not run
        await store.submit([track_action(KEY, visitor=VISITOR, attributes={"n": 1})])

        first = await _read_one(redis_client)
        await worker._take([first])
        assert worker.buffered == 1

        # Redis executes the recording of a due-at-once RETRY for the first entry; the
        # worker has not seen the reply yet, so it still holds the first entry.
        now_ms = int(time.time() * 1000)
        retry = Completion(first, "retry", connector_id=CONNECTOR, retry_due_ms=now_ms)
        await complete(redis_client, [retry], now_ms, store.retention_ms)
        assert await promote_due(redis_client, PARTITIONS, now_ms, limit=10) == 1
        second = await _read_one(redis_client)

        await worker._take([second])

        # The second entry is the action's only carrier: it must stay pending.
        entries, pending, due = await _carriers(redis_client)
        assert entries == [second.entry_id]
        assert pending == [second.entry_id]
        assert due is None

        # The recording's reply arrives (the first entry was acknowledged already; its send
        # is over, so it leaves the buffer): the worker releases the first entry and takes
        # the deferred second one.
        buffer = worker._buffers[CONNECTOR]
        buffer.actions.clear()
        await worker._record([Completion(first, "drop")])
        assert [a.taken.entry_id for a in buffer.actions] == [second.entry_id]

        await worker.force_flush()

        status = await store.get(KEY)
        assert status is not None
        assert status.state == DELIVERED
        assert await _carriers(redis_client) == ([], [], None)
        assert worker.buffered == 0
    finally:
        await session.close()
