"""docs/grafana/crowd-dashboard.json is a valid dashboard and only names metrics we export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import dispatch_service.metrics
import profile_service.metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "crowd-dashboard.json"
# Scrape-time gauges (collected per server from Redis, not in the default registry).
SCRAPE_TIME = {
    "crowd_profile_outbox_backlog_entries",
    "crowd_profile_outbox_oldest_age_seconds",
    "crowd_dispatch_queue_depth",
    "crowd_dispatch_queue_oldest_age_seconds",
    "crowd_profile_backfill_partitions_done",
    "crowd_profile_backfill_partitions_total",
}


def exported_samples() -> set[str]:
    assert profile_service.metrics.STITCHES and dispatch_service.metrics.RETRIES  # registered
    names = {s.name for family in REGISTRY.collect() for s in family.samples}
    # Labelled families have no samples until used: add their names from the collectors.
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in ("_total", "_bucket", "_count", "_sum"))
    return names | SCRAPE_TIME


def test_every_panel_queries_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["panels"]
    exported = exported_samples()
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert {"id", "type", "title", "gridPos", "targets"} <= panel.keys()
        for target in panel["targets"]:
            names = set(re.findall(r"\bcrowd_[a-z0-9_]+", target["expr"]))
            assert names, f"panel {panel['title']!r} queries no crowd metric"
            assert names <= exported, f"unknown metrics in {panel['title']!r}: {names - exported}"
            used |= names
    # The alerting trio is on the dashboard.
    assert {
        "crowd_profile_outbox_oldest_age_seconds",
        "crowd_dispatch_dead_letters_total",
        "crowd_dispatch_braze_429_total",
    } <= used
