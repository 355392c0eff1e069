"""Fixtures of the dispatch tests: a real Redis (tests/conftest.py) and the action store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis

from dispatch_service.queue import ActionStore
from tests.dispatch.helpers import CONNECTOR, OTHER_CONNECTOR

PARTITIONS = 16


@pytest_asyncio.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def store(redis_client: aioredis.Redis) -> ActionStore:
    store = ActionStore(redis_client, PARTITIONS, [CONNECTOR, OTHER_CONNECTOR])
    await store.ensure_queues()
    return store
