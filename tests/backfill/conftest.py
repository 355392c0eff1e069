"""Fixtures of the backfill tests: real profile servers (port 0) on the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.profile_api.servers import Servers, Tracing


@pytest_asyncio.fixture
async def servers(redis_url: str, tracing: Tracing) -> AsyncIterator[Servers]:
    servers = Servers(redis_url, tracing)
    try:
        yield servers
    finally:
        await servers.close()
