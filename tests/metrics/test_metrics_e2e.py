"""Both services' /metrics after an end-to-end run: ingest -> audience join -> fired action ->
dispatch -> Braze sandbox. Counters are process-wide (both servers run in this process), so
the test compares scrapes before and after the flow and asserts the exact increments."""

from __future__ import annotations

import grpc
import pytest

from braze_sandbox import BrazeSandbox
from crowd.client import make_event
from tests.metrics.conftest import Stack
from tests.metrics.scrape import scrape, value
from tests.profile_api.helpers import wait_for
from tests.profile_api.shop import VIP_ACTION, VIPS, shop_definitions


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
