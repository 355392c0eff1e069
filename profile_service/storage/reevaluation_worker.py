"""Time-based re-evaluation: audiences whose date-vs-now conditions flip as time passes.

Every commit records, in the partition's ``reevaluate_due`` sorted set, the next instant a
date-vs-now audience condition can change for the profile (`time_dependence`). This worker,
beside the visit sweeper, reads the due entries of the partitions that may have some (its
background loop skips partitions whose earliest entry is known to be later, see
`DueHints`; a flip written by a later commit is seen within ``IDLE_POLLS`` intervals) and
re-evaluates those profiles' time-dependent audiences through the compare-and-set commit;
joins and leaves fire JOINED / LEFT actions like an event's (key
``{profile}:{action}:time:{now ms}``). Each entry is then set to the profile's next flip,
or removed, against the committed version.
Several replicas may run it: a transition commits exactly once (the loser re-reads and finds
nothing to change).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import redis.asyncio

from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.time_dependence import time_dependent_audiences
from profile_service.storage.background import BackgroundLoop
from profile_service.storage.due_hints import NEVER, DueHints
from profile_service.storage.layout import Clock, system_clock_ms
from profile_service.storage.profile_store import ProfileStore
from profile_service.storage.reevaluations import ReevaluationReport
from profile_service.storage.replies import as_text
from service_common.keys import PartitionKeys
from service_common.redis import REDIS_FAILURES

IDLE_POLLS = 10
"""A partition is polled at least every this many intervals (see `DueHints`)."""

__all__ = ["ReevaluationWorker"]

logger = logging.getLogger(__name__)


class ReevaluationWorker:
    """Periodically re-evaluates profiles whose time-dependent audiences may have flipped.

    Args:
        client: The Redis client.
        store: Commits the re-evaluations.
        definitions: Returns the current compiled definitions.
        interval_s: Pause between passes when there is no backlog.
        batch_limit: Most due profiles taken per partition per pass.
        clock: Epoch-milliseconds clock (tests inject one to let days pass).
        idle_poll_s: Longest pause between two polls of a partition with nothing known to
            be due (default: ``IDLE_POLLS`` intervals).
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
        idle_poll_s: float | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._definitions = definitions
        self._interval_s = interval_s
        self._batch_limit = batch_limit
        self._clock = clock
        self._order = list(range(store.layout.partitions))
        random.shuffle(self._order)
        idle_s = interval_s * IDLE_POLLS if idle_poll_s is None else idle_poll_s
        self._hints = DueHints(self._order, int(idle_s * 1000))
        self._loop = BackgroundLoop("time-reevaluation")

    async def run_once(self, now_ms: int | None = None) -> tuple[ReevaluationReport, bool]:
        """One pass over every partition at ``now_ms`` (default: the clock); returns the
        report and whether some partition had more due profiles than one pass takes."""
        now = self._clock() if now_ms is None else now_ms
        return await self._pass(self._order, now)

    async def run_due(self, now_ms: int | None = None) -> tuple[ReevaluationReport, bool]:
        """`run_once` over the partitions whose hints say something may be due (what the
        background loop does): the earliest entry of each, then a pass where one is due."""
        now = self._clock() if now_ms is None else now_ms
        polled = self._hints.due(now)
        async with self._client.pipeline(transaction=False) as pipe:
            for partition in polled:
                pipe.zrange(PartitionKeys(partition).reevaluate_due, 0, 0, withscores=True)
            replies = await pipe.execute()
        earliest = [float(reply[0][1]) if reply else NEVER for reply in replies]
        # A flip can be due at any time after a commit: no bound on new entries but the idle poll.
        due = self._hints.settle(polled, earliest, now, NEVER)
        if not due:
            return ReevaluationReport(), False
        return await self._pass(due, now)

    async def _pass(self, partitions: list[int], now: int) -> tuple[ReevaluationReport, bool]:
        async with self._client.pipeline(transaction=False) as pipe:
            for partition in partitions:
                due_key = PartitionKeys(partition).reevaluate_due
                pipe.zrangebyscore(due_key, "-inf", now, start=0, num=self._batch_limit)
            replies = await pipe.execute()
        due = [as_text(m) for reply in replies for m in reply]
        more = any(len(reply) >= self._batch_limit for reply in replies)
        if not due:
            return ReevaluationReport(), more
        defs = self._definitions()
        report = await self._store.reevaluate_profiles(
            defs,
            due,
            now,
            cause=f"time:{now}",
            audience_ids=time_dependent_audiences(defs),
            fix_due=True,
        )
        return report, more

    async def run(self) -> None:
        """Re-evaluate until `stop`; failures are logged and retried next interval."""
        while not self._loop.stopping:
            more = False
            try:
                _, more = await self.run_due()
            except REDIS_FAILURES as exc:
                logger.warning("time-based re-evaluation failed (%s)", type(exc).__name__)
            except Exception:
                logger.exception("time-based re-evaluation failed")
            if not more:
                await self._loop.pause(self._interval_s)

    def start(self) -> None:
        """Start in a background task."""
        self._loop.start(self.run)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop after the current pass."""
        await self._loop.stop(grace_s)
