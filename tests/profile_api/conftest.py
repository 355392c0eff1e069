"""Fixtures of the profile API tests: real profile servers (``create_server``, port 0) on the
real Redis of tests/conftest.py, and async clients over real gRPC channels."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from crowd.client import CrowdClient
from service_common.server import ManagedServer
from tests.profile_api.helpers import ADMIN_KEY, counter_definitions
from tests.profile_api.servers import Servers, Tracing


@pytest_asyncio.fixture
async def servers(redis_url: str, tracing: Tracing) -> AsyncIterator[Servers]:
    servers = Servers(redis_url, tracing)
    try:
        yield servers
    finally:
        await servers.close()


@pytest_asyncio.fixture
async def profile_server(servers: Servers) -> ManagedServer:
    return await servers.profile()


@pytest_asyncio.fixture
async def client(profile_server: ManagedServer) -> AsyncIterator[CrowdClient]:
    """A client with the admin key (scopes ingest, read, admin)."""
    async with CrowdClient(profile_server.address, api_key=ADMIN_KEY) as crowd:
        yield crowd


@pytest_asyncio.fixture
async def counting(client: CrowdClient) -> CrowdClient:
    """``client`` after publishing the counter definitions (``counter`` += 1 per event)."""
    await client.publish_definitions(counter_definitions())
    return client
