"""Atomic, batched application of events (and visit ends) to visitor profiles in Redis.

One batch costs a small constant number of round trips, whatever its size:

1. **Read** (one pipeline): for every visitor id of the batch its alias, its profile
   (state + version token) and the event ids it saw recently (one
   ``read_visitor.lua`` call per partition). Visitor ids that
   turn out to be aliases of another profile cost one more pipeline (1b) to read the
   survivors.
2. **Compute** in Python: the engine runs over each profile's events in batch order.
3. **Write** (one pipeline): one compare-and-set script call per partition
   (``commit_profile.lua``) that writes, for each of its profiles, the state, the recent
   event ids (`recent_ids`), the visit-expiry index, audience sets, outbox, delayed actions
   and trace entries only if the profile's version token is still the one read.
4. Only if some event carried a live-trace id: one pipeline appending to those streams.

A profile whose version changed in between (another replica wrote it) is re-read and
recomputed, alone, and written again; conflicts are rare, and a bounded number of attempts
is allowed (`ProfileConflictError` after that). Inside one process, batches touching the
same visitor wait for each other (`KeyedLocks`) instead of racing.

Atomicity is per profile: the profiles of a batch commit independently. A batch that fails
half-way (conflicts exhausted, Redis gone) can be retried as a whole: committed events are
then recognised as duplicates by their event ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import NormalizedEvent, ProfileState
from profile_service.metrics import record_conflicts
from profile_service.storage.batch_reads import BatchReads, Loaded
from profile_service.storage.commit import ProfileWrite, Step, build_write
from profile_service.storage.cooperative import let_others_run
from profile_service.storage.delayed_actions import DelayedActions
from profile_service.storage.recent_ids import RecentIds
from profile_service.storage.reevaluations import Reevaluations
from profile_service.storage.stitches import Stitches
from profile_service.storage.store_core import (
    FIX_VISIT_DUE_SCRIPT,
    MOVE_DELAYED_SCRIPT,
    READ_VISITOR_SCRIPT,
    DelayedReport,
    EventApplyResult,
    ProfileConflictError,
    StoreStats,
)
from profile_service.storage.trace_history import TraceWrite
from profile_service.storage.visit_ends import ENGINE_FAILURE_RETRY_MS, VisitEnds
from service_common import keys
from service_common.redis_toolkit.retry import CAS_CONFLICT
from service_common.step_spans import redis_span, step_span
from service_common.trace_entries import TRACE_MAXLEN, TRACE_TTL_MS

__all__ = [
    "ENGINE_FAILURE_RETRY_MS",
    "FIX_VISIT_DUE_SCRIPT",
    "MOVE_DELAYED_SCRIPT",
    "READ_VISITOR_SCRIPT",
    "DelayedReport",
    "EventApplyResult",
    "ProfileConflictError",
    "ProfileStore",
    "StoreStats",
]

logger = logging.getLogger(__name__)


@dataclass
class _Plan:
    """One profile's computed work within an attempt."""

    indexes: list[int]
    results: dict[int, EventApplyResult]
    write: ProfileWrite | None
    state: ProfileState | None = None
    """The profile after its events (what ``write`` commits)."""
    claims: bool = False
    """Its visitor-ID values must be claimed: one is new, or the batch repeats events (a
    retry after a failure mid-stitch re-drives the stitch)."""
    frozen: tuple[str, ...] = ()
    """Profiles frozen into this one whose stitch may be unfinished (`Loaded.frozen`)."""


