"""``crowd stats`` against real servers' /metrics endpoints (the CLI in a subprocess, so this
process's event loop keeps serving the scrape-time gauges)."""

from __future__ import annotations

import json

from braze_sandbox import BrazeSandbox
from tests.cli.cli_runner import cli_env, run_cli, run_cli_async
from tests.harness.net import free_port
from tests.metrics.conftest import Stack
from tests.profile_api.helpers import wait_for
from tests.profile_api.shop import shop_definitions


def _urls(stack: Stack) -> list[str]:
    return [
        "--profile-metrics",
        f"http://127.0.0.1:{stack.profile_port}/metrics",
        "--dispatch-metrics",
        f"http://127.0.0.1:{stack.dispatch_port}/metrics",
    ]


async def test_stats_once_json_shows_the_flow(stack: Stack, sandbox: BrazeSandbox) -> None:
    await stack.client.publish_definitions(shop_definitions())
    before = await run_cli_async("stats", "--once", "--json", *_urls(stack), env=cli_env())
    assert before.code == 0, before.stderr
    first = json.loads(before.stdout)
    assert set(first["queue_depth"]) == {"actions", "cohorts"}
    assert first["ingest_rate_per_s"] is None  # one reading has no rate

    await stack.client.track_event("stats-shopper", "page_view", {"customer_id": "cust-stats"})
    await stack.client.track_event("stats-shopper", "purchase", {"order_total": 750.0})

    async def delivered() -> dict[str, object] | None:
        ran = await run_cli_async("stats", "--once", "--json", *_urls(stack), env=cli_env())
        snapshot: dict[str, object] = json.loads(ran.stdout)
        requests = snapshot["braze_requests"]
        assert isinstance(requests, dict)
        first_2xx = first["braze_requests"].get("2xx", 0)
        return snapshot if requests.get("2xx", 0) == first_2xx + 1 else None

    after = await wait_for(delivered, "crowd stats to show the Braze request")
    assert after is not None
    assert after["events_ingested"] == first["events_ingested"] + 2
    assert after["dead_letters"] == first["dead_letters"]


async def test_stats_once_pretty_is_one_screen(stack: Stack) -> None:
    ran = await run_cli_async("-o", "pretty", "stats", "--once", *_urls(stack), env=cli_env())
    assert ran.code == 0, ran.stderr
    for row in ("ingest rate", "outbox backlog", "queue actions", "braze requests", "dead letters"):
        assert row in ran.stdout


def test_stats_exits_3_when_an_endpoint_does_not_answer() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    env = cli_env(CROWD_PROFILE_METRICS=url, CROWD_DISPATCH_METRICS=url)
    ran = run_cli("stats", "--once", env=env)
    assert ran.code == 3
    assert "cannot read metrics from" in ran.stderr
