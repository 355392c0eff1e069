"""Fixtures of the storage tests: real Redis clients and the stores built on them."""

from __future__ import annotations

import pytest
import pytest_asyncio
import redis.asyncio

from profile_service.storage import Layout, ProfileReader, ProfileStore
from tests.storage.helpers import STAND_IN_ENGINE

PARTITIONS = 8


@pytest.fixture
def client(redis_client: redis.asyncio.Redis) -> redis.asyncio.Redis:
    """The shared ``redis_client`` (tests/conftest.py) under this suite's name."""
    return redis_client


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
