"""``--workers 2``: each worker serves /metrics on ``metrics_port + index``, and the workers'
counters add up to exactly what the service did (a real supervised profile service)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from crowd.client import CrowdClient
from profile_service.settings import ProfileSettings
from tests.harness.net import free_port
from tests.metrics.scrape import scrape, value
from tests.profile_api.helpers import ADMIN_KEY, PROFILE_KEYS, wait_for
from tests.workers.supervised import SupervisedService

pytestmark = pytest.mark.slow

EVENTS = 30


def free_pair() -> int:
    """A port whose next port is free too."""
    while True:
        base = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base


def test_each_worker_gets_its_own_metrics_port() -> None:
    values: dict[str, Any] = {"metrics_port": 9101}
    settings = ProfileSettings(**values)
    assert [settings.worker_overrides(i)["metrics_port"] for i in range(3)] == [9101, 9102, 9103]
    off: dict[str, Any] = {}
    assert "metrics_port" not in ProfileSettings(**off).worker_overrides(1)  # off stays off


async def test_two_workers_counters_add_up(redis_url: str, tmp_path: Path) -> None:
    base = free_pair()
    service = SupervisedService(
        "profile_service",
        {
            "CROWD_PROFILE_REDIS_URL": redis_url,
            "CROWD_PROFILE_API_KEYS": json.dumps(PROFILE_KEYS),
            "CROWD_PROFILE_SHUTDOWN_GRACE_SECONDS": "2",
            "CROWD_PROFILE_METRICS_PORT": str(base),
        },
        tmp_path / "profile.log",
    )
    try:
        await service.start()
        await service.wait_serving()
        ports = [base, base + 1]
        ingested = "crowd_profile_events_ingested_total"
        labels = {"rpc": "TrackEvent", "outcome": "accepted"}

        async def total() -> float:
            return sum([value(await scrape(port), ingested, labels) for port in ports])

        before = await total()
        async with CrowdClient(service.address, api_key=ADMIN_KEY, channels=16) as client:
            for i in range(EVENTS):
                await client.track_event(f"metered-worker-{i:02d}", "page_view")

        async def counted() -> bool:
            return await total() - before == EVENTS

        await wait_for(counted, "both workers' counters to add up to the events sent")
        assert await service.stop() == 0
    finally:
        await service.kill()
