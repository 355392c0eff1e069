"""A worker process killed with SIGKILL while it holds a batch loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from braze_sandbox import BrazeSandbox
from crowd.dispatch.v1 import action_pb2
from dispatch_service.queue import ActionStore
from dispatch_service.queue.queues import GROUP
from service_common.keys import DispatchKeys
from tests.dispatch.conftest import PARTITIONS, WorkerFactory
from tests.dispatch.helpers import API_KEY, CONNECTOR, track_action
from tests.harness import eventually

DELIVERED = action_pb2.ACTION_STATE_DELIVERED
REPO = Path(__file__).resolve().parents[2]

# A worker process as the service runs it, minus the gRPC server.
WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    import redis.asyncio as aioredis
    from pydantic import SecretStr
    from dispatch_service.braze import BrazeConnector, create_session
    from dispatch_service.delivery import braze_deliveries
    from dispatch_service.queue import ActionStore
    from dispatch_service.worker import DispatchWorker

    async def main(redis_url, braze_url, connector_id, partitions):
        client = aioredis.Redis.from_url(redis_url)
        connector = BrazeConnector(
            id=connector_id, url=braze_url, api_key=SecretStr(os.environ["TEST_BRAZE_KEY"]),
            linger_ms=0,
        )
        deliveries = braze_deliveries({connector_id: connector}, client, partitions,
                                      create_session())
        store = ActionStore(client, partitions, [connector_id])
        await DispatchWorker(store, deliveries, consumer_name="doomed").start()
        await asyncio.Event().wait()

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    """
)


async def _pending_of(redis_client: aioredis.Redis, consumer: str) -> int:
    total = 0
    for partition in range(PARTITIONS):
        for entry in await redis_client.xpending_range(
            DispatchKeys(partition).queue, GROUP, "-", "+", 1000
        ):
            if entry["consumer"] == consumer.encode():
                total += 1
    return total


@pytest.mark.slow
async def test_worker_killed_mid_flush_loses_nothing(
    store: ActionStore,
    redis_client: aioredis.Redis,
    redis_url: str,
    sandbox: BrazeSandbox,
    start_worker: WorkerFactory,
) -> None:
    keys = [f"crash-{i}" for i in range(20)]
    await store.submit([track_action(k, visitor=f"user-{k}", attributes={"x": 1}) for k in keys])
    # Braze answers slowly: the doomed worker is caught with its request in flight.
    sandbox.faults.set(latency_ms=3000)
    env = {**os.environ, "TEST_BRAZE_KEY": API_KEY}
    doomed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER_SCRIPT,
        redis_url,
        sandbox.url,
        CONNECTOR,
        str(PARTITIONS),
        cwd=REPO,
        env=env,
    )
    try:
        await eventually(
            lambda: _pending_of(redis_client, "doomed"),
            lambda n: n == len(keys),
            within=30,
            what="the doomed worker to take every entry",
        )
        doomed.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(doomed.wait(), 10) == -signal.SIGKILL
    finally:
        if doomed.returncode is None:
            doomed.kill()
            await doomed.wait()
    sandbox.faults.set(latency_ms=0)

    await start_worker("survivor", claim_idle_ms=500)

    statuses = await eventually(
        lambda: store.get_many(keys),
        lambda found: all(s is not None and s.state == DELIVERED for s in found),
        within=30,
        what="every action to be delivered",
    )
    assert len(statuses) == len(keys)
    assert all(sandbox.get_user(f"user-{k}") is not None for k in keys)
    assert await _pending_of(redis_client, "doomed") == 0
