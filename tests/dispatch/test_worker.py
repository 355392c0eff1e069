"""The delivery worker against the real Braze sandbox over HTTP, on a real Redis."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from braze_sandbox import (
    ALL_PERMISSIONS,
    BrazeSandbox,
    RateLimit,
    SandboxConfig,
    default_rate_limits,
)
from crowd.dispatch.v1 import action_pb2
from dispatch_service.braze import Rate
from dispatch_service.queue import ActionStore
from dispatch_service.queue.queues import GROUP, read_new
from dispatch_service.worker import DispatchWorker
from service_common.keys import DispatchKeys, partition_of
from tests.dispatch.conftest import PARTITIONS, WorkerFactory, connector_for
from tests.dispatch.helpers import API_KEY, OTHER_CONNECTOR, track_action
from tests.harness import eventually

ACCEPTED = action_pb2.ACTION_STATE_ACCEPTED
DELIVERED = action_pb2.ACTION_STATE_DELIVERED
FAILED = action_pb2.ACTION_STATE_FAILED
SKIPPED = action_pb2.ACTION_STATE_SKIPPED


async def _statuses(store: ActionStore, keys: Sequence[str]) -> list[action_pb2.ActionStatus]:
    found = await store.get_many(keys)
    assert all(status is not None for status in found)
    return [status for status in found if status is not None]


async def _until_states(
    store: ActionStore, keys: Sequence[str], *states: int, within: float = 20.0
) -> list[action_pb2.ActionStatus]:
    """Wait until every key's state is one of ``states``; return the statuses."""
    return await eventually(
        lambda: _statuses(store, keys),
        lambda found: all(s.state in states for s in found),
        within=within,
        what=f"{len(keys)} actions to reach {states}",
    )


async def _pending(redis_client: aioredis.Redis) -> int:
    total = 0
    for partition in range(PARTITIONS):
        summary = await redis_client.xpending(DispatchKeys(partition).queue, GROUP)
        total += summary["pending"]
    return total


async def test_worker_fills_requests_and_records_delivery(
    store: ActionStore,
    redis_client: aioredis.Redis,
    sandbox: BrazeSandbox,
    start_worker: WorkerFactory,
) -> None:
    keys = [f"k{i}" for i in range(200)]
    await store.submit(
        [track_action(k, visitor=f"user-{i}", attributes={"n": i}) for i, k in enumerate(keys)]
    )
    await start_worker()

    statuses = await _until_states(store, keys, DELIVERED)

    # 200 one-object actions are at least three requests (75 + 75 + 50): the worker sends
    # the two full ones at once and lingers only for the partial one.
    assert len([r for r in sandbox.requests if r.path == "/users/track"]) == 3
    assert all(s.attempts == 1 and s.last_http_status == 201 for s in statuses)
    user = sandbox.get_user("user-7")
    assert user is not None
    assert user.attributes["n"] == 7
    assert await _pending(redis_client) == 0
    # Delivered records are kept for the retention (idempotency), then expire.
    record = DispatchKeys(partition_of("user-7", PARTITIONS)).action("k7")
    assert 0 < await redis_client.ttl(record) <= store.retention_ms / 1000


async def test_unchanged_update_is_skipped(
    store: ActionStore, sandbox: BrazeSandbox, start_worker: WorkerFactory
) -> None:
    await start_worker()
    await store.submit([track_action("first", attributes={"tier": "gold"})])
    await _until_states(store, ["first"], DELIVERED)

    await store.submit([track_action("again", attributes={"tier": "gold"})])
    (status,) = await _until_states(store, ["again"], SKIPPED)

    assert status.reason.startswith("nothing to send")
    assert len(sandbox.requests) == 1


