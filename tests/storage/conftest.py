"""Fixtures of the storage tests: real Redis clients and the stores built on them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio

from profile_service.storage import Layout, ProfileReader, ProfileStore
from tests.storage.helpers import STAND_IN_ENGINE

PARTITIONS = 8


@pytest_asyncio.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    redis_client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield redis_client
    finally:
        await redis_client.aclose()


@pytest.fixture
def layout() -> Layout:
    return Layout(PARTITIONS)


@pytest_asyncio.fixture
async def store(client: redis.asyncio.Redis, layout: Layout) -> ProfileStore:
    profile_store = ProfileStore(client, layout, STAND_IN_ENGINE)
    await profile_store.prepare()
    return profile_store


@pytest.fixture
def reader(client: redis.asyncio.Redis, layout: Layout) -> ProfileReader:
    return ProfileReader(client, layout)
