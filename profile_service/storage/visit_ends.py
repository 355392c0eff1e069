"""Visit ends for the sweeper: each due visit ends in exactly one committed compare-and-set."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from profile_service.definitions.model import CompiledDefinitions
from profile_service.storage.commit import ProfileWrite, build_write
from profile_service.storage.cooperative import let_others_run
from profile_service.storage.lua import is_noscript
from profile_service.storage.store_core import (
    FIX_VISIT_DUE_SCRIPT,
    StoreCore,
    parse_profile,
    raise_errors,
)
from service_common.redis_toolkit.retry import CAS_CONFLICT

__all__ = ["ENGINE_FAILURE_RETRY_MS", "VisitEnds"]

logger = logging.getLogger(__name__)

ENGINE_FAILURE_RETRY_MS = 60_000
"""When the engine fails to end a visit, the sweeper tries again this much later."""


class VisitEnds(StoreCore):
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
        async with self._client.pipeline(transaction=False) as pipe:
            for profile_id in pending:
                pipe.hmget(self._layout.keys_for(profile_id).profile(profile_id), ["s", "v"])
            replies = await self._execute(pipe)
        raise_errors(replies)

        writes: list[ProfileWrite] = []
        fixes: list[tuple[str, str, str]] = []  # (profile id, version, due or "")
        for n, (profile_id, reply) in enumerate(zip(pending, replies, strict=True)):
            await let_others_run(n)
            state, version = parse_profile(reply)
            if state is None or state.visit is None:
                fixes.append((profile_id, version, ""))
                continue
            due = state.visit.expires_ms(defs.limits.max_visit_length_ms)
            if due > now_ms:
                fixes.append((profile_id, version, str(due)))
                continue
            initial_audiences = list(state.audiences)
            try:
                outcome = self._engine.end_visit(defs, state, now_ms)
            except Exception:
                # One profile the engine cannot handle must not stall every visit end:
                # log it and look at it again later.
                logger.exception("ending the visit of profile %s failed", profile_id)
                fixes.append((profile_id, version, str(now_ms + ENGINE_FAILURE_RETRY_MS)))
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
                    new_event_ids=[],
                    now_ms=now_ms,
                    dedup_max_entries=self._dedup_max_entries,
                    trace=self._trace_history.choice(profile_id, None),
                    trace_history=self._trace_history,
                )
            )
        if not writes and not fixes:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            positions = []
            at = 0
            for write in writes:
                positions.append(at)
                at += write.queue(pipe)
            for profile_id, version, due_at in fixes:
                pkeys = self._layout.keys_for(profile_id)
                FIX_VISIT_DUE_SCRIPT.queue(
                    pipe,
                    [pkeys.profile(profile_id), pkeys.visits_due],
                    [version, profile_id, due_at],
                )
            replies = await self._execute(pipe)
        retry: list[str] = []
        outbox_written = False
        for write, position in zip(writes, positions, strict=True):
            reply = replies[position]
            if isinstance(reply, Exception) and not is_noscript(reply):
                raise reply
            if reply == 1:
                ended.append(write.profile_id)
                outbox_written = outbox_written or write.outbox_entries > 0
            else:
                self.stats.conflicts += 1
                retry.append(write.profile_id)
        # A fix that lost its compare-and-set needs nothing: the commit that beat it wrote a
        # correct visits_due entry. NOSCRIPT fixes are redone by the next sweep.
        raise_errors(replies[at:])
        if outbox_written and self._on_outbox_write is not None:
            self._on_outbox_write()
        return sorted(retry)
