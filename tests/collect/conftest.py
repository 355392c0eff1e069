"""Fixtures of the Collect ingest tests: a real profile server (gRPC on port 0) with the
Collect HTTP ingest on a free port, real Redis, and an aiohttp client session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest_asyncio

from crowd.client import CrowdClient
from crowd.definitions.loader import load_definitions
from service_common.server import ManagedServer
from tests.harness import free_port
from tests.profile_api.helpers import ADMIN_KEY
from tests.profile_api.servers import Servers, Tracing

ACCOUNT = "acme"
PROFILE = "main"
BROWSER_DATASOURCE = "web123"
SHOP_ORIGIN = "https://shop.example"
SEED = "examples/definitions/seed_vip.yaml"


@dataclass
class Collect:
    """A running profile server with its Collect ingest."""

    server: ManagedServer
    url: str
    http: aiohttp.ClientSession
    crowd: CrowdClient


async def start_collect(
    servers: Servers, http: aiohttp.ClientSession, **overrides: Any
) -> tuple[ManagedServer, str]:
    """A profile server whose Collect ingest listens on a free port; its base URL."""
    port = free_port()
    values: dict[str, Any] = {
        "collect_port": port,
        "collect_account": ACCOUNT,
        "collect_profile": PROFILE,
        "collect_rate_per_second": 100_000.0,
        "collect_allowed_origins": [SHOP_ORIGIN],
        "collect_datasources": {BROWSER_DATASOURCE: [SHOP_ORIGIN]},
    }
    values.update(overrides)
    server = await servers.profile(**values)
    return server, f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture
async def collect(
    redis_url: str, tracing: Tracing, http: aiohttp.ClientSession
) -> AsyncIterator[Collect]:
    servers = Servers(redis_url, tracing)
    try:
        server, url = await start_collect(servers, http)
        async with CrowdClient(server.address, api_key=ADMIN_KEY) as crowd:
            await crowd.publish_definitions(load_definitions(SEED))
            yield Collect(server, url, http, crowd)
    finally:
        await servers.close()
