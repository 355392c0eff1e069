"""Actions accepted by the dispatch service survive a Redis crash while Braze is down.

Real parts only: a redis-server with appendonly + appendfsync always (killed with SIGKILL and
started again on the same port and data dir), the dispatch gRPC server built by
``create_server``, and the Braze sandbox over HTTP. The server is not restarted: it must ride
out the Redis outage (redis-py reconnects) and deliver everything once Braze is back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import grpc
import grpc.aio
import pytest
import redis.asyncio as aioredis

from braze_sandbox import BrazeSandbox
from crowd.client import CrowdClient
from crowd.dispatch.v1 import action_pb2
from dispatch_service.queue.queues import GROUP
from dispatch_service.worker import WorkerSettings
from service_common.keys import DISPATCH_META_PARTITIONS, dispatch_keys_for
from tests.dispatch.helpers import track_action
from tests.harness import RedisServer
from tests.profile_api.helpers import DISPATCH_KEY, wait_for
from tests.profile_api.servers import Servers, Tracing
from tests.robustness.helpers import CONNECTOR, delivered_events, write_patient_connectors

ACTIONS = 300
EVENT = "restart_survivor"
DELIVERED = action_pb2.ACTION_STATE_DELIVERED


async def _whereabouts(url: str, keys: list[str]) -> str:
    """Where each undelivered action is: its record, queue entries, pending and retry state
    (so a failure says whether an action was lost or merely late)."""
    redis = aioredis.from_url(url)
    try:
        partitions = int(await redis.get(DISPATCH_META_PARTITIONS) or 0)
        lines = []
        for i, key in enumerate(keys):
            dk = dispatch_keys_for(user(i), partitions)
            state = await redis.hget(dk.action(key), "state")
            if state == str(DELIVERED).encode():
                continue
            entries = [
                e_id
                for e_id, fields in cast(Any, await redis.xrange(dk.queue))
                if fields.get(b"k") == key.encode()
            ]
            pending = (
                [
                    p["message_id"]
                    for p in await redis.xpending_range(dk.queue, GROUP, "-", "+", 10_000)
                    if p["message_id"] in entries
                ]
                if entries
                else []
            )
            retry = await redis.zscore(dk.retry, key)
            record = await redis.hgetall(dk.action(key))
            lines.append(
                f"{key}: state={state!r} entries={entries!r} pending={pending!r} retry={retry} "
                f"attempts={record.get(b'attempts')!r} reason={record.get(b'reason')!r}"
            )
        return "undelivered: " + "; ".join(lines)
    finally:
        await redis.aclose()


def user(i: int) -> str:
    return f"restart-user-{i:03d}"


@pytest.mark.slow
async def test_queued_actions_survive_a_redis_crash_while_braze_is_down(
    durable_redis: RedisServer, sandbox: BrazeSandbox, tracing: Tracing, tmp_path: Path
) -> None:
    sandbox.faults.set(down=True)
    servers = Servers(durable_redis.url, tracing)
    try:
        dispatch = await servers.dispatch(
            write_patient_connectors(tmp_path, sandbox.url),
            WorkerSettings(block_ms=50, promote_interval_s=0.05),
        )
        async with CrowdClient("", dispatch.address, api_key=DISPATCH_KEY) as client:
            keys = [f"restart-{i:03d}" for i in range(ACTIONS)]
            actions = [
                track_action(key, visitor=user(i), event=EVENT, connector=CONNECTOR)
                for i, key in enumerate(keys)
            ]
            outcomes = await client.submit_actions(actions)
            assert [o.idempotency_key for o in outcomes] == keys
            assert not any(o.duplicate for o in outcomes)

            # Braze refuses while down: the worker has tried and holds the actions for retry.
            await sandbox.wait_until(
                lambda: any(r.path == "/users/track" and r.status == 503 for r in sandbox.requests),
                timeout=20,
            )
            assert not delivered_events(sandbox, EVENT)

            durable_redis.restart(kill=True)
            sandbox.faults.set(down=False)

            async def all_delivered() -> bool:
                try:
                    statuses = [await client.get_action(key) for key in keys]
                except grpc.aio.AioRpcError as exc:
                    if exc.code() is grpc.StatusCode.UNAVAILABLE:
                        return False  # Redis is back but this connection was not yet
                    raise
                return all(s.state == DELIVERED for s in statuses)

            try:
                await wait_for(all_delivered, "every accepted action to be DELIVERED", within_s=25)
            except AssertionError as exc:
                raise AssertionError(
                    f"{exc}; {await _whereabouts(durable_redis.url, keys)}"
                ) from exc

        counts = delivered_events(sandbox, EVENT)
        assert set(counts) == {user(i) for i in range(ACTIONS)}
        assert all(sandbox.get_user(user(i)) is not None for i in range(ACTIONS))
        # At-least-once across a crash may resend a batch, but not beyond what was in flight.
        duplicates = {uid: n for uid, n in counts.items() if n > 1}
        assert not duplicates, f"delivered more than once: {duplicates}"
    finally:
        await servers.close()
