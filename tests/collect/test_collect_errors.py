"""Tealium's error answers (status + X-Error), auth, the per-source rate, CORS, over real
HTTP to a real profile server; nothing is written by a refused request."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import grpc.aio
import pytest
import pytest_asyncio

from crowd.client import CrowdClient
from tests.collect.conftest import (
    ACCOUNT,
    BROWSER_DATASOURCE,
    PROFILE,
    SHOP_ORIGIN,
    Collect,
    start_collect,
)
from tests.profile_api.helpers import INGEST_KEY, READ_KEY
from tests.profile_api.servers import Servers, Tracing

AUTH = {"Authorization": f"Bearer {INGEST_KEY}"}
BASE = {"tealium_account": ACCOUNT, "tealium_profile": PROFILE, "tealium_datasource": "srv1"}


def event(visitor: str, **extra: Any) -> dict[str, Any]:
    return {**BASE, "tealium_event": "cart_add", "tealium_visitor_id": visitor, **extra}


async def refused(
    collect: Collect,
    path: str,
    *,
    status: int,
    json: Any = None,
    data: Any = None,
    headers: dict[str, str] | None = None,
) -> str:
    """POST and assert ``status``; return the X-Error text."""
    async with collect.http.post(
        collect.url + path, json=json, data=data, headers=AUTH if headers is None else headers
    ) as response:
        assert response.status == status, response.headers.get("X-Error")
        return response.headers.get("X-Error", "")


async def assert_no_profile(collect: Collect, visitor: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await collect.crowd.get_profile(visitor)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_period_in_a_key(collect: Collect) -> None:
    error = await refused(collect, "/event", status=400, json=event("e-1", **{"a.b": 1}))
    assert error == "key contains a period: a.b"
    await assert_no_profile(collect, "e-1")


async def test_period_in_a_bulk_key_refuses_the_whole_request(collect: Collect) -> None:
    body = {"shared": event("e-2"), "events": [{"ok": 1}, {"page.url": "x"}]}
    error = await refused(collect, "/v3/collect/bulk-event", status=400, json=body)
    assert "period" in error
    await assert_no_profile(collect, "e-2")


async def test_body_over_one_megabyte(collect: Collect) -> None:
    body = io.BytesIO(json.dumps(event("e-3", blob="x" * (1024 * 1024))).encode())
    headers = {**AUTH, "Content-Type": "application/json"}
    assert "1 MB" in await refused(collect, "/event", status=400, data=body, headers=headers)
    await assert_no_profile(collect, "e-3")


@pytest.mark.parametrize("missing", ["tealium_account", "tealium_profile"])
async def test_missing_account_or_profile(collect: Collect, missing: str) -> None:
    body = event("e-4")
    del body[missing]
    assert await refused(collect, "/event", status=400, json=body) == f"{missing} is required"


async def test_missing_account_on_get(collect: Collect) -> None:
    params = {"tealium_visitor_id": "e-5", "tealium_event": "view"}
    async with collect.http.get(collect.url + "/event", params=params, headers=AUTH) as response:
        assert response.status == 400
        assert response.headers["X-Error"] == "tealium_account is required"


@pytest.mark.parametrize("path", ["/event", "/v3/collect/event", "/v3/collect/bulk-event"])
async def test_empty_body(collect: Collect, path: str) -> None:
    assert await refused(collect, path, status=400, data=b"") == "empty body"


async def test_other_account_is_forbidden(collect: Collect) -> None:
    body = event("e-6", tealium_account="someone-else")
    assert "tealium_account" in await refused(collect, "/event", status=403, json=body)
    await assert_no_profile(collect, "e-6")


async def test_more_than_ten_bulk_events(collect: Collect) -> None:
    body = {"shared": event("e-7"), "events": [{"n": i} for i in range(11)]}
    error = await refused(collect, "/v3/collect/bulk-event", status=400, json=body)
    assert error == "at most 10 events per bulk request"


async def test_missing_visitor_id_names_the_tealium_parameter(collect: Collect) -> None:
    body = event("x")
    del body["tealium_visitor_id"]
    error = await refused(collect, "/event", status=400, json=body)
    assert error.startswith("tealium_visitor_id:")


async def test_nested_object_and_bad_json(collect: Collect) -> None:
    nested = event("e-8", cart={"sku": "a"})
    assert "nested" in await refused(collect, "/event", status=400, json=nested)
    bad = {**AUTH, "Content-Type": "application/json"}
    assert "JSON" in await refused(collect, "/event", status=400, data=b"{nope", headers=bad)


async def test_no_key_unknown_key_and_read_only_key(collect: Collect) -> None:
    assert await refused(collect, "/event", status=401, json=event("e-9"), headers={})
    wrong = {"Authorization": "Bearer not-a-real-key-0000000000"}
    error = await refused(collect, "/event", status=401, json=event("e-9"), headers=wrong)
    assert "not-a-real-key" not in error
    read_only = {"Authorization": f"Bearer {READ_KEY}"}
    error = await refused(collect, "/event", status=403, json=event("e-9"), headers=read_only)
    assert error == "the API key lacks scope 'ingest'"
    await assert_no_profile(collect, "e-9")


async def test_ingest_only_key_sends_events_and_cannot_read(collect: Collect) -> None:
    async with collect.http.post(collect.url + "/event", json=event("e-10"), headers=AUTH) as r:
        assert r.status == 200
    async with CrowdClient(collect.server.address, api_key=INGEST_KEY) as ingest_only:
        await ingest_only.track_event("e-11", "view")
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await ingest_only.get_profile("e-10")
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await collect.crowd.get_profile("e-11")).profile_id


async def test_keyless_browser_datasource_is_bound_to_its_origins(collect: Collect) -> None:
    browser = event("b-1", tealium_datasource=BROWSER_DATASOURCE)
    async with collect.http.get(
        collect.url + "/event", params=browser, headers={"Origin": SHOP_ORIGIN}
    ) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == SHOP_ORIGIN
    assert (await collect.crowd.get_profile("b-1")).profile_id
    keyless_post = {"Origin": SHOP_ORIGIN}
    async with collect.http.post(
        collect.url + "/event", json={**browser, "tealium_visitor_id": "b-3"}, headers=keyless_post
    ) as response:
        assert response.status == 200
        assert await response.json() == {"accepted": 1}  # no profile data for a keyless caller
    assert (await collect.crowd.get_profile("b-3")).profile_id
    evil = {"Origin": "https://evil.example"}
    assert await refused(
        collect,
        "/event",
        status=403,
        json=event("b-2", tealium_datasource=BROWSER_DATASOURCE),
        headers=evil,
    )
    await assert_no_profile(collect, "b-2")


async def test_cors_preflight(collect: Collect) -> None:
    headers = {
        "Origin": SHOP_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with collect.http.options(collect.url + "/event", headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == SHOP_ORIGIN
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
    headers["Origin"] = "https://evil.example"
    async with collect.http.options(collect.url + "/event", headers=headers) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers


@pytest_asyncio.fixture
async def slow_collect(
    redis_url: str, tracing: Tracing, http: aiohttp.ClientSession
) -> AsyncIterator[Collect]:
    """A Collect ingest allowing one request per 1000 s per source (burst 1)."""
    servers = Servers(redis_url, tracing)
    try:
        server, url = await start_collect(servers, http, collect_rate_per_second=0.001)
        async with CrowdClient(server.address, api_key=INGEST_KEY) as crowd:
            yield Collect(server, url, http, crowd)
    finally:
        await servers.close()


async def test_rate_limit_per_datasource(slow_collect: Collect) -> None:
    async with slow_collect.http.post(
        slow_collect.url + "/event", json=event("r-1"), headers=AUTH
    ) as response:
        assert response.status == 200
    error = await refused(slow_collect, "/event", status=429, json=event("r-2"))
    assert error == "rate limit exceeded"
    # Another datasource has its own bucket.
    other = event("r-3", tealium_datasource="srv2")
    async with slow_collect.http.post(
        slow_collect.url + "/event", json=other, headers=AUTH
    ) as response:
        assert response.status == 200
