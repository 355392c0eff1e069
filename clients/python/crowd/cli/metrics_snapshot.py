"""One reading of the services' Prometheus endpoints, summarised for ``crowd stats``.

Parsing is prometheus-client's; this module only picks and adds up the series the screen
shows. Rates need two readings: :func:`ingest_rate` compares successive snapshots.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

FETCH_TIMEOUT_S = 3.0
BACKFILL_GAUGES = (
    "running",
    "partitions_done",
    "partitions_total",
    "profiles_scanned",
    "joins_found",
)


class MetricsUnavailable(Exception):
    """An endpoint did not answer with metrics (message names the URL, no credentials)."""


Series = list[tuple[dict[str, str], float]]


def fetch(url: str) -> dict[str, Series]:
    """Every sample of one endpoint, by sample name."""
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MetricsUnavailable(f"cannot read metrics from {url}: {reason}") from None
    samples: dict[str, Series] = defaultdict(list)
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[sample.name].append((dict(sample.labels), sample.value))
    except ValueError:
        raise MetricsUnavailable(f"{url} did not answer in the Prometheus text format") from None
    return samples


def _total(samples: dict[str, Series], name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


def _by(samples: dict[str, Series], name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for labels, value in samples.get(name, []):
        out[labels.get(label, "")] += value
    return dict(sorted(out.items()))


@dataclass
class Snapshot:
    """What ``crowd stats`` shows, from one reading of both endpoints."""

    taken_at: float
    events_ingested: float = 0.0
    events_rejected: float = 0.0
    ingest_rate_per_s: float | None = None
    outbox_backlog: float = 0.0
    outbox_oldest_age_s: float = 0.0
    queue_depth: dict[str, float] = field(default_factory=dict)
    queue_oldest_age_s: dict[str, float] = field(default_factory=dict)
    braze_requests: dict[str, float] = field(default_factory=dict)
    dead_letters: dict[str, float] = field(default_factory=dict)
    actions_suppressed: float = 0.0
    backfill: dict[str, float] = field(default_factory=dict)
    """The audience backfill's gauges: running, partitions_done, partitions_total,
    profiles_scanned, joins_found (empty from a server without them)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "events_ingested": self.events_ingested,
            "events_rejected": self.events_rejected,
            "ingest_rate_per_s": self.ingest_rate_per_s,
            "outbox_backlog": self.outbox_backlog,
            "outbox_oldest_age_seconds": self.outbox_oldest_age_s,
            "queue_depth": self.queue_depth,
            "queue_oldest_age_seconds": self.queue_oldest_age_s,
            "braze_requests": self.braze_requests,
            "dead_letters": self.dead_letters,
            "actions_suppressed": self.actions_suppressed,
            "backfill": self.backfill,
        }


#: Gauges every worker reports alike (read from Redis): merged by ``max``, not added up.
_GLOBAL_GAUGES = frozenset(
    {
        "crowd_profile_outbox_backlog_entries",
        "crowd_profile_outbox_oldest_age_seconds",
        "crowd_dispatch_queue_depth",
        "crowd_dispatch_queue_oldest_age_seconds",
        *(f"crowd_profile_backfill_{name}" for name in BACKFILL_GAUGES),
    }
)


def fetch_all(urls: Sequence[str]) -> dict[str, Series]:
    """The samples of several endpoints of one service (its worker processes) merged:
    counters added up, the Redis gauges (the same in every worker) taken once."""
    merged: dict[str, Series] = defaultdict(list)
    for url in urls:
        for name, series in fetch(url).items():
            if name in _GLOBAL_GAUGES and merged[name]:
                known = {frozenset(labels.items()) for labels, _ in merged[name]}
                series = [(lb, v) for lb, v in series if frozenset(lb.items()) not in known]
            merged[name].extend(series)
    return merged


def read_snapshot(profile_urls: Sequence[str], dispatch_urls: Sequence[str]) -> Snapshot:
    """Read every endpoint of both services (one per worker process)."""
    profile = fetch_all(profile_urls)
    dispatch = fetch_all(dispatch_urls)
    return Snapshot(
        taken_at=time.monotonic(),
        events_ingested=_total(profile, "crowd_profile_events_ingested_total"),
        events_rejected=_total(profile, "crowd_profile_events_rejected_total"),
        outbox_backlog=_total(profile, "crowd_profile_outbox_backlog_entries"),
        outbox_oldest_age_s=_total(profile, "crowd_profile_outbox_oldest_age_seconds"),
        queue_depth=_by(dispatch, "crowd_dispatch_queue_depth", "queue"),
        queue_oldest_age_s=_by(dispatch, "crowd_dispatch_queue_oldest_age_seconds", "queue"),
        braze_requests=_by(dispatch, "crowd_dispatch_braze_requests_total", "status_class"),
        dead_letters=_by(dispatch, "crowd_dispatch_dead_letters_total", "kind"),
        actions_suppressed=_total(dispatch, "crowd_dispatch_actions_suppressed_total"),
        backfill={
            name: _total(profile, f"crowd_profile_backfill_{name}")
            for name in BACKFILL_GAUGES
            if f"crowd_profile_backfill_{name}" in profile
        },
    )


def with_rate(current: Snapshot, previous: Snapshot | None) -> Snapshot:
    """``current`` with its ingest rate since ``previous`` (None without a previous reading)."""
    if previous is not None and current.taken_at > previous.taken_at:
        elapsed = current.taken_at - previous.taken_at
        gained = max(0.0, current.events_ingested - previous.events_ingested)
        current.ingest_rate_per_s = round(gained / elapsed, 2)
    return current
