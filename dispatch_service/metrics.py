"""The dispatch service's Prometheus metrics (``crowd_dispatch_*``) and the calls that move them.

Labels are bounded: Braze endpoint paths (a fixed enum), status classes (``2xx``, ``4xx``,
``429``, ``5xx``, ``error``), delivery results (a fixed set), dead-letter kinds, action ids
(from definitions, folded into ``other`` past a cap) and Redis operations.
Queue depth and age are read from Redis at scrape time (:func:`queue_gauges`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily
from redis.asyncio import Redis

from service_common.metrics import RedisGaugeCollector, bounded_label
from service_common.stream_backlog import stream_backlog

BRAZE_REQUESTS = Counter(
    "crowd_dispatch_braze_requests_total",
    "HTTP requests to Braze by endpoint and status class (2xx, 4xx, 429, 5xx, error).",
    ["endpoint", "status_class"],
)
BRAZE_RATE_LIMITED = Counter(
    "crowd_dispatch_braze_429_total", "Braze answers 429 Too Many Requests.", ["endpoint"]
)
RATE_LIMIT_WAITS = Counter(
    "crowd_dispatch_rate_limit_waits_total",
    "Requests that waited for the shared rate limit (or were throttled: not sent).",
    ["endpoint", "outcome"],
)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "crowd_dispatch_rate_limit_wait_seconds", "Time a request waited for a rate-limit slot."
)
BATCH_OBJECTS = Histogram(
    "crowd_dispatch_batch_objects",
    "Objects carried per Braze request.",
    ["endpoint"],
    buckets=(1, 2, 5, 10, 25, 50, 75, 100, 250, 500, 1000),
)
BATCH_FILL_RATIO = Histogram(
    "crowd_dispatch_batch_fill_ratio",
    "Objects per request divided by the endpoint's per-request limit.",
    ["endpoint"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0),
)
DELIVERY_SECONDS = Histogram(
    "crowd_dispatch_delivery_seconds",
    "From the action's submission (its fire time) to Braze accepting it.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
RESULTS = Counter(
    "crowd_dispatch_action_results_total",
    "Recorded delivery results of actions (delivered, skipped, retry, failed, drop).",
    ["result"],
)
RETRIES = Counter("crowd_dispatch_retries_total", "Action deliveries scheduled for a retry.")
DEAD_LETTERS = Counter(
    "crowd_dispatch_dead_letters_total",
    "Actions or cohort changes given up on (moved to the dead letters).",
    ["kind"],
)
ACTIONS_SUPPRESSED = Counter(
    "crowd_dispatch_actions_suppressed_total",
    "Submitted actions a frequency cap suppressed (not queued), by action id.",
    ["action"],
)
REDIS_SECONDS = Histogram(
    "crowd_dispatch_redis_command_seconds",
    "Latency of every Redis round trip, by step or else command name.",
    ["operation"],
)
DATA_POINTS_SAVED = Counter(
    "crowd_dispatch_data_points_saved_total",
    "Attribute writes not sent because Braze already holds the value (deltas).",
)


def status_class(status: int) -> str:
    if status == 429:
        return "429"
    if 100 <= status < 600:
        return f"{status // 100}xx"
    return "error"


def record_braze_response(endpoint: str, status: int, objects: int, limit: int | None) -> None:
    """One answered Braze request (``status`` 0: no answer, counted as ``error``)."""
    BRAZE_REQUESTS.labels(endpoint, status_class(status)).inc()
    if status == 429:
        BRAZE_RATE_LIMITED.labels(endpoint).inc()
    BATCH_OBJECTS.labels(endpoint).observe(objects)
    if limit:
        BATCH_FILL_RATIO.labels(endpoint).observe(objects / limit)


def record_rate_limit(endpoint: str, waited_s: float | None) -> None:
    """A rate-limit slot taken after ``waited_s`` (None: throttled, the request not sent)."""
    if waited_s is None:
        RATE_LIMIT_WAITS.labels(endpoint, "throttled").inc()
        return
    RATE_LIMIT_WAIT_SECONDS.observe(waited_s)
    if waited_s > 0.001:
        RATE_LIMIT_WAITS.labels(endpoint, "waited").inc()


def record_delivered(fired_at_ms: int) -> None:
    if fired_at_ms > 0:
        DELIVERY_SECONDS.observe(max(0.0, time.time() - fired_at_ms / 1000))


def record_results(results: Sequence[str]) -> None:
    """Recorded completions: results, retries and action dead letters."""
    for result in results:
        RESULTS.labels(result).inc()
        if result == "retry":
            RETRIES.inc()
        elif result == "failed":
            DEAD_LETTERS.labels("action").inc()


def record_suppressed(action_ids: Sequence[str]) -> None:
    """Actions a cap suppressed at intake (first submissions only, not duplicates)."""
    for action_id in action_ids:
        ACTIONS_SUPPRESSED.labels(bounded_label("action", action_id or "unnamed")).inc()


def observe_redis(operation: str, seconds: float) -> None:
    """The Redis client's :data:`~service_common.redis_timing.CommandObserver`."""
    REDIS_SECONDS.labels(operation).observe(seconds)


def record_cohort_dead_letters(count: int) -> None:
    DEAD_LETTERS.labels("cohort").inc(count)


def record_data_points_saved(count: int) -> None:
    if count > 0:
        DATA_POINTS_SAVED.inc(count)


def queue_gauges(redis: Redis, queues: Mapping[str, Sequence[str]]) -> RedisGaugeCollector:
    """Depth and oldest age of each queue: name -> its partition streams."""

    async def read() -> list[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "crowd_dispatch_queue_depth", "Entries waiting or in delivery.", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "crowd_dispatch_queue_oldest_age_seconds",
            "Age of the oldest entry not yet done (0 when empty).",
            labels=["queue"],
        )
        now = time.time()
        for name, streams in queues.items():
            # One stream at a time: one pooled connection, never a burst that empties the pool.
            backlogs = [await stream_backlog(redis, s) for s in streams]
            depth.add_metric([name], sum(b.entries for b in backlogs))
            oldest = [b.oldest_ms for b in backlogs if b.oldest_ms is not None]
            age.add_metric([name], max(0.0, now - min(oldest) / 1000) if oldest else 0.0)
        return [depth, age]

    return RedisGaugeCollector(read)


def record_deliveries(fired_at_ms: dict[str, int], outcomes: dict[str, str]) -> None:
    """Submit -> Braze latency of the actions of one request that Braze accepted."""
    for key, outcome in outcomes.items():
        if outcome == "delivered":
            record_delivered(fired_at_ms.get(key, 0))