class ProfileStore(BatchReads, VisitEnds, DelayedActions, Stitches, Reevaluations):
    """Applies events, visit ends and due delayed actions to profiles, atomically per profile.

    The jobs live in their own modules: reading a batch (`batch_reads`), ending visits
    (`visit_ends`), firing delayed actions (`delayed_actions`), stitching profiles that
    share a visitor-ID value (`stitches`), on a shared core
    (`store_core`: constructor, scripts, pipeline runner). This module plans, computes and
    commits event batches.
    """

    # --- events ------------------------------------------------------------------------

    async def apply_events(
        self,
        defs: CompiledDefinitions,
        events: Sequence[NormalizedEvent],
        now_ms: int | None = None,
    ) -> list[EventApplyResult]:
        """Apply a batch of events, in order per visitor; return one result per event.

        ``defs`` is the definitions snapshot for the whole batch (callers take it once per
        batch, so no event sees half of two versions).

        Raises:
            ProfileConflictError: Some profiles could not be committed in ``max_attempts``.
            redis.exceptions.RedisError: Redis failed; profiles already committed stay so.
        """
        now = self._clock() if now_ms is None else now_ms
        results: list[EventApplyResult | None] = [None] * len(events)
        committed: list[ProfileWrite] = []
        finals: dict[str, tuple[ProfileState, list[int]]] = {}
        frozen: set[str] = set()
        self.stats.batches += 1
        async with self._locks.hold(e.visitor_id for e in events):
            pending = list(range(len(events)))
            attempt = 0
            while pending:
                attempt += 1
                if attempt > self._max_attempts:
                    raise ProfileConflictError(sorted({events[i].visitor_id for i in pending}))
                if attempt > 1:
                    # Jitter, so that two replicas that collided do not collide again.
                    await asyncio.sleep(CAS_CONFLICT.delay(attempt - 1))
                plans = await self._plan(defs, events, pending, now)
                with (
                    step_span("engine.commit", {"crowd.attempt": attempt}) as span,
                    redis_span("commit"),
                ):
                    done = await self._write_plans(plans)
                    span.set_attribute("crowd.conflicts", done.count(False))
                pending = []
                for plan, ok in zip(plans, done, strict=True):
                    if ok:
                        for index, result in plan.results.items():
                            results[index] = result
                        if plan.write is not None:
                            committed.append(plan.write)
                        frozen.update(plan.frozen)
                        if plan.state is not None and plan.claims:
                            new = [i for i, r in plan.results.items() if not r.duplicate]
                            finals[plan.state.profile_id] = (plan.state, new)
                    else:
                        pending.extend(plan.indexes)
                pending.sort()
                self.stats.conflicts += sum(1 for ok in done if not ok)
                record_conflicts(sum(1 for ok in done if not ok))
            await self._append_trace_id_entries(committed)
            batch = [r for r in results if r is not None]
            # Still under the visitors' locks: a stitch is part of the batch that caused it,
            # and a retry is not acknowledged before the stitch it was cut short in is done.
            await self._finish_stitches(defs, sorted(frozen), now)
            return await self._claim_and_stitch(defs, events, batch, finals, now)

    async def _plan(
        self,
        defs: CompiledDefinitions,
        events: Sequence[NormalizedEvent],
        pending: Sequence[int],
        now: int,
    ) -> list[_Plan]:
        with step_span("engine.load", {"crowd.events": len(pending)}), redis_span("read"):
            loaded, groups = await self._read(events, pending)
        cutoff = now - defs.limits.event_dedup_window_ms
        plans = []
        with step_span("engine.evaluate", {"crowd.profiles": len(groups)}):
            for n, (profile_id, indexes) in enumerate(groups.items()):
                await let_others_run(n)
                plans.append(self._compute(defs, loaded[profile_id], indexes, events, now, cutoff))
        return plans

    def _compute(
        self,
        defs: CompiledDefinitions,
        loaded: Loaded,
        indexes: list[int],
        events: Sequence[NormalizedEvent],
        now: int,
        cutoff: int,
    ) -> _Plan:
        """Run the engine over one profile's events, in order."""
        state = loaded.state
        initial_audiences = list(state.audiences) if state is not None else []
        # Before the engine runs: it may change the state in place.
        held = _identities(defs, state)
        seen = {event_id for event_id, score in loaded.seen.items() if score >= cutoff}
        steps: list[Step] = []
        new_ids: list[str] = []
        results: dict[int, EventApplyResult] = {}
        trace = self._trace_history.choice(loaded.profile_id, loaded.followed)
        # Records nobody will keep are not built (an event with a live-trace id keeps them).
        traced = trace is not TraceWrite.SKIP or any(events[i].trace_id for i in indexes)
        for index in indexes:
            event = events[index]
            if event.event_id and event.event_id in seen:
                results[index] = EventApplyResult(index, loaded.profile_id, duplicate=True)
                continue
            outcome = self._engine.process_event(defs, state, event, now, trace=traced)
            state = outcome.state
            if event.event_id:
                seen.add(event.event_id)
                new_ids.append(event.event_id)
            steps.append((event, outcome))
            results[index] = EventApplyResult(index, loaded.profile_id, outcome=outcome)
        write = None
        if steps and state is not None:
            write = build_write(
                layout=self._layout,
                defs=defs,
                profile_id=loaded.profile_id,
                expected_version=loaded.version,
                initial_audiences=initial_audiences,
                final=state,
                steps=steps,
                now_ms=now,
                recent_ids=RecentIds(
                    loaded.seen, new_ids, cutoff, self._dedup_max_entries, loaded.expires_ms
                ),
                trace=trace,
                trace_history=self._trace_history,
            )
        values = _identities(defs, state)
        claims = state is not None and (
            values != held
            or any(r.duplicate for r in results.values())
            # An event that carries a value the profile holds: another replica may be
            # stitching the profile for it right now, and the result must name the survivor.
            or any(_carries(events[i], values) for i in indexes)
        )
        return _Plan(
            indexes=indexes,
            results=results,
            write=write,
            state=state,
            claims=claims,
            frozen=tuple(loaded.frozen),
        )

    async def _write_plans(self, plans: Sequence[_Plan]) -> list[bool]:
        """Round trip 2: every plan's compare-and-set; True where it committed.

        With a ``WAIT`` policy the round trip ends with ``WAIT`` on each connection that
        wrote (`execute_acknowledged`), and profiles whose events were all duplicates get a
        replication marker: their earlier commit (maybe by an attempt whose ``WAIT`` failed)
        is then confirmed too before the duplicates are acknowledged.
        """
        writes = [(n, plan.write) for n, plan in enumerate(plans) if plan.write is not None]
        done = [True] * len(plans)  # a plan with nothing to write (all duplicates) is done
        confirm = []
        if self._wait.enabled:
            confirm = [
                self._layout.keys_for(result.profile_id).profile(result.profile_id)
                for plan in plans
                if plan.write is None
                for result in list(plan.results.values())[:1]
            ]
        if not writes and not confirm:
            return done
        committed = await self._commit_acknowledged([write for _, write in writes], confirm)
        outbox_written = False
        for (n, write), ok in zip(writes, committed, strict=True):
            done[n] = ok
            outbox_written = outbox_written or (ok and write.outbox_entries > 0)
        if outbox_written and self._on_outbox_write is not None:
            self._on_outbox_write()
        return done

    async def _append_trace_id_entries(self, committed: Sequence[ProfileWrite]) -> None:
        entries = [entry for write in committed for entry in write.trace_id_entries]
        if not entries:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for trace_id, entry in entries:
                stream = keys.trace_by_id(trace_id)
                pipe.xadd(stream, {"e": entry}, maxlen=TRACE_MAXLEN, approximate=True)
                pipe.pexpire(stream, TRACE_TTL_MS)
            replies = await self._execute(pipe)
        for reply in replies:
            if isinstance(reply, Exception):
                # The live trace is a debugging aid: never fail a committed batch over it.
                logger.warning("could not append to a live-trace stream: %s", reply)


def _carries(event: NormalizedEvent, values: list[object]) -> bool:
    return any(isinstance(v, str) and v in values for v in event.data.values())


def _identities(defs: CompiledDefinitions, state: ProfileState | None) -> list[object]:
    """The profile's visitor-ID values, in attribute order."""
    if state is None:
        return []
    return [state.attributes.get(a) for a in defs.visitor_id_attributes]
