"""The visit-end sweeper: ends visits after inactivity, fires due delayed actions and
completes interrupted stitches.

Every ``interval_s`` (1 s by default) one pipeline reads, for every partition, the visits
whose expiry has passed (``visits_due``) and the delayed actions that are due. The store
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

from profile_service.definitions.model import CompiledDefinitions
from profile_service.metrics import record_visits_ended
from profile_service.storage.background import BackgroundLoop
from profile_service.storage.layout import Clock, system_clock_ms
from profile_service.storage.profile_store import ProfileStore
from profile_service.storage.replies import as_text
from service_common.keys import PartitionKeys
from service_common.redis import REDIS_FAILURES

SWEEP_CHUNK = 32
"""Partitions per sweep pipeline (3 commands each)."""

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
        self._loop = BackgroundLoop("visit-sweeper")
        self.sweeps = 0

    async def sweep_once(self, now_ms: int | None = None) -> SweepReport:
        """Run one sweep at ``now_ms`` (default: the clock)."""
        now = self._clock() if now_ms is None else now_ms
        defs = self._definitions()
        replies: list[Any] = []
        # Pipelines of SWEEP_CHUNK partitions: one of all 256 partitions (768 commands)
        # packed and parsed in one go held the event loop for milliseconds every second.
        for first in range(0, len(self._order), SWEEP_CHUNK):
            async with self._client.pipeline(transaction=False) as pipe:
                for partition in self._order[first : first + SWEEP_CHUNK]:
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
        for n, partition in enumerate(self._order):
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
                report = await self.sweep_once()
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
