"""Fixtures of the dispatch tests: a real Redis (tests/conftest.py), the action store, a real
Braze sandbox over HTTP and real workers on the Braze library."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest_asyncio
import redis.asyncio as aioredis
from pydantic import SecretStr

from braze_sandbox import ALL_PERMISSIONS, BrazeSandbox
from dispatch_service.braze import BrazeConnector, create_session
from dispatch_service.delivery import braze_deliveries
from dispatch_service.queue import ActionStore
from dispatch_service.worker import DispatchWorker, WorkerSettings
from tests.dispatch.helpers import API_KEY, CONNECTOR, OTHER_CONNECTOR
from tests.harness import running_sandbox

PARTITIONS = 16

WorkerFactory = Callable[..., Awaitable[DispatchWorker]]


@pytest_asyncio.fixture
async def store(redis_client: aioredis.Redis) -> ActionStore:
    store = ActionStore(redis_client, PARTITIONS, [CONNECTOR, OTHER_CONNECTOR])
    await store.ensure_queues()
    return store


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[BrazeSandbox]:
    async with running_sandbox(api_keys={API_KEY: ALL_PERMISSIONS}) as sandbox:
        yield sandbox


def connector_for(sandbox: BrazeSandbox, **overrides: Any) -> BrazeConnector:
    """The test connector, pointed at the sandbox (short linger unless overridden)."""
    settings: dict[str, Any] = {"linger_ms": 50}
    settings.update(overrides)
    return BrazeConnector(id=CONNECTOR, url=sandbox.url, api_key=SecretStr(API_KEY), **settings)


@pytest_asyncio.fixture
async def start_worker(redis_url: str, sandbox: BrazeSandbox) -> AsyncIterator[WorkerFactory]:
    """Start workers (each with its own Redis client and HTTP session, like a replica);
    all are stopped after the test."""
    running: list[tuple[DispatchWorker, aioredis.Redis, aiohttp.ClientSession]] = []

    async def factory(
        name: str = "worker-1",
        connector: BrazeConnector | None = None,
        **settings: Any,
    ) -> DispatchWorker:
        client = aioredis.Redis.from_url(redis_url)
        session = create_session()
        store = ActionStore(client, PARTITIONS, [CONNECTOR])
        connectors = {CONNECTOR: connector or connector_for(sandbox)}
        deliveries = braze_deliveries(connectors, client, PARTITIONS, session)
        worker = DispatchWorker(
            store, deliveries, consumer_name=name, settings=WorkerSettings(**settings)
        )
        await worker.start()
        running.append((worker, client, session))
        return worker

    yield factory
    for worker, client, session in running:
        await worker.stop(grace=5.0)
        await session.close()
        await client.aclose()
