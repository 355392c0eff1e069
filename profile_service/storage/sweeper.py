"""The visit-end sweeper: ends visits after inactivity, fires due delayed actions and
completes interrupted stitches.

Every ``interval_s`` (1 s by default) the sweeper reads, for the partitions whose `DueHints`
say something may be due, the visits whose expiry has passed (``visits_due``) and the
delayed actions that are due (first the earliest entry of each index, then, where one is
due, the due entries). Idle partitions are not polled at every interval. The store
then ends those visits (visit-ended enrichments, audience re-evaluation, end-of-visit
triggers, all in the engine's ``end_visit``) and moves the delayed actions that still apply
to the outbox. No event has to arrive for any of this.

Several replicas may sweep at once. Each visit end is a compare-and-set on the profile, so
it is committed exactly once; a delayed action is claimed by one atomic ZREM. The losers
only did some wasted computation. Partitions are visited in a per-replica random order so
that replicas mostly work on different profiles when there is a backlog.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio
import redis.exceptions

from profile_service.definitions.model import (
    DEFAULT_PLATFORM_VISIT_TIMEOUTS_MS,
    CompiledDefinitions,
)
from profile_service.metrics import record_visits_ended
from profile_service.storage.background import BackgroundLoop
from profile_service.storage.due_hints import NEVER, DueHints
from profile_service.storage.layout import Clock, system_clock_ms
from profile_service.storage.profile_store import ProfileStore
from profile_service.storage.replies import as_text
from service_common.keys import PartitionKeys
from service_common.redis import REDIS_FAILURES

SWEEP_CHUNK = 32
"""Partitions per sweep pipeline (3 commands each)."""

IDLE_POLLS = 10
"""A partition is polled at least every this many intervals (see `DueHints`)."""

__all__ = ["SweepReport", "VisitSweeper"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    visits_ended: int = 0
    delayed_fired: int = 0
    delayed_dropped: int = 0
    more: bool = False
    """Some partition had more due items than one sweep takes (sweep again at once)."""


class VisitSweeper:
    """Periodically ends due visits and fires due delayed actions.

    Args:
        client: The Redis client.
        store: The profile store that commits the visit ends.
        definitions: Returns the current compiled definitions (e.g. the watcher's).
        interval_s: Pause between sweeps when there is no backlog.
        batch_limit: Most due visits (and, separately, delayed actions) taken per partition
            per sweep.
        clock: Epoch-milliseconds clock.
        stitch_grace_ms: A stitch still pending this long after it started was interrupted
            (its process died between steps): the sweeper completes it.
        idle_poll_s: Longest pause between two polls of a partition with nothing known to
            be due (default: ``IDLE_POLLS`` intervals); see `DueHints`.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        store: ProfileStore,
        definitions: Callable[[], CompiledDefinitions],
        *,
        interval_s: float = 1.0,
        batch_limit: int = 100,
        clock: Clock = system_clock_ms,
        stitch_grace_ms: int = 30_000,
        idle_poll_s: float | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._definitions = definitions
        self._interval_s = interval_s
        self._batch_limit = batch_limit
        self._clock = clock
        self._stitch_grace_ms = stitch_grace_ms
        self._order = list(range(store.layout.partitions))
        random.shuffle(self._order)
        idle_s = interval_s * IDLE_POLLS if idle_poll_s is None else idle_poll_s
        self._hints = DueHints(self._order, int(idle_s * 1000))
        self._hinted_version: str | None = None
        self._loop = BackgroundLoop("visit-sweeper")
        self.sweeps = 0

    async def sweep_once(self, now_ms: int | None = None) -> SweepReport:
        """Run one sweep of every partition at ``now_ms`` (default: the clock)."""
        now = self._clock() if now_ms is None else now_ms
        return await self._sweep(self._definitions(), self._order, now)

    async def sweep_due(self, now_ms: int | None = None) -> SweepReport:
        """Run one sweep of the partitions whose hints say something may be due (what the
        background loop does): one pipelined read of each index's earliest entry, then a
        sweep of the partitions where one is due."""
        now = self._clock() if now_ms is None else now_ms
        defs = self._definitions()
        if defs.version != self._hinted_version:  # the bounds on new entries changed
            self._hints.reset()
            self._hinted_version = defs.version
        polled = self._hints.due(now)
        earliest = await self._earliest(polled)
        gap = _new_entry_gap_ms(defs, self._stitch_grace_ms)
        firsts = [
            min(visit, delayed, stitch + self._stitch_grace_ms)
            for visit, delayed, stitch in earliest
        ]
        due = self._hints.settle(polled, firsts, now, gap)
        if not due:
            self.sweeps += 1
            return SweepReport()
        return await self._sweep(defs, due, now)

    async def _earliest(self, partitions: list[int]) -> list[tuple[float, float, float]]:
        """Per partition: the scores of the earliest visit expiry, delayed action and
        pending stitch (`NEVER` for an empty index)."""
        replies: list[Any] = []
        for first in range(0, len(partitions), SWEEP_CHUNK):
            async with self._client.pipeline(transaction=False) as pipe:
                for partition in partitions[first : first + SWEEP_CHUNK]:
                    pkeys = PartitionKeys(partition)
                    for key in (pkeys.visits_due, pkeys.delayed, pkeys.stitches):
                        pipe.zrange(key, 0, 0, withscores=True)
                replies += await pipe.execute()
            self._store.stats.round_trips += 1
        scores = [float(reply[0][1]) if reply else NEVER for reply in replies]
        return [
            (scores[3 * n], scores[3 * n + 1], scores[3 * n + 2]) for n in range(len(partitions))
        ]

    async def _sweep(
        self, defs: CompiledDefinitions, partitions: list[int], now: int
    ) -> SweepReport:
        """Sweep ``partitions`` at ``now``."""
        replies: list[Any] = []
        # Pipelines of SWEEP_CHUNK partitions: one of all 256 partitions (768 commands)
        # packed and parsed in one go held the event loop for milliseconds every second.
        for first in range(0, len(partitions), SWEEP_CHUNK):
            async with self._client.pipeline(transaction=False) as pipe:
                for partition in partitions[first : first + SWEEP_CHUNK]:
                    pkeys = PartitionKeys(partition)
                    pipe.zrangebyscore(
                        pkeys.visits_due, "-inf", now, start=0, num=self._batch_limit
                    )
                    pipe.zrangebyscore(pkeys.delayed, "-inf", now, start=0, num=self._batch_limit)
                    pipe.zrangebyscore(
                        pkeys.stitches, "-inf", now - self._stitch_grace_ms, start=0, num=10
                    )
                replies += await pipe.execute()
            self._store.stats.round_trips += 1

        due_profiles: list[str] = []
        due_delayed: list[tuple[int, str]] = []
        more = False
        stalled: list[tuple[int, str]] = []
        for n, partition in enumerate(partitions):
            visits, delayed, stitches = replies[3 * n], replies[3 * n + 1], replies[3 * n + 2]
            stalled += [(partition, as_text(m)) for m in stitches]
            due_profiles += [as_text(m) for m in visits]
            due_delayed += [(partition, as_text(m)) for m in delayed]
            more = more or len(visits) >= self._batch_limit or len(delayed) >= self._batch_limit

        ended: list[str] = []
        if due_profiles:
            ended = await self._store.end_due_visits(defs, due_profiles, now)
            record_visits_ended(len(ended))
        delayed_report = await self._store.fire_due_delayed(defs, due_delayed, now)
        if stalled:
            await self._store.recover_stitches(defs, stalled, now)
        self.sweeps += 1
        return SweepReport(
            visits_ended=len(ended),
            delayed_fired=delayed_report.fired,
            delayed_dropped=delayed_report.dropped,
            more=more,
        )

    async def run(self) -> None:
        """Sweep until `stop`; failures are logged and retried next interval."""
        while not self._loop.stopping:
            try:
                report = await self.sweep_due()
            except REDIS_FAILURES as exc:
                logger.warning("visit sweep failed (%s); retrying", type(exc).__name__)
                report = SweepReport()
            except Exception:
                logger.exception("visit sweep failed")
                report = SweepReport()
            if not report.more:
                await self._loop.pause(self._interval_s)

    def start(self) -> None:
        """Start sweeping in a background task."""
        self._loop.start(self.run)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop after the current sweep (cancelled after ``grace_s``; its compare-and-set
        writes keep even an interrupted sweep safe)."""
        await self._loop.stop(grace_s)


def _new_entry_gap_ms(defs: CompiledDefinitions, stitch_grace_ms: int) -> float:
    """How far in the future, at least, an entry written from now on is due (for live
    events): a new visit's expiry (its timeout, or the longest visit length), a delayed
    action's delay, a pending stitch's recovery grace."""
    limits = defs.limits
    gaps = [
        limits.visit_timeout_ms,
        limits.max_visit_length_ms,
        stitch_grace_ms,
        *limits.platform_visit_timeout_ms.values(),
        *DEFAULT_PLATFORM_VISIT_TIMEOUTS_MS.values(),
    ]
    for action in defs.actions.values():
        delay_ms = action.delay.seconds * 1000 + action.delay.nanos // 1_000_000
        if delay_ms > 0:  # no delay: straight to the outbox, not to the delayed index
            gaps.append(delay_ms)
    return float(min(gaps))
