"""The profile service's Prometheus metrics (``crowd_profile_*``) and the calls that move them.

Servicers and stores call the small ``record_*`` functions (one line each) so the metric
definitions stay here. Labels are bounded: RPC names, fixed outcomes/reasons, and audience /
action ids from the definitions (folded into ``other`` past a cap, see ``bounded_label``).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily
from redis.asyncio import Redis

from crowd.dispatch.v1 import action_pb2
from crowd.dispatch.v1.dispatch_service_pb2 import SubmitOutcome
from crowd.profile.v1 import event_pb2
from service_common.metrics import RedisGaugeCollector, bounded_label
from service_common.stream_backlog import stream_backlog

EVENTS_INGESTED = Counter(
    "crowd_profile_events_ingested_total",
    "Events applied or found duplicate, by RPC and outcome (accepted, duplicate).",
    ["rpc", "outcome"],
)
EVENTS_REJECTED = Counter(
    "crowd_profile_events_rejected_total",
    "Events or batches refused before processing, by reason.",
    ["reason"],
)
EVALUATION_SECONDS = Histogram(
    "crowd_profile_evaluation_seconds",
    "Time to evaluate and commit a batch of events (enrichments, badges, audiences).",
)
CAS_CONFLICTS = Counter(
    "crowd_profile_cas_conflicts_total",
    "Compare-and-set commits that found the profile changed by someone else.",
)
CAS_RETRIES = Counter(
    "crowd_profile_cas_retries_total", "Commits re-run after a compare-and-set conflict."
)
AUDIENCE_JOINS = Counter(
    "crowd_profile_audience_joins_total", "Visitors joining an audience.", ["audience"]
)
AUDIENCE_LEAVES = Counter(
    "crowd_profile_audience_leaves_total", "Visitors leaving an audience.", ["audience"]
)
ACTIONS_FIRED = Counter(
    "crowd_profile_actions_fired_total", "Connector actions fired by events.", ["action"]
)
ACTIONS_SUPPRESSED = Counter(
    "crowd_profile_actions_suppressed_total",
    "Fired actions the dispatch service suppressed with a frequency cap (cooldown group or"
    " max sends), counted when the outbox hands them over.",
    ["action"],
)
VISITS_ENDED = Counter(
    "crowd_profile_visits_ended_total", "Visits ended by the inactivity sweeper."
)
STITCHES = Counter(
    "crowd_profile_stitches_total", "Profiles merged into another by identity stitching."
)
STITCHES_REFUSED = Counter(
    "crowd_profile_stitches_refused_total",
    "Stitches a guardrail refused (blocked value, value limit, profile limit).",
)
REDIS_SECONDS = Histogram(
    "crowd_profile_redis_command_seconds",
    "Latency of every Redis round trip, by engine step (commit, read) or else command name.",
    ["operation"],
)


def record_results(rpc: str, results: Sequence[event_pb2.EventResult]) -> None:
    """Count one RPC's event results: outcomes, audience moves and fired actions.

    Tallied first and added once per label set: a counter increment takes a lock and a
    label lookup, and a batch of 500 events would otherwise take about 700 of them."""
    duplicates = 0
    joins: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    fired: collections.Counter[str] = collections.Counter()
    for result in results:
        duplicates += result.duplicate
        joins.update(result.audiences_joined)
        leaves.update(result.audiences_left)
        fired.update(action.action_id for action in result.actions_fired)
    if len(results) > duplicates:
        EVENTS_INGESTED.labels(rpc, "accepted").inc(len(results) - duplicates)
    if duplicates:
        EVENTS_INGESTED.labels(rpc, "duplicate").inc(duplicates)
    _add_counts(AUDIENCE_JOINS, "audience", joins)
    _add_counts(AUDIENCE_LEAVES, "audience", leaves)
    _add_counts(ACTIONS_FIRED, "action", fired)


def _add_counts(counter: Counter, kind: str, counts: Mapping[str, int]) -> None:
    """Add ``counts`` (id -> n) to ``counter``, one increment per id (``bounded_label``)."""
    for label, count in counts.items():
        counter.labels(bounded_label(kind, label)).inc(count)


def record_submit_outcomes(
    actions: Sequence[action_pb2.Action], outcomes: Sequence[SubmitOutcome]
) -> None:
    """Count the actions a cap suppressed (first submissions only: a retried hand-over
    gets ``duplicate`` outcomes back and must not count them again)."""
    for action, outcome in zip(actions, outcomes, strict=False):
        if outcome.state == action_pb2.ACTION_STATE_SUPPRESSED and not outcome.duplicate:
            ACTIONS_SUPPRESSED.labels(bounded_label("action", action.action_id)).inc()


def observe_redis(operation: str, seconds: float) -> None:
    """The Redis client's :data:`~service_common.redis_timing.CommandObserver`."""
    REDIS_SECONDS.labels(operation).observe(seconds)


