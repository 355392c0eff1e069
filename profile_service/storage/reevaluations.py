"""Re-evaluating stored profiles without an event (backfills, time-based re-evaluation).

Each profile goes through the same compare-and-set commit as an event (audience sets, trace
entry, outbox, ``reevaluate_due`` entry), so a concurrent event is never lost: a commit that
loses re-reads the profile and re-evaluates it. A profile whose memberships already match
writes nothing, which makes redoing a profile (a backfill resumed after a crash, two
replicas on one due entry) a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.reevaluation import reevaluate_audiences
from profile_service.engine.time_dependence import next_flip_ms
from profile_service.storage.commit import ProfileWrite, build_write
from profile_service.storage.cooperative import let_others_run
from profile_service.storage.profile_rewrites import DueFix, ProfileRewrites
from service_common.redis_toolkit.retry import CAS_CONFLICT

__all__ = ["ReevaluationReport", "Reevaluations"]

logger = logging.getLogger(__name__)

RETRY_LATER_MS = 60_000
"""A profile the engine fails on is looked at again this much later."""


@dataclass
class ReevaluationReport:
    """What re-evaluating some profiles committed."""

    evaluated: int = 0
    joins: int = 0
    leaves: int = 0
    actions: int = 0
    changed: list[str] = field(default_factory=list)


class Reevaluations(ProfileRewrites):
    """Re-evaluates audiences of stored profiles (part of `ProfileStore`)."""

    async def reevaluate_profiles(
        self,
        defs: CompiledDefinitions,
        profile_ids: Sequence[str],
        now_ms: int,
        *,
        cause: str,
        audience_ids: Collection[str] | None = None,
        fires_actions: Callable[[str], bool] = lambda _audience_id: True,
        fix_due: bool = False,
    ) -> ReevaluationReport:
        """Re-evaluate ``audience_ids`` (default: all) of ``profile_ids`` at ``now_ms``.

        ``fix_due``: also set each profile's ``reevaluate_due`` entry to its next flip (or
        remove it), against the version committed or read (the time-based worker's case).
        Gone profiles are skipped. Profiles that keep conflicting are logged and left (the
        caller's next pass sees them again).
        """
        report = ReevaluationReport()
        pending = sorted(set(profile_ids))
        async with self._locks.hold(pending):
            for attempt in range(1, self._max_attempts + 1):
                if not pending:
                    break
                if attempt > 1:
                    await asyncio.sleep(CAS_CONFLICT.delay(attempt - 1))
                pending = await self._reevaluate_attempt(
                    defs, pending, now_ms, cause, audience_ids, fires_actions, fix_due, report
                )
            else:
                if pending:
                    logger.warning(
                        "%d re-evaluations kept conflicting; retried later", len(pending)
                    )
        return report

    async def _reevaluate_attempt(
        self,
        defs: CompiledDefinitions,
        pending: list[str],
        now_ms: int,
        cause: str,
        audience_ids: Collection[str] | None,
        fires_actions: Callable[[str], bool],
        fix_due: bool,
        report: ReevaluationReport,
    ) -> list[str]:
        loaded = await self._read_profiles(pending)
        writes: list[tuple[ProfileWrite, int, int]] = []  # write, joins, leaves
        fixes: list[DueFix] = []
        for n, (profile_id, (state, version, _)) in enumerate(zip(pending, loaded, strict=True)):
            await let_others_run(n)
            if state is None:
                if fix_due:
                    fixes.append(DueFix(profile_id, version, None))
                continue
            report.evaluated += 1
            initial_audiences = list(state.audiences)
            try:
                outcome = reevaluate_audiences(
                    defs,
                    state,
                    now_ms,
                    cause=cause,
                    audience_ids=audience_ids,
                    fires_actions=fires_actions,
                )
            except Exception:
                logger.exception("re-evaluating profile %s failed", profile_id)
                if fix_due:
                    fixes.append(DueFix(profile_id, version, now_ms + RETRY_LATER_MS))
                continue
            if not outcome.audiences_joined and not outcome.audiences_left:
                if fix_due:
                    fixes.append(
                        DueFix(profile_id, version, next_flip_ms(defs, outcome.state, now_ms))
                    )
                continue
            write = build_write(
                layout=self._layout,
                defs=defs,
                profile_id=profile_id,
                expected_version=version,
                initial_audiences=initial_audiences,
                final=outcome.state,
                steps=[(None, outcome)],
                now_ms=now_ms,
                trace=self._trace_history.choice(profile_id, None),
                trace_history=self._trace_history,
            )
            writes.append((write, len(outcome.audiences_joined), len(outcome.audiences_left)))
            if fix_due:
                due = next_flip_ms(defs, outcome.state, now_ms)
                fixes.append(DueFix(profile_id, write.new_version, due))
        committed = await self._commit_rewrites(
            [write for write, _, _ in writes], fixes, lambda k: k.reevaluate_due
        )
        retry: list[str] = []
        for (write, joins, leaves), done in zip(writes, committed, strict=True):
            if done:
                report.joins += joins
                report.leaves += leaves
                report.actions += write.outbox_entries
                report.changed.append(write.profile_id)
            else:
                self.stats.conflicts += 1
                retry.append(write.profile_id)
        return sorted(retry)