async def test_braze_down_then_up_delivers_everything(
    store: ActionStore, sandbox: BrazeSandbox, start_worker: WorkerFactory
) -> None:
    sandbox.faults.set(down=True)
    keys = [f"down-{i}" for i in range(10)]
    await store.submit([track_action(k, visitor=f"user-{k}") for k in keys])
    await start_worker()

    await sandbox.wait_for_requests(3, timeout=20)
    waiting = await _statuses(store, keys)
    assert all(s.state == ACCEPTED and s.last_http_status == 503 for s in waiting)
    assert all(s.reason.startswith("retrying: Braze answered 503") for s in waiting)
    assert all(s.attempts >= 1 for s in waiting)

    sandbox.faults.set(down=False)
    delivered = await _until_states(store, keys, DELIVERED, within=30)

    assert all(s.attempts >= 2 for s in delivered)
    assert all(sandbox.get_user(f"user-{k}") is not None for k in keys)


async def test_out_of_attempts_is_dead_lettered(
    store: ActionStore, sandbox: BrazeSandbox, start_worker: WorkerFactory
) -> None:
    sandbox.faults.set(down=True)
    await store.submit([track_action("doomed")])
    await start_worker(connector=connector_for(sandbox, max_attempts=2))

    (status,) = await _until_states(store, ["doomed"], FAILED)

    assert status.attempts == 2
    assert status.reason.startswith("gave up after 2 attempts: Braze answered 503")
    page = await store.list_failed()
    assert [s.idempotency_key for s in page.actions] == ["doomed"]


async def test_error_for_one_object_dead_letters_exactly_that_action(
    store: ActionStore, sandbox: BrazeSandbox, start_worker: WorkerFactory
) -> None:
    sandbox.faults.add_minor_error("user-bad", "Invalid attribute value")
    keys = ["ok-1", "bad", "ok-2"]
    await store.submit(
        [
            track_action("ok-1", visitor="user-ok-1", attributes={"a": 1}),
            track_action("bad", visitor="user-bad", attributes={"a": 2}),
            track_action("ok-2", visitor="user-ok-2", attributes={"a": 3}),
        ]
    )
    await start_worker()

    ok1, bad, ok2 = await _until_states(store, keys, DELIVERED, FAILED)

    assert (ok1.state, ok2.state) == (DELIVERED, DELIVERED)
    assert bad.state == FAILED
    assert "Invalid attribute value" in bad.reason
    assert bad.last_http_status == 201
    page = await store.list_failed()
    assert [s.idempotency_key for s in page.actions] == ["bad"]
    assert len(sandbox.requests) == 1

    # Fixed at Braze's end: the dead letter goes out again on request.
    sandbox.faults.clear_minor_errors()
    assert await store.retry_failed(["bad"]) == (1, [])
    (retried,) = await _until_states(store, ["bad"], DELIVERED)
    assert retried.attempts == 1
    user = sandbox.get_user("user-bad")
    assert user is not None
    assert user.attributes["a"] == 2
    assert (await store.list_failed()).actions == []


async def test_entries_of_a_dead_worker_are_reclaimed_and_delivered(
    store: ActionStore,
    redis_client: aioredis.Redis,
    sandbox: BrazeSandbox,
    start_worker: WorkerFactory,
) -> None:
    keys = [f"orphan-{i}" for i in range(6)]
    await store.submit([track_action(k, visitor=f"user-{k}") for k in keys])
    # A worker takes the entries and dies before acknowledging anything.
    taken = await read_new(redis_client, PARTITIONS, "dead-worker", count=100, block_ms=0)
    assert sorted(t.key for t in taken) == keys
    assert await _pending(redis_client) == len(keys)

    await start_worker("survivor", claim_idle_ms=300)

    await _until_states(store, keys, DELIVERED)
    assert all(sandbox.get_user(f"user-{k}") is not None for k in keys)
    assert await _pending(redis_client) == 0


async def test_stop_flushes_lingering_actions(
    store: ActionStore, sandbox: BrazeSandbox, start_worker: WorkerFactory
) -> None:
    worker = await start_worker(connector=connector_for(sandbox, linger_ms=1000))
    keys = [f"linger-{i}" for i in range(5)]
    await store.submit([track_action(k, visitor=f"user-{k}") for k in keys])
    await eventually(lambda: _buffered(worker), lambda n: n == len(keys), what="buffering")

    await worker.stop(grace=10)

    assert [s.state for s in await _statuses(store, keys)] == [DELIVERED] * len(keys)
    assert len(sandbox.requests) == 1


