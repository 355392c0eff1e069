"""Visit ends for the sweeper: each due visit ends in exactly one committed compare-and-set."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from profile_service.definitions.model import CompiledDefinitions
from profile_service.storage.commit import ProfileWrite, build_write
from profile_service.storage.cooperative import let_others_run
from profile_service.storage.profile_rewrites import DueFix, ProfileRewrites
from profile_service.storage.trace_history import TraceWrite
from service_common.redis_toolkit.retry import CAS_CONFLICT

__all__ = ["ENGINE_FAILURE_RETRY_MS", "VisitEnds"]

logger = logging.getLogger(__name__)

ENGINE_FAILURE_RETRY_MS = 60_000
"""When the engine fails to end a visit, the sweeper tries again this much later."""


class VisitEnds(ProfileRewrites):
    """Ends due visits (part of `ProfileStore`)."""

    async def end_due_visits(
        self, defs: CompiledDefinitions, profile_ids: Sequence[str], now_ms: int
    ) -> list[str]:
        """End the visits of ``profile_ids`` that are due at ``now_ms``; return those ended.

        Safe with several sweepers: each visit ends in exactly one committed
        compare-and-set; a sweeper that loses re-reads and finds no due visit. Entries of
        ``visits_due`` that no longer match their profile are corrected.
        """
        ended: list[str] = []
        pending = sorted(set(profile_ids))
        async with self._locks.hold(pending):
            for attempt in range(1, self._max_attempts + 1):
                if not pending:
                    break
                if attempt > 1:
                    await asyncio.sleep(CAS_CONFLICT.delay(attempt - 1))
                pending = await self._end_visits_attempt(defs, pending, now_ms, ended)
            else:
                if pending:
                    logger.warning("%d visit ends kept conflicting; next sweep", len(pending))
        self.stats.visits_ended += len(ended)
        return ended

    async def _end_visits_attempt(
        self, defs: CompiledDefinitions, pending: list[str], now_ms: int, ended: list[str]
    ) -> list[str]:
        writes: list[ProfileWrite] = []
        fixes: list[DueFix] = []
        # The tracing marker is read with the profile: most visitors are neither sampled nor
        # followed, and their visit ends then build no trace records (as for events).
        loaded = await self._read_profiles(pending, tracing=True)
        for n, (profile_id, (state, version, followed)) in enumerate(
            zip(pending, loaded, strict=True)
        ):
            await let_others_run(n)
            if state is None or state.visit is None:
                fixes.append(DueFix(profile_id, version, None))
                continue
            due = state.visit.expires_ms(defs.limits.max_visit_length_ms)
            if due > now_ms:
                fixes.append(DueFix(profile_id, version, due))
                continue
            initial_audiences = list(state.audiences)
            trace = self._trace_history.choice(profile_id, followed)
            try:
                outcome = self._engine.end_visit(
                    defs, state, now_ms, trace=trace is not TraceWrite.SKIP
                )
            except Exception:
                # One profile the engine cannot handle must not stall every visit end:
                # log it and look at it again later.
                logger.exception("ending the visit of profile %s failed", profile_id)
                fixes.append(DueFix(profile_id, version, now_ms + ENGINE_FAILURE_RETRY_MS))
                continue
            writes.append(
                build_write(
                    layout=self._layout,
                    defs=defs,
                    profile_id=profile_id,
                    expected_version=version,
                    initial_audiences=initial_audiences,
                    final=outcome.state,
                    steps=[(None, outcome)],
                    now_ms=now_ms,
                    trace=trace,
                    trace_history=self._trace_history,
                )
            )
        committed = await self._commit_rewrites(writes, fixes, lambda k: k.visits_due)
        retry: list[str] = []
        for write, done in zip(writes, committed, strict=True):
            if done:
                ended.append(write.profile_id)
            else:
                self.stats.conflicts += 1
                retry.append(write.profile_id)
        return sorted(retry)
