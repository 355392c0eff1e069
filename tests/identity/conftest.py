"""Fixtures of the identity tests: real Redis, stores on the real engine."""

from __future__ import annotations

import pytest
import pytest_asyncio
import redis.asyncio

from profile_service.storage import Layout, ProfileReader, ProfileStore
from tests.identity.helpers import real_store


@pytest.fixture
def layout() -> Layout:
    return Layout(8)


@pytest_asyncio.fixture
async def store(redis_client: redis.asyncio.Redis, layout: Layout) -> ProfileStore:
    return await real_store(redis_client, layout)


@pytest.fixture
def reader(redis_client: redis.asyncio.Redis, layout: Layout) -> ProfileReader:
    return ProfileReader(redis_client, layout)


# The API-level tests use the profile API suite's real servers and clients.
from tests.profile_api.conftest import client, profile_server, servers  # noqa: E402, F401