async def test_action_of_an_unconfigured_connector_is_dead_lettered(
    store: ActionStore, start_worker: WorkerFactory
) -> None:
    await store.submit([track_action("elsewhere", connector=OTHER_CONNECTOR)])
    await start_worker()

    (status,) = await _until_states(store, ["elsewhere"], FAILED)

    assert status.reason == f"connector {OTHER_CONNECTOR} is not configured"
    assert status.attempts == 0


async def test_two_workers_stay_within_the_shared_rate_limit(
    store: ActionStore, start_worker: WorkerFactory
) -> None:
    # Braze allows 4 /users/track requests per second here; each action fills a request.
    limits = {**default_rate_limits(), "track": RateLimit(4, 1.0)}
    config = SandboxConfig(
        api_keys={API_KEY: ALL_PERMISSIONS}, rate_limits=limits, window_alignment="first_request"
    )
    keys = [f"heavy-{i}" for i in range(14)]
    actions = []
    for k in keys:
        action = track_action(k, visitor=f"user-{k}")
        del action.track_user.events[:]
        action.track_user.events.extend(action_pb2.TrackEvent(name=f"e{n}") for n in range(40))
        actions.append(action)
    await store.submit(actions)

    async with BrazeSandbox(config) as limited:
        connector = connector_for(limited, track_rate=Rate(requests=4, per_seconds=1.0))
        await start_worker("replica-a", connector=connector)
        await start_worker("replica-b", connector=connector)
        await _until_states(store, keys, DELIVERED, within=30)

        track = [r for r in limited.requests if r.path == "/users/track"]
        assert len(track) == len(keys)
        assert all(r.status == 201 for r in track)
        assert limited.max_requests_in_window("track") <= 4


async def _buffered(worker: DispatchWorker) -> int:
    return worker.buffered


async def test_429_wait_is_honoured_before_the_retry(
    store: ActionStore, sandbox: BrazeSandbox, start_worker: WorkerFactory
) -> None:
    sandbox.faults.force_rate_limit(retry_after=1, requests=1)
    await store.submit([track_action("limited", attributes={"v": 1})])
    await start_worker()

    (status,) = await _until_states(store, ["limited"], DELIVERED)

    refused, accepted = sandbox.requests
    assert (refused.status, accepted.status) == (429, 201)
    # Braze said one second: the retry may not come earlier (clock rounding aside).
    assert accepted.time - refused.time >= 0.99
    assert status.attempts == 2


async def test_identify_track_and_delete_in_one_batch(
    store: ActionStore, sandbox: BrazeSandbox, start_worker: WorkerFactory
) -> None:
    alias = action_pb2.UserAlias(alias_name="anon-1", alias_label="crowd")
    anonymous = track_action("alias-track", visitor="anon-1")
    anonymous.track_user.user.Clear()
    anonymous.track_user.user.user_alias.CopyFrom(alias)
    identify = action_pb2.Action(
        idempotency_key="identify",
        connector_id=anonymous.connector_id,
        visitor_id="anon-1",
        identify_user=action_pb2.IdentifyUser(external_id="known-1", user_alias=alias),
    )
    doomed = track_action("doomed-track", visitor="gone-1")
    delete = action_pb2.Action(
        idempotency_key="delete",
        connector_id=doomed.connector_id,
        visitor_id="gone-1",
        delete_user=action_pb2.DeleteUser(user=action_pb2.UserIds(external_id="gone-1")),
    )
    await store.submit([anonymous, doomed])
    await start_worker()
    await _until_states(store, ["alias-track", "doomed-track"], DELIVERED)

    await store.submit([identify, delete, track_action("later", visitor="known-1")])
    await _until_states(store, ["identify", "delete", "later"], DELIVERED)

    paths = {r.path for r in sandbox.requests}
    assert paths == {"/users/track", "/users/identify", "/users/delete"}
    assert sandbox.get_user("gone-1") is None
    known = sandbox.get_user("known-1")
    assert known is not None
    assert known.aliases.get("crowd") == "anon-1"
