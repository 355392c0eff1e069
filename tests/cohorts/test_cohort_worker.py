"""The cohort worker's durability: taking over a dead worker's cohort, stopping during an
outage, a Redis restart (real Redis, real sandbox over HTTP; no gRPC server needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest_asyncio
import redis.asyncio as aioredis
from pydantic import SecretStr

from braze_sandbox import BrazeSandbox
from dispatch_service.braze import BrazeConnector, create_session
from dispatch_service.cohorts import CohortStore, CohortWorker, CohortWorkerSettings, cohort_senders
from dispatch_service.cohorts.queue import GROUP, Lease, read_new
from service_common.keys import CohortKeys
from tests.cohorts.conftest import PARTITIONS
from tests.cohorts.helpers import (
    API_KEY,
    CLIENT_SECRET,
    CONNECTOR,
    PARTNER,
    PARTNER_KEY,
    add,
    cohort_message,
    create_users,
    remove,
    stream,
)
from tests.harness import RedisServer, eventually

WorkerFactory = Callable[..., Awaitable[CohortWorker]]


def _connector(sandbox: BrazeSandbox) -> BrazeConnector:
    return BrazeConnector(
        id=CONNECTOR,
        url=sandbox.url,
        api_key=SecretStr(API_KEY),
        partner_name=PARTNER,
        partner_api_key=SecretStr(PARTNER_KEY),
        client_secret=SecretStr(CLIENT_SECRET),
    )


async def _accept(store: CohortStore, cohort_id: str, users: list[str]) -> None:
    """Store a stream as the servicer would."""
    intake = store.intake()
    for message in stream(cohort_message(cohort_id), [add(u) for u in users]):
        intake.add(message)
    await store.write(intake.finish())


async def _pending_entries(redis: aioredis.Redis) -> int:
    total = 0
    for partition in range(PARTITIONS):
        total += (await redis.xpending(CohortKeys(partition).queue, GROUP))["pending"]
    return total


@pytest_asyncio.fixture
async def start_worker(sandbox: BrazeSandbox) -> AsyncIterator[WorkerFactory]:
    """Start workers, each with its own Redis client and HTTP session like a replica."""
    running: list[tuple[CohortWorker, aioredis.Redis, aiohttp.ClientSession]] = []

    async def factory(redis_url: str, name: str = "worker-1", **settings: Any) -> CohortWorker:
        client = aioredis.Redis.from_url(redis_url)
        session = create_session()
        connectors = {CONNECTOR: _connector(sandbox)}
        store = CohortStore(client, PARTITIONS, connectors)
        senders = cohort_senders(connectors, client, PARTITIONS, session)
        worker = CohortWorker(
            store, senders, consumer_name=name, settings=CohortWorkerSettings(**settings)
        )
        await worker.start()
        running.append((worker, client, session))
        return worker

    yield factory
    for worker, client, session in running:
        await worker.stop(grace=2.0)
        await session.close()
        await client.aclose()


async def test_a_dead_workers_cohort_is_taken_over(
    redis_url: str, redis_client: aioredis.Redis, sandbox: BrazeSandbox, start_worker: WorkerFactory
):
    users = [f"u{i}" for i in range(30)]
    await create_users(sandbox, users)
    store = CohortStore(redis_client, PARTITIONS, {CONNECTOR: _connector(sandbox)})
    await store.ensure_queues()
    await _accept(store, "orphan", users)
    # A worker takes the entry and the cohort's lease, then dies without a trace.
    [entry] = await read_new(redis_client, PARTITIONS, "dead-worker", 10, 100)
    assert await Lease(redis_client, entry, ttl_ms=600).acquire()

    await start_worker(redis_url, claim_idle_ms=300, lease_ms=1000, lease_poll_s=0.05)
    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, "orphan") == set(users), 15)
    await eventually(lambda: _pending_entries(redis_client), lambda n: n == 0, what="acked")
    assert await store.pending(CONNECTOR, "orphan") == {}
    assert await redis_client.xlen(CohortKeys(entry.partition).queue) == 0


async def test_stopping_during_an_outage_keeps_the_changes_for_the_next_worker(
    redis_url: str, redis_client: aioredis.Redis, sandbox: BrazeSandbox, start_worker: WorkerFactory
):
    await create_users(sandbox, ["a", "b"])
    store = CohortStore(redis_client, PARTITIONS, {CONNECTOR: _connector(sandbox)})
    await store.ensure_queues()
    sandbox.faults.set(down=True)
    first = await start_worker(redis_url, "first", claim_idle_ms=300, lease_ms=600)
    await _accept(store, "outage", ["a", "b"])
    await sandbox.wait_for_requests(1, 10, group="cohorts")
    await first.stop(grace=1.0)
    assert await store.pending(CONNECTOR, "outage") == {"e:a": "1", "e:b": "1"}
    assert await _pending_entries(redis_client) == 1, "the entry stays for a takeover"

    sandbox.faults.set(down=False)
    await start_worker(redis_url, "second", claim_idle_ms=300, lease_ms=600, lease_poll_s=0.05)
    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, "outage") == {"a", "b"}, 15)
    await eventually(lambda: _pending_entries(redis_client), lambda n: n == 0, what="acked")


async def test_accepted_changes_survive_a_redis_restart(
    durable_redis: RedisServer, sandbox: BrazeSandbox, start_worker: WorkerFactory
):
    await create_users(sandbox, ["r1", "r2"])
    client = aioredis.Redis.from_url(durable_redis.url)
    try:
        store = CohortStore(client, PARTITIONS, {CONNECTOR: _connector(sandbox)})
        await store.ensure_queues()
        await _accept(store, "durable", ["r1", "r2"])
    finally:
        await client.aclose()
    durable_redis.restart(kill=True)

    await start_worker(durable_redis.url)
    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, "durable") == {"r1", "r2"}, 15)


async def test_two_replicas_keep_each_cohorts_changes_in_order(
    redis_url: str, redis_client: aioredis.Redis, sandbox: BrazeSandbox, start_worker: WorkerFactory
):
    users = [f"u{i}" for i in range(6)]
    await create_users(sandbox, users)
    store = CohortStore(redis_client, PARTITIONS, {CONNECTOR: _connector(sandbox)})
    await store.ensure_queues()
    await start_worker(redis_url, "replica-a", lease_poll_s=0.01)
    await start_worker(redis_url, "replica-b", lease_poll_s=0.01)
    wanted: dict[str, bool] = {}
    for round_number in range(30):
        user = users[round_number % len(users)]
        keep = round_number % 4 != 1
        intake = store.intake()
        change = add(user) if keep else remove(user)
        for message in stream(cohort_message("flapping"), [change]):
            intake.add(message)
        await store.write(intake.finish())
        wanted[user] = keep
    await eventually(lambda: store.pending(CONNECTOR, "flapping"), lambda p: p == {}, what="sent")
    await eventually(lambda: _pending_entries(redis_client), lambda n: n == 0, what="acked")
    assert sandbox.cohort_members(PARTNER, "flapping") == {u for u, keep in wanted.items() if keep}
