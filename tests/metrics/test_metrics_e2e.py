"""Both services' /metrics after an end-to-end run: ingest -> audience join -> fired action ->
dispatch -> Braze sandbox. Counters are process-wide (both servers run in this process), so
the test compares scrapes before and after the flow and asserts the exact increments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from braze_sandbox import BrazeSandbox
from crowd.client import CrowdClient, make_event
from dispatch_service.worker import WorkerSettings
from service_common.server import ManagedServer
from tests.harness.net import free_port
from tests.metrics.scrape import scrape, value
from tests.profile_api.helpers import ADMIN_KEY, DISPATCH_KEY, wait_for
from tests.profile_api.servers import Servers, Tracing, write_connectors
from tests.profile_api.shop import VIP_ACTION, VIPS, shop_definitions


class Stack:
    def __init__(self, profile: ManagedServer, dispatch: ManagedServer, client: CrowdClient):
        self.profile = profile
        self.dispatch = dispatch
        self.client = client

    @property
    def profile_port(self) -> int:
        assert self.profile.metrics is not None
        return self.profile.metrics.port

    @property
    def dispatch_port(self) -> int:
        assert self.dispatch.metrics is not None
        return self.dispatch.metrics.port


@pytest_asyncio.fixture
async def stack(
    redis_url: str, tracing: Tracing, sandbox: BrazeSandbox, tmp_path: Path
) -> AsyncIterator[Stack]:
    servers = Servers(redis_url, tracing)
    try:
        dispatch = await servers.dispatch(
            write_connectors(tmp_path, sandbox.url),
            WorkerSettings(block_ms=50, promote_interval_s=0.05),
            metrics_port=free_port(),
        )
        profile = await servers.profile(
            dispatch_target=dispatch.address,
            dispatch_api_key=DISPATCH_KEY,
            metrics_port=free_port(),
        )
        async with CrowdClient(profile.address, api_key=ADMIN_KEY) as client:
            yield Stack(profile, dispatch, client)
    finally:
        await servers.close()


async def test_counters_move_by_exactly_the_flow(stack: Stack, sandbox: BrazeSandbox) -> None:
    await stack.client.publish_definitions(shop_definitions())
    profile_before = await scrape(stack.profile_port)
    dispatch_before = await scrape(stack.dispatch_port)

    await stack.client.track_event("metered-shopper", "page_view", {"customer_id": "cust-metered"})
    result = await stack.client.track_event("metered-shopper", "purchase", {"order_total": 750.0})
    assert [a.action_id for a in result.actions_fired] == [VIP_ACTION]
    await sandbox.wait_until(lambda: any(r.path == "/users/track" for r in sandbox.requests))

    async def delivered() -> bool:
        samples = await scrape(stack.dispatch_port)
        moved = value(samples, "crowd_dispatch_action_results_total", {"result": "delivered"})
        return moved > value(
            dispatch_before, "crowd_dispatch_action_results_total", {"result": "delivered"}
        )

    await wait_for(delivered, "the delivery to be recorded")
    profile_after = await scrape(stack.profile_port)
    dispatch_after = await scrape(stack.dispatch_port)

    def moved_p(name: str, labels: dict[str, str] | None = None) -> float:
        return value(profile_after, name, labels) - value(profile_before, name, labels)

    def moved_d(name: str, labels: dict[str, str] | None = None) -> float:
        return value(dispatch_after, name, labels) - value(dispatch_before, name, labels)

    ingested = "crowd_profile_events_ingested_total"
    assert moved_p(ingested, {"rpc": "TrackEvent", "outcome": "accepted"}) == 2
    assert moved_p(ingested, {"rpc": "TrackEvent", "outcome": "duplicate"}) == 0
    assert moved_p("crowd_profile_audience_joins_total", {"audience": VIPS}) == 1
    assert moved_p("crowd_profile_actions_fired_total", {"action": VIP_ACTION}) == 1
    assert moved_p("crowd_profile_evaluation_seconds_count") == 2

    track = {"endpoint": "/users/track", "status_class": "2xx"}
    assert moved_d("crowd_dispatch_braze_requests_total", track) == 1
    assert moved_d("crowd_dispatch_action_results_total", {"result": "delivered"}) == 1
    assert moved_d("crowd_dispatch_delivery_seconds_count") == 1
    assert moved_d("crowd_dispatch_dead_letters_total", {"kind": "action"}) == 0
    assert moved_d("crowd_dispatch_batch_objects_count", {"endpoint": "/users/track"}) == 1

    # Scrape-time gauges: everything was handed over and delivered.
    async def drained() -> bool:
        samples = await scrape(stack.dispatch_port)
        profile = await scrape(stack.profile_port)
        return (
            ("crowd_dispatch_queue_depth", frozenset({("queue", "actions")})) in samples
            and value(samples, "crowd_dispatch_queue_depth", {"queue": "actions"}) == 0
            and ("crowd_profile_outbox_backlog_entries", frozenset()) in profile
            and value(profile, "crowd_profile_outbox_backlog_entries") == 0
        )

    await wait_for(drained, "the queues to drain")


async def test_invalid_events_are_counted_as_rejected(stack: Stack) -> None:
    await stack.client.publish_definitions(shop_definitions())
    before = await scrape(stack.profile_port)
    bad = [make_event("", "page_view"), make_event("valid-visitor", "page_view")]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.client.track_events(bad)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    after = await scrape(stack.profile_port)
    rejected = {"reason": "invalid"}
    moved = value(after, "crowd_profile_events_rejected_total", rejected) - value(
        before, "crowd_profile_events_rejected_total", rejected
    )
    assert moved == 2  # the whole batch is refused
    ingested = {"rpc": "TrackEvents", "outcome": "accepted"}
    assert value(after, "crowd_profile_events_ingested_total", ingested) == value(
        before, "crowd_profile_events_ingested_total", ingested
    )