def result_attributes(results: Sequence[event_pb2.EventResult]) -> dict[str, int]:
    """Span attributes of a batch's results: counts only, no ids or personal data."""
    return {
        "crowd.duplicates": sum(1 for r in results if r.duplicate),
        "crowd.audiences_changed": sum(
            len(r.audiences_joined) + len(r.audiences_left) for r in results
        ),
        "crowd.actions_fired": sum(len(r.actions_fired) for r in results),
    }


def record_rejected(reason: str, count: int = 1) -> None:
    """Events refused (``invalid`` for a request with field violations)."""
    EVENTS_REJECTED.labels(reason).inc(count)


def record_conflicts(count: int) -> None:
    """Compare-and-set conflicts of one commit attempt; each profile's commit is retried."""
    if count:
        CAS_CONFLICTS.inc(count)
        CAS_RETRIES.inc(count)


def record_visits_ended(count: int) -> None:
    VISITS_ENDED.inc(count)


def record_stitch(merged_profiles: int = 1) -> None:
    """Called by the identity stitch protocol for each profile merged away."""
    STITCHES.inc(merged_profiles)


def record_stitch_refused() -> None:
    """Called by the identity stitch protocol for each stitch a guardrail refused."""
    STITCHES_REFUSED.inc()


def outbox_gauges(redis: Redis, streams: Sequence[str]) -> RedisGaugeCollector:
    """Outbox backlog (entries not yet forwarded to dispatch) and its oldest entry's age."""

    async def read() -> list[GaugeMetricFamily]:
        # One stream at a time: one pooled connection, never a burst that empties the pool.
        backlogs = [await stream_backlog(redis, s) for s in streams]
        entries = GaugeMetricFamily(
            "crowd_profile_outbox_backlog_entries",
            "Outbox entries not yet handed to the dispatch service.",
        )
        entries.add_metric([], sum(b.entries for b in backlogs))
        age = GaugeMetricFamily(
            "crowd_profile_outbox_oldest_age_seconds",
            "Age of the oldest outbox entry not yet handed over (0 when empty).",
        )
        oldest = [b.oldest_ms for b in backlogs if b.oldest_ms is not None]
        age.add_metric([], max(0.0, time.time() - min(oldest) / 1000) if oldest else 0.0)
        return [entries, age]

    return RedisGaugeCollector(read)


BACKFILL_GAUGES = {
    "backfill_profiles_scanned": "Profiles the current audience backfill has re-evaluated.",
    "backfill_joins_found": "Audience joins the current backfill has committed.",
    "backfill_partitions_done": "Partitions the current backfill has finished.",
    "backfill_partitions_total": "Partitions the current backfill covers (0: none has run).",
    "backfill_running": "1 while an audience backfill is running, else 0.",
}


def backfill_gauges(read: Callable[[], Awaitable[Mapping[str, float]]]) -> RedisGaugeCollector:
    """The audience backfill's progress, read at scrape time: ``read`` returns
    ``BackfillProgress.figures()`` (the numbers ``GetBackfillStatus`` reports)."""

    async def collect() -> list[GaugeMetricFamily]:
        figures = await read()
        families = []
        for name, help_text in BACKFILL_GAUGES.items():
            family = GaugeMetricFamily(f"crowd_profile_{name}", help_text)
            family.add_metric([], figures[name])
            families.append(family)
        return families

    return RedisGaugeCollector(collect)
