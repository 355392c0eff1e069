"""Collect ingest on the profile service's /metrics: accepted HTTP events are counted under
``rpc="Collect"`` like the gRPC RPCs, refused ones under a bounded reason (real server,
real HTTP, real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from crowd.client import CrowdClient
from crowd.definitions.loader import load_definitions
from tests.collect.conftest import ACCOUNT, PROFILE, SEED, start_collect
from tests.harness import free_port
from tests.metrics.scrape import Samples, scrape, value
from tests.profile_api.helpers import ADMIN_KEY, INGEST_KEY
from tests.profile_api.servers import Servers, Tracing

AUTH = {"Authorization": f"Bearer {INGEST_KEY}"}
BASE = {"tealium_account": ACCOUNT, "tealium_profile": PROFILE, "tealium_datasource": "srv1"}
INGESTED = "crowd_profile_events_ingested_total"
REJECTED = "crowd_profile_events_rejected_total"


@pytest_asyncio.fixture
async def metered(
    redis_url: str, tracing: Tracing, http: aiohttp.ClientSession
) -> AsyncIterator[tuple[str, int]]:
    servers = Servers(redis_url, tracing)
    try:
        server, url = await start_collect(servers, http, metrics_port=free_port())
        assert server.metrics is not None
        async with CrowdClient(server.address, api_key=ADMIN_KEY) as crowd:
            await crowd.publish_definitions(load_definitions(SEED))
        yield url, server.metrics.port
    finally:
        await servers.close()


def moved(after: Samples, before: Samples, name: str, labels: dict[str, str]) -> float:
    return value(after, name, labels) - value(before, name, labels)


async def test_collect_events_are_counted_accepted_and_rejected(
    metered: tuple[str, int], http: aiohttp.ClientSession
) -> None:
    url, port = metered
    before = await scrape(port)

    async def post(path: str, body: Any, status: int) -> None:
        async with http.post(url + path, json=body, headers=AUTH) as response:
            assert response.status == status, response.headers.get("X-Error")

    events = [{"tealium_visitor_id": f"m-{n}"} for n in range(3)]
    shared = {**BASE, "tealium_event": "page_view"}
    await post("/v3/collect/bulk-event", {"shared": shared, "events": events}, 200)
    bad = {"shared": shared, "events": [{"tealium_visitor_id": "m-9"}, {"page.url": "x"}]}
    await post("/v3/collect/bulk-event", bad, 400)  # a period in a key: both refused
    async with http.post(url + "/v3/collect/event", data=b"", headers=AUTH) as response:
        assert response.status == 400  # empty body: refused before any event was read

    after = await scrape(port)
    assert moved(after, before, INGESTED, {"rpc": "Collect", "outcome": "accepted"}) == 3
    assert moved(after, before, REJECTED, {"reason": "invalid"}) == 3  # 2 events + 1 request
