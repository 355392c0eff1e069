"""Atomic, batched application of events (and visit ends) to visitor profiles in Redis.

One batch costs a small constant number of round trips, whatever its size:

1. **Read** (one pipeline): for every visitor id of the batch its alias, its profile
   (state + version token) and which of its event ids were already seen (one
   ``read_visitor.lua`` call per visitor id). Visitor ids that
   turn out to be aliases of another profile cost one more pipeline (1b) to read the
   survivors.
2. **Compute** in Python: the engine runs over each profile's events in batch order.
3. **Write** (one pipeline): one compare-and-set script per profile (``commit_profile.lua``)
   that writes the state, the visit-expiry index, audience sets, outbox, delayed actions,
   dedup ids and trace entries only if the version token is still the one read.
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
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio

from crowd.profile.v1 import trace_pb2
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import NormalizedEvent, Outcome, ProfileState, TraceRecord
from profile_service.storage.commit import (
    COMMIT_SCRIPT,
    DEFAULT_DEDUP_MAX_ENTRIES,
    ProfileWrite,
    Step,
    build_write,
)
from profile_service.storage.engine_api import EngineFunctions
from profile_service.storage.keyed_locks import KeyedLocks
from profile_service.storage.layout import Clock, Layout, system_clock_ms
from profile_service.storage.lua import is_noscript, load_scripts, storage_script
from profile_service.storage.replies import RedisArg, as_text
from profile_service.storage.trace_log import TRACE_MAXLEN, TRACE_TTL_MS, encode_entry
from service_common import keys
from service_common.errors import Aborted
from service_common.redis_toolkit.retry import CAS_CONFLICT

__all__ = [
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

ENGINE_FAILURE_RETRY_MS = 60_000
"""When the engine fails to end a visit, the sweeper tries again this much later."""

FIX_VISIT_DUE_SCRIPT = storage_script("fix_visit_due")
MOVE_DELAYED_SCRIPT = storage_script("move_delayed")
READ_VISITOR_SCRIPT = storage_script("read_visitor")
_SCRIPTS = (COMMIT_SCRIPT, FIX_VISIT_DUE_SCRIPT, MOVE_DELAYED_SCRIPT, READ_VISITOR_SCRIPT)


class ProfileConflictError(Aborted):
    """Some profiles kept changing under this replica for every allowed attempt (``ABORTED``).

    Profiles of the batch not named here were committed; retrying the whole batch is safe
    when its events carry event ids (committed ones are then duplicates).
    """

    def __init__(self, profile_ids: Sequence[str]) -> None:
        super().__init__(
            "too many concurrent updates of the same visitor; retry the request",
            reason="PROFILE_UPDATE_CONFLICT",
            metadata={"profileCount": str(len(profile_ids))},
        )
        self.profile_ids = list(profile_ids)


@dataclass(frozen=True)
class EventApplyResult:
    """What applying one event of a batch did.

    Attributes:
        index: The event's position in the batch.
        profile_id: The profile the event was applied to (its visitor id or the survivor
            the visitor id is an alias of).
        duplicate: The event id was seen within the dedup window; nothing changed.
        outcome: The engine's outcome; ``None`` for a duplicate.
    """

    index: int
    profile_id: str
    duplicate: bool = False
    outcome: Outcome | None = None


@dataclass(frozen=True)
class DelayedReport:
    """What one pass over due delayed actions did."""

    fired: int = 0
    """Moved to the outbox (the visitor still qualified)."""
    dropped: int = 0
    """Removed without firing (no longer qualifies, profile gone, unreadable entry)."""


@dataclass
class StoreStats:
    """Counters for tests, benchmarks and metrics."""

    round_trips: int = 0
    """Pipelines and single commands sent to Redis (each one network round trip)."""
    batches: int = 0
    conflicts: int = 0
    """Compare-and-set attempts that found the profile changed and were retried."""
    visits_ended: int = 0


@dataclass
class _Loaded:
    """A profile as read: state (``None`` if absent), version token and seen event ids."""

    profile_id: str
    state: ProfileState | None
    version: str
    seen: dict[str, float] = field(default_factory=dict)


@dataclass
class _Plan:
    """One profile's computed work within an attempt."""

    indexes: list[int]
    results: dict[int, EventApplyResult]
    write: ProfileWrite | None


