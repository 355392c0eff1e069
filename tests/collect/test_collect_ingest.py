"""The Collect endpoints against a real profile server and Redis over real HTTP: each
endpoint, the mapping onto crowd events, and parity with gRPC ingest."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp

from crowd.client import CrowdClient, make_event
from crowd.definitions.loader import load_definitions
from crowd.profile.v1 import profile_pb2
from profile_service.collect.http import PIXEL_GIF
from tests.collect.conftest import ACCOUNT, PROFILE, SEED, Collect, start_collect
from tests.profile_api.helpers import ADMIN_KEY, INGEST_KEY
from tests.profile_api.servers import Servers, Tracing

AUTH = {"Authorization": f"Bearer {INGEST_KEY}"}
BASE = {"tealium_account": ACCOUNT, "tealium_profile": PROFILE, "tealium_datasource": "srv1"}


async def post(
    collect: Collect, path: str, body: Any, user_agent: str = "crowd-tests"
) -> dict[str, Any]:
    headers = {**AUTH, "User-Agent": user_agent}
    async with collect.http.post(collect.url + path, json=body, headers=headers) as response:
        assert response.status == 200, response.headers.get("X-Error")
        result: dict[str, Any] = await response.json()
        return result


async def test_get_event_answers_a_gif_and_records_the_event(collect: Collect) -> None:
    params = {**BASE, "tealium_event": "cart_add", "tealium_visitor_id": "get-1", "page": "/p"}
    async with collect.http.get(collect.url + "/event", params=params, headers=AUTH) as response:
        assert response.status == 200
        assert response.content_type == "image/gif"
        assert await response.read() == PIXEL_GIF
    profile = await collect.crowd.get_profile("get-1")
    assert profile.current_visit.attributes["added_to_cart"].bool_value is True


async def test_post_event_json_keeps_numbers_and_answers_results(collect: Collect) -> None:
    body = {**BASE, "tealium_event": "purchase", "tealium_visitor_id": "post-1", "order_total": 600}
    answer = await post(collect, "/event", body)
    (result,) = answer["results"]
    assert result["badges_assigned"] == ["vip"]
    profile = await collect.crowd.get_profile("post-1")
    assert profile.attributes["lifetime_order_value"].number_value == 600.0


async def test_post_event_form(collect: Collect) -> None:
    form = {**BASE, "tealium_event": "cart_add", "tealium_visitor_id": "form-1"}
    async with collect.http.post(collect.url + "/event", data=form, headers=AUTH) as response:
        assert response.status == 200, response.headers.get("X-Error")
    profile = await collect.crowd.get_profile("form-1")
    assert profile.current_visit.attributes["added_to_cart"].bool_value is True


async def test_v3_event(collect: Collect) -> None:
    body = {**BASE, "tealium_event": "purchase", "tealium_visitor_id": "v3-1", "order_total": 7.5}
    await post(collect, "/v3/collect/event", body)
    profile = await collect.crowd.get_profile("v3-1")
    assert profile.attributes["lifetime_order_value"].number_value == 7.5


async def test_bulk_event_merges_shared_into_each_event(collect: Collect) -> None:
    body = {
        "shared": {**BASE, "tealium_visitor_id": "bulk-1"},
        "events": [
            {"tealium_event": "purchase", "order_total": 300},
            {"tealium_event": "purchase", "order_total": 250},
        ],
    }
    answer = await post(collect, "/v3/collect/bulk-event", body)
    assert len(answer["results"]) == 2
    profile = await collect.crowd.get_profile("bulk-1")
    assert profile.attributes["lifetime_order_value"].number_value == 550.0
    assert list(profile.badges) == ["vip"]


async def test_visitor_id_precedence(collect: Collect) -> None:
    body = {
        **BASE,
        "tealium_event": "cart_add",
        "tealium_thirdparty_visitor_id": "third-1",
        "tealium_firstparty_visitor_id": "first-1",
    }
    answer = await post(collect, "/event", body)
    profile = await collect.crowd.get_profile("first-1")
    assert profile.profile_id == answer["results"][0]["profile_id"]
    body["tealium_visitor_id"] = "vid-1"
    answer = await post(collect, "/event", body)
    assert (await collect.crowd.get_profile("vid-1")).profile_id == answer["results"][0][
        "profile_id"
    ]


async def test_event_id_deduplicates_like_grpc(collect: Collect) -> None:
    body: dict[str, Any] = {**BASE, "tealium_event": "purchase", "tealium_visitor_id": "dup-1"}
    body |= {"order_total": 10, "tealium_event_id": "order-9"}
    first = await post(collect, "/event", body)
    second = await post(collect, "/event", body)
    assert first["results"][0].get("duplicate", False) is False
    assert second["results"][0]["duplicate"] is True


def comparable(profile: profile_pb2.Profile) -> profile_pb2.Profile:
    """The profile without ids and times (which differ between two visitors)."""
    copy = profile_pb2.Profile()
    copy.CopyFrom(profile)
    for name in ("profile_id", "visitor_ids", "created_at", "updated_at", "expires_at"):
        copy.ClearField(name)
    for membership in copy.audiences:
        membership.ClearField("joined_at")
    visit = copy.current_visit
    visit.ClearField("visit_id")
    visit.ClearField("started_at")
    visit.ClearField("last_event_at")
    visit.ClearField("expires_at")
    for attributes in (copy.attributes, visit.attributes):
        for attribute_id in [k for k, v in attributes.items() if v.HasField("date_value")]:
            del attributes[attribute_id]  # times of arrival
    return copy


async def test_same_events_through_grpc_and_collect_give_identical_profiles(
    collect: Collect,
) -> None:
    script: list[tuple[str, dict[str, Any]]] = [
        ("cart_add", {"sku": "a-1", "tags": ["x", "y"]}),
        ("purchase", {"order_total": 320.5, "gift": True}),
        ("cart_add", {"sku": "b-2", "sizes": [40, 41]}),
        ("purchase", {"order_total": 200}),
    ]
    start = int(time.time()) - 60  # explicit times: visit durations must match too
    await collect.crowd.track_events(
        make_event(
            "grpc-twin", name, data, time=datetime.fromtimestamp(start + i, tz=UTC), trace_id="t"
        )
        for i, (name, data) in enumerate(script)
    )
    # One bulk request, as the gRPC batch: one arrival time (visit durations count it).
    shared = {**BASE, "tealium_visitor_id": "http-twin", "tealium_trace_id": "t"}
    events = [
        {"tealium_event": name, "tealium_timestamp_epoch": start + i, **data}
        for i, (name, data) in enumerate(script)
    ]
    await post(collect, "/v3/collect/bulk-event", {"shared": shared, "events": events})
    via_grpc = await collect.crowd.get_profile("grpc-twin")
    via_http = await collect.crowd.get_profile("http-twin")
    assert via_http.attributes["lifetime_order_value"].number_value == 520.5
    assert comparable(via_http) == comparable(via_grpc)


async def test_the_user_agent_header_fills_the_browser_attributes_when_configured(
    redis_url: str, tracing: Tracing, http: aiohttp.ClientSession
) -> None:
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
    )
    desktop = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
    )
    servers = Servers(redis_url, tracing)
    try:
        server, url = await start_collect(servers, http, collect_user_agent_header=True)
        async with CrowdClient(server.address, api_key=ADMIN_KEY) as crowd:
            await crowd.publish_definitions(load_definitions(SEED))
            collect = Collect(server, url, http, crowd)
            body = {**BASE, "tealium_event": "view", "tealium_visitor_id": "ua-1"}
            await post(collect, "/event", body, user_agent=iphone)
            visit = (await crowd.get_profile("ua-1")).current_visit.attributes
            assert visit["active_browser_type"].string_value == "Mobile Safari"
            assert visit["active_os_type"].string_value == "iOS"
            assert visit["active_device_type"].string_value == "Mobile"
            assert visit["active_platform"].string_value == "browser"

            # A user_agent sent with the event wins over the header.
            await post(collect, "/event", {**body, "user_agent": desktop}, user_agent=iphone)
            profile = await crowd.get_profile("ua-1")
            assert profile.current_visit.attributes["active_device_type"].string_value == "Desktop"
            lifetime = profile.attributes["lifetime_device_types_used"].tally_value
            assert dict(lifetime.counts) == {"Mobile": 1.0, "Desktop": 1.0}
    finally:
        await servers.close()


async def test_the_user_agent_header_is_ignored_by_default(collect: Collect) -> None:
    body = {**BASE, "tealium_event": "view", "tealium_visitor_id": "ua-2"}
    await post(collect, "/event", body, user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")
    visit = (await collect.crowd.get_profile("ua-2")).current_visit.attributes
    assert "active_browser_type" not in visit
    await post(
        collect, "/event", {**body, "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"}
    )
    visit = (await collect.crowd.get_profile("ua-2")).current_visit.attributes
    assert visit["active_browser_type"].string_value == "Firefox"


async def test_trace_id_records_the_event_in_the_live_trace(collect: Collect) -> None:
    body = {**BASE, "tealium_event": "purchase", "tealium_visitor_id": "tr-1"}
    await post(collect, "/event", {**body, "tealium_trace_id": "trace-77", "order_total": 5})

    async def first_entry() -> Any:
        async for entry in collect.crowd.stream_trace(trace_id="trace-77", after="0"):
            return entry
        return None

    entry = await asyncio.wait_for(first_entry(), 20)
    assert entry is not None
    assert "tr-1" in str(entry)