def _raise_errors(replies: Sequence[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception) and not is_noscript(reply):
            raise reply


def _parse_profile(reply: Any) -> tuple[ProfileState | None, str]:
    raw_state, raw_version = reply[0], reply[1]
    if raw_state is None:
        return None, ""
    state_bytes = raw_state if isinstance(raw_state, bytes) else str(raw_state).encode()
    return ProfileState.from_bytes(state_bytes), as_text(raw_version) if raw_version else ""


class ProfileStore:
    """Applies events, visit ends and due delayed actions to profiles, atomically per profile.

    Args:
        client: The Redis client (``decode_responses`` either way, RESP2 or RESP3).
        layout: The dataset's partitioning.
        engine: The engine entry points (`EngineFunctions.real()` in production).
        clock: Epoch-milliseconds clock used when no ``now_ms`` is given.
        max_attempts: Compare-and-set attempts per profile before `ProfileConflictError`.
        dedup_max_entries: Most event ids remembered per profile (within the dedup window).
        on_outbox_write: Called after a commit that added actions to an outbox (e.g. the
            local forwarder's ``wake``), so they leave without waiting for its next poll.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        layout: Layout,
        engine: EngineFunctions,
        *,
        clock: Clock = system_clock_ms,
        max_attempts: int = 32,
        dedup_max_entries: int = DEFAULT_DEDUP_MAX_ENTRIES,
        on_outbox_write: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._layout = layout
        self._engine = engine
        self._clock = clock
        self._max_attempts = max_attempts
        self._dedup_max_entries = dedup_max_entries
        self._on_outbox_write = on_outbox_write
        self._locks = KeyedLocks()
        self.stats = StoreStats()

    @property
    def layout(self) -> Layout:
        """The dataset's partitioning."""
        return self._layout

    async def prepare(self) -> None:
        """Load the Lua scripts (call once at start-up; one round trip, not counted)."""
        await load_scripts(self._client, _SCRIPTS)

    async def _execute(self, pipe: redis.asyncio.client.Pipeline) -> list[Any]:
        self.stats.round_trips += 1
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        if any(is_noscript(r) for r in replies):
            # Redis lost its script cache (restart, SCRIPT FLUSH): reload; the callers treat
            # the NOSCRIPT replies like conflicts and retry that work.
            logger.warning("Redis has lost the storage scripts; loading them again")
            await self.prepare()
        return replies

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
                done = await self._write_plans(plans)
                pending = []
                for plan, ok in zip(plans, done, strict=True):
                    if ok:
                        for index, result in plan.results.items():
                            results[index] = result
                        if plan.write is not None:
                            committed.append(plan.write)
                    else:
                        pending.extend(plan.indexes)
                pending.sort()
                self.stats.conflicts += sum(1 for ok in done if not ok)
        await self._append_trace_id_entries(committed)
        return [r for r in results if r is not None]

    async def _plan(
        self,
        defs: CompiledDefinitions,
        events: Sequence[NormalizedEvent],
        pending: Sequence[int],
        now: int,
    ) -> list[_Plan]:
        loaded, groups = await self._read(events, pending)
        cutoff = now - defs.limits.event_dedup_window_ms
        plans = []
        for profile_id, indexes in groups.items():
            plans.append(self._compute(defs, loaded[profile_id], indexes, events, now, cutoff))
        return plans

    async def _read(
        self, events: Sequence[NormalizedEvent], pending: Sequence[int]
    ) -> tuple[dict[str, _Loaded], dict[str, list[int]]]:
        """Round trip 1 (and 1b for aliased visitor ids): profiles, versions, seen ids."""
        by_visitor: dict[str, list[int]] = {}
        for index in pending:
            by_visitor.setdefault(events[index].visitor_id, []).append(index)

        ids_of = {
            visitor_id: [events[i].event_id for i in indexes if events[i].event_id]
            for visitor_id, indexes in by_visitor.items()
        }
        replies = await self._read_visitors(ids_of)
        direct: dict[str, _Loaded] = {}  # each visitor id's own profile, aliased or not
        survivor_of: dict[str, str] = {}
        for (visitor_id, ids), reply in zip(ids_of.items(), replies, strict=True):
            alias, raw_state, raw_version = reply[0], reply[1], reply[2]
            seen: dict[str, float] = {}
            if ids:
                seen = {i: float(s) for i, s in zip(ids, reply[3:], strict=True) if s is not None}
            state, version = _parse_profile((raw_state, raw_version))
            direct[visitor_id] = _Loaded(visitor_id, state, version, seen)
            survivor_of[visitor_id] = as_text(alias) if alias else visitor_id

        survivors = {s for v, s in survivor_of.items() if s != v}
        loaded: dict[str, _Loaded] = {}
        if survivors:
            loaded = await self._read_survivors(events, by_visitor, survivor_of, survivors)
            for visitor_id, survivor in survivor_of.items():
                if survivor != visitor_id and loaded[survivor].state is None:
                    # A stale alias (its survivor expired): the visitor id stands for itself.
                    survivor_of[visitor_id] = visitor_id
        groups: dict[str, list[int]] = {}
        for visitor_id, indexes in by_visitor.items():
            profile_id = survivor_of[visitor_id]
            groups.setdefault(profile_id, []).extend(indexes)
            own_profile = profile_id == visitor_id
            if own_profile and (profile_id not in loaded or loaded[profile_id].state is None):
                loaded[profile_id] = direct[visitor_id]
        for indexes in groups.values():
            indexes.sort()  # batch order within a profile, whatever visitor id it came by
        return loaded, groups

    async def _read_visitors(self, ids_of: dict[str, list[str]]) -> list[Any]:
        """One `READ_VISITOR_SCRIPT` reply per visitor id of ``ids_of`` (visitor id -> its
        event ids), in one pipeline (run again if Redis had lost the script)."""
        replies: list[Any] = []
        for _ in range(2):
            async with self._client.pipeline(transaction=False) as pipe:
                for visitor_id, ids in ids_of.items():
                    pkeys = self._layout.keys_for(visitor_id)
                    script_keys = [
                        pkeys.alias(visitor_id),
                        pkeys.profile(visitor_id),
                        pkeys.dedup(visitor_id),
                    ]
                    READ_VISITOR_SCRIPT.queue(pipe, script_keys, ids)
                replies = await self._execute(pipe)
            if not any(is_noscript(r) for r in replies):
                break  # else `_execute` has just loaded the scripts again
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _read_survivors(
        self,
        events: Sequence[NormalizedEvent],
        by_visitor: dict[str, list[int]],
        survivor_of: dict[str, str],
        survivors: set[str],
    ) -> dict[str, _Loaded]:
        """Round trip 1b: the profiles aliased visitor ids point to, with every event id that
        may land on them."""
        ordered = sorted(survivors)
        ids_of: dict[str, list[str]] = {s: [] for s in ordered}
        for visitor_id, indexes in by_visitor.items():
            survivor = survivor_of[visitor_id]
            if survivor in ids_of:
                ids_of[survivor] += [events[i].event_id for i in indexes if events[i].event_id]
        async with self._client.pipeline(transaction=False) as pipe:
            for profile_id in ordered:
                pkeys = self._layout.keys_for(profile_id)
                pipe.hmget(pkeys.profile(profile_id), ["s", "v"])
                if ids_of[profile_id]:
                    pipe.zmscore(pkeys.dedup(profile_id), ids_of[profile_id])
            replies = await self._execute(pipe)
        _raise_errors(replies)
        loaded: dict[str, _Loaded] = {}
        at = 0
        for profile_id in ordered:
            state, version = _parse_profile(replies[at])
            at += 1
            ids = ids_of[profile_id]
            seen: dict[str, float] = {}
            if ids:
                seen = {i: float(s) for i, s in zip(ids, replies[at], strict=True) if s is not None}
                at += 1
            loaded[profile_id] = _Loaded(profile_id, state, version, seen)
        return loaded

    def _compute(
        self,
        defs: CompiledDefinitions,
        loaded: _Loaded,
        indexes: list[int],
        events: Sequence[NormalizedEvent],
        now: int,
        cutoff: int,
    ) -> _Plan:
        """Run the engine over one profile's events, in order."""
        state = loaded.state
        initial_audiences = list(state.audiences) if state is not None else []
        seen = {event_id for event_id, score in loaded.seen.items() if score >= cutoff}
        steps: list[Step] = []
        new_ids: list[str] = []
        results: dict[int, EventApplyResult] = {}
        for index in indexes:
            event = events[index]
            if event.event_id and event.event_id in seen:
                results[index] = EventApplyResult(index, loaded.profile_id, duplicate=True)
                continue
            outcome = self._engine.process_event(defs, state, event, now)
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
                new_event_ids=new_ids,
                now_ms=now,
                dedup_max_entries=self._dedup_max_entries,
            )
        return _Plan(indexes=indexes, results=results, write=write)

    async def _write_plans(self, plans: Sequence[_Plan]) -> list[bool]:
        """Round trip 2: every plan's compare-and-set; True where it committed."""
        writes = [(n, plan.write) for n, plan in enumerate(plans) if plan.write is not None]
        done = [True] * len(plans)  # a plan with nothing to write (all duplicates) is done
        if not writes:
            return done
        async with self._client.pipeline(transaction=False) as pipe:
            positions = []
            at = 0
            for _, write in writes:
                positions.append(at)
                at += write.queue(pipe)
            replies = await self._execute(pipe)
        outbox_written = False
        for (n, write), position in zip(writes, positions, strict=True):
            reply = replies[position]
            if isinstance(reply, Exception) and not is_noscript(reply):
                raise reply
            done[n] = reply == 1
            outbox_written = outbox_written or (done[n] and write.outbox_entries > 0)
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

    # --- visit ends (sweeper) ------------------------------------------------------------

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
        _raise_errors(replies)

        writes: list[ProfileWrite] = []
        fixes: list[tuple[str, str, str]] = []  # (profile id, version, due or "")
        for profile_id, reply in zip(pending, replies, strict=True):
            state, version = _parse_profile(reply)
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
        _raise_errors(replies[at:])
        if outbox_written and self._on_outbox_write is not None:
            self._on_outbox_write()
        return sorted(retry)

    # --- delayed actions (sweeper) -------------------------------------------------------

    async def fire_due_delayed(
        self,
        defs: CompiledDefinitions,
        due: Sequence[tuple[int, str]],
        now_ms: int,
    ) -> DelayedReport:
        """Re-evaluate due delayed actions and move those that still apply to the outbox.

        Args:
            due: ``(partition, member)`` pairs read from the partitions' delayed sets.

        Each member is claimed by one atomic ZREM (``move_delayed.lua``), so with several
        sweepers an action reaches the outbox at most once.
        """
        parsed: list[tuple[int, str, dict[str, str] | None]] = []
        for partition, member in due:
            try:
                doc = json.loads(member)
                entry = {"p": str(doc["p"]), "a": str(doc["a"]), "k": str(doc["k"])}
            except (ValueError, KeyError, TypeError):
                logger.error("dropping an unreadable delayed action in partition %d", partition)
                entry = None
            parsed.append((partition, member, entry))
        profile_ids = sorted({e["p"] for _, _, e in parsed if e is not None})
        states: dict[str, ProfileState | None] = {}
        if profile_ids:
            async with self._client.pipeline(transaction=False) as pipe:
                for profile_id in profile_ids:
                    pipe.hget(self._layout.keys_for(profile_id).profile(profile_id), "s")
                replies = await self._execute(pipe)
            _raise_errors(replies)
            for profile_id, raw in zip(profile_ids, replies, strict=True):
                states[profile_id] = ProfileState.from_bytes(raw) if raw else None

        fired_flags: list[bool] = []
        async with self._client.pipeline(transaction=False) as pipe:
            for partition, member, entry in parsed:
                pkeys = keys.PartitionKeys(partition)
                args: list[RedisArg] = [member, "", "", "", TRACE_MAXLEN, TRACE_TTL_MS]
                trace_key = pkeys.delayed  # any key of the slot; unused when no trace entry
                state = states.get(entry["p"]) if entry is not None else None
                fired = None
                if entry is not None and state is not None:
                    trace_key = pkeys.trace(entry["p"])
                    try:
                        fired = self._engine.evaluate_delayed(defs, state, entry["a"], now_ms)
                    except Exception:
                        logger.exception("re-evaluating delayed action %s failed", entry["k"])
                        continue  # stays due: retried by the next sweep
                    record = _delayed_trace_record(entry["a"], fired is not None)
                    args[3] = encode_entry(record, profile_id=entry["p"], time_ms=now_ms)
                if fired is not None:
                    args[1] = fired.idempotency_key
                    args[2] = fired.action.SerializeToString()
                fired_flags.append(fired is not None)
                MOVE_DELAYED_SCRIPT.queue(pipe, [pkeys.delayed, pkeys.outbox, trace_key], args)
            replies = await self._execute(pipe) if fired_flags else []
        _raise_errors(replies)
        fired_count = dropped = 0
        for was_fired, reply in zip(fired_flags, replies, strict=True):
            if reply == 1:
                if was_fired:
                    fired_count += 1
                else:
                    dropped += 1
        if fired_count and self._on_outbox_write is not None:
            self._on_outbox_write()
        return DelayedReport(fired=fired_count, dropped=dropped)


def _delayed_trace_record(action_id: str, fired: bool) -> TraceRecord:
    if fired:
        return TraceRecord(
            kind=trace_pb2.TRACE_ENTRY_KIND_ACTION_TRIGGERED,
            message=f"delayed action {action_id} fired after its delay",
            details={"action_id": action_id},
        )
    return TraceRecord(
        kind=trace_pb2.TRACE_ENTRY_KIND_ACTION_SUPPRESSED,
        message=f"delayed action {action_id} dropped: the visitor no longer qualifies",
        details={"action_id": action_id},
    )
