"""Turns what the engine computed for one profile into its part of a compare-and-set script
call, and queues the writes of a batch: one script call per partition (`queue_commits`).

A `ProfileWrite` holds the profile's ``KEYS``/``ARGV`` of ``scripts/commit_profile.lua``
(everything in the profile's partition, applied atomically and only if the profile's version
token is still the one that was read), plus the writes that live in other slots and
therefore cannot be in the script:

- alias TTL refreshes, queued in the same pipeline right after the script (identity-index
  entries are claimed after the commit by `stitches`: the first holder keeps a value);
- entries for live-trace-id streams, written only after the commit succeeded.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio

from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import NormalizedEvent, Outcome, ProfileState
from profile_service.storage.delayed_schedule import cancelled_members, delayed_member
from profile_service.storage.layout import Layout
from profile_service.storage.lua import is_noscript, storage_script
from profile_service.storage.recent_ids import RecentIds
from profile_service.storage.recent_ids import encode as encode_recent_ids
from profile_service.storage.reevaluation_due import reevaluation_due_writes
from profile_service.storage.replies import RedisArg
from profile_service.storage.state_codec import encode_state
from profile_service.storage.trace_history import TraceHistory, TraceWrite
from service_common import keys
from service_common.keys import PartitionKeys
from service_common.trace_entries import (
    TRACE_TTL_MS,
    encode_entries,
    entry_doc,
    otel_trace_id,
)

__all__ = [
    "COMMIT_SCRIPT",
    "ProfileWrite",
    "QueuedCommits",
    "Step",
    "build_write",
    "new_version_token",
    "queue_commits",
]

COMMIT_SCRIPT = storage_script("commit_profile")

Step = tuple[NormalizedEvent | None, Outcome]
"""One engine call: the event it processed (``None`` for a sweeper visit end) and its outcome."""

SideWrite = Callable[[redis.asyncio.client.Pipeline], None]


_TOKEN_PREFIX = secrets.token_hex(8)
_token_counter = itertools.count()


def new_version_token() -> str:
    """A fresh version token, never reused (so a delete cannot cause ABA): a random prefix
    per process and a counter. (A random token per commit cost a system call each.)"""
    return f"{_TOKEN_PREFIX}{next(_token_counter):x}"


@dataclass
class ProfileWrite:
    """One profile's compare-and-set and the cross-slot writes that go with it."""

    profile_id: str
    partition: PartitionKeys
    keys: list[str]
    """The profile's own ``KEYS`` of the script (its partition's shared keys come first)."""
    args: list[RedisArg]
    side_writes: list[SideWrite] = field(default_factory=list)
    trace_id_entries: list[tuple[str, bytes]] = field(default_factory=list)
    """``(live-trace id, entry JSON)`` to append once the commit succeeded."""
    outbox_entries: int = 0
    new_version: str = ""
    """The version token the profile has once this write committed."""


@dataclass(frozen=True)
class QueuedCommits:
    """Where `queue_commits` put the writes: reads which committed from the replies."""

    calls: list[list[int]]
    """Per script call (the first replies of the pipeline, in order): the indexes of its
    writes, in the order of the script's reply."""
    commands: int
    """How many commands were queued (script calls, then side writes)."""

    def committed(self, replies: Sequence[Any]) -> list[bool]:
        """Which writes committed. A NOSCRIPT reply (a node lost the scripts) counts as
        not committed (the caller retries; the scripts are loaded again); other errors
        raise."""
        done = [False] * sum(len(call) for call in self.calls)
        for reply, members in zip(replies, self.calls, strict=False):
            if isinstance(reply, Exception):
                if is_noscript(reply):
                    continue
                raise reply
            for index, flag in zip(members, reply, strict=True):
                done[index] = flag == 1
        return done


def queue_commits(
    pipe: redis.asyncio.client.Pipeline, writes: Sequence[ProfileWrite]
) -> QueuedCommits:
    """Queue ``writes``: one script call per partition (the issue measured a call per
    profile at 14% of the service's CPU), then every write's side writes."""
    by_partition: dict[int, list[int]] = {}
    for index, write in enumerate(writes):
        by_partition.setdefault(write.partition.partition, []).append(index)
    for members in by_partition.values():
        pkeys = writes[members[0]].partition
        script_keys = [pkeys.visits_due, pkeys.outbox, pkeys.delayed]
        args: list[RedisArg] = []
        for index in members:
            script_keys += writes[index].keys
            args += writes[index].args
        COMMIT_SCRIPT.queue(pipe, script_keys, args)
    commands = len(by_partition)
    for write in writes:
        for side_write in write.side_writes:
            side_write(pipe)
        commands += len(write.side_writes)
    return QueuedCommits(list(by_partition.values()), commands)


TTL_REFRESH_SLACK_MS = 24 * 3600 * 1000
"""How far a profile's expiry deadline may lag behind ``now + retention`` before a commit
sets it again (at most a tenth of the retention): most commits then send no ``PEXPIRE``
for the profile, its aliases or its visitor-ID index entries, and a profile expires at
most this much earlier than ``retention`` after its last event."""


def _ttl_refresh_due(expires_ms: int | None, now_ms: int, retention_ms: int) -> bool:
    """Whether a commit must set the TTLs again: no deadline known, the retention setting
    got shorter (the deadline lies beyond ``now + retention``), or the deadline lags."""
    if expires_ms is None:
        return True
    ideal = now_ms + retention_ms
    return expires_ms > ideal or ideal - expires_ms > min(TTL_REFRESH_SLACK_MS, retention_ms // 10)


def _identity_refreshes(
    layout: Layout, defs: CompiledDefinitions, state: ProfileState, retention_ms: int
) -> list[SideWrite]:
    """Keep the index entries of the profile's visitor-ID values alive as long as it is (the
    entries are claimed by `stitches` only when a value is new, not on every commit)."""
    writes: list[SideWrite] = []
    for attribute_id in defs.visitor_id_attributes:
        value = state.attributes.get(attribute_id)
        if isinstance(value, str) and value:
            key = keys.identity_index(attribute_id, value, layout.partitions)

            def refresh(pipe: redis.asyncio.client.Pipeline, key: str = key) -> None:
                pipe.pexpire(key, retention_ms)

            writes.append(refresh)
    return writes


def _alias_refreshes(layout: Layout, state: ProfileState, retention_ms: int) -> list[SideWrite]:
    writes: list[SideWrite] = []
    for visitor_id in state.visitor_ids:
        if visitor_id == state.profile_id:
            continue
        key = layout.keys_for(visitor_id).alias(visitor_id)

        def refresh(pipe: redis.asyncio.client.Pipeline, key: str = key) -> None:
            pipe.pexpire(key, retention_ms)

        writes.append(refresh)
    return writes


def _trace_docs(
    profile_id: str,
    now_ms: int,
    event: NormalizedEvent | None,
    outcome: Outcome,
    trace_id_entries: list[tuple[str, bytes]],
) -> list[dict[str, Any]]:
    """The stored form of one step's trace records; appends the entries of the event's
    live-trace stream (if it has a live-trace id) to ``trace_id_entries``."""
    event_id = trace_id = otel_id = ""
    if event is not None:
        event_id, trace_id = event.event_id, event.trace_id
        otel_id = otel_trace_id(event.traceparent)  # once per event, not per record
    docs = [
        entry_doc(
            record,
            profile_id=profile_id,
            time_ms=now_ms,
            event_id=event_id,
            trace_id=trace_id,
            otel_id=otel_id,
        )
        for record in outcome.trace
    ]
    if trace_id:
        trace_id_entries += [(trace_id, encode_entries([doc])[1]) for doc in docs]
    return docs


def build_write(
    *,
    layout: Layout,
    defs: CompiledDefinitions,
    profile_id: str,
    expected_version: str,
    initial_audiences: Iterable[str],
    final: ProfileState,
    steps: Sequence[Step],
    now_ms: int,
    recent_ids: RecentIds | None = None,
    trace: TraceWrite = TraceWrite.KEEP,
    trace_history: TraceHistory | None = None,
) -> ProfileWrite:
    """Build the commit of ``final`` (the state after ``steps``) over the version read.

    Args:
        initial_audiences: Audience ids of the state as read (captured before the engine ran,
            in case it mutates states in place); the difference with ``final.audiences``
            decides the SADD/SREM of the partition's audience sets.
        recent_ids: What the profile's field ``d`` becomes (`recent_ids.encode`: the ids it
            had, trimmed, the new ones, and the expiry deadline: the TTLs are set again only
            when that lags, `TTL_REFRESH_SLACK_MS`); ``None`` leaves the field as it is and
            sets the TTLs.
        trace: What to do with the steps' trace records in the profile's trace stream
            (`TraceWrite`; records of events with a live-trace id are always kept).
        trace_history: Its byte cap (default `TraceHistory()`).
    """
    if final.profile_id != profile_id:
        raise RuntimeError(
            f"the engine returned profile {final.profile_id!r} for profile {profile_id!r}"
        )
    limits = defs.limits
    pkeys = layout.keys_for(profile_id)
    before = set(initial_audiences)
    after = set(final.audiences)
    joined = sorted(after - before)
    left = sorted(before - after)

    outbox: list[RedisArg] = []
    # Member -> due ms: one pending run per action (a later visit end moves it).
    delayed: dict[str, str] = {}
    audiences_left = set(left)
    trace_docs: list[dict[str, Any]] = []
    trace_id_entries: list[tuple[str, bytes]] = []
    if trace is not TraceWrite.KEEP and any(e is not None and e.trace_id for e, _ in steps):
        trace = TraceWrite.KEEP  # the caller is debugging this visitor right now
    for event, outcome in steps:
        for fired in outcome.actions:
            if fired.delay_ms > 0:
                delayed[delayed_member(profile_id, fired.action_id)] = str(now_ms + fired.delay_ms)
            else:
                outbox += [fired.idempotency_key, fired.action.SerializeToString()]
        audiences_left.update(outcome.audiences_left)
        if outcome.trace and trace is not TraceWrite.SKIP:
            trace_docs += _trace_docs(profile_id, now_ms, event, outcome, trace_id_entries)
    # All records of the commit go into one stream entry (one XADD; see trace_log).
    trace_field, trace_value = encode_entries(trace_docs) if trace_docs else ("", b"")
    history = trace_history or TraceHistory()

    retention = limits.visitor_retention_ms
    expires_ms = recent_ids.expires_ms if recent_ids is not None else None
    refresh = _ttl_refresh_due(expires_ms, now_ms, retention)
    visit_due = ""
    if final.visit is not None:
        visit_due = str(final.visit.expires_ms(limits.max_visit_length_ms))
    script_keys = [
        pkeys.profile(profile_id),
        pkeys.trace(profile_id),
        pkeys.tracing(profile_id),
        *(pkeys.audience(a) for a in joined),
        *(pkeys.audience(a) for a in left),
    ]
    # The text parameters travel as one JSON argument (see the script): redis-py packs
    # every argument in Python, and one per parameter cost more than the rest of the commit.
    header: dict[str, Any] = {
        "e": expected_version,
        "n": (token := new_version_token()),
        "r": str(retention) if refresh else "",
        "p": profile_id,
        "d": visit_due,
        "m": str(history.max_entries(len(trace_value))),
        "x": str(TRACE_TTL_MS),
        "s": 1 if trace is TraceWrite.KEEP else 0,
        "j": len(joined),
        "l": len(left),
        "u": 0 if recent_ids is None else 1,
        "y": [[due, member] for member, due in delayed.items()],
        "o": len(outbox) // 2,
        "f": trace_field,
    }
    # Left during the commit and not back at its end: "in audience at end of visit" no longer
    # holds, so the audience's pending delayed runs are cancelled (after this commit's ZADDs).
    cancelled = cancelled_members(defs, profile_id, audiences_left - after)
    if cancelled:
        header["z"] = cancelled
    args: list[RedisArg] = [orjson.dumps(header), *outbox]
    if trace_field:
        args.append(trace_value)
    if recent_ids is not None:
        deadline = now_ms + retention if refresh or expires_ms is None else expires_ms
        args.append(encode_recent_ids(recent_ids, now_ms, deadline))
    args.append(encode_state(final))
    return ProfileWrite(
        profile_id=profile_id,
        partition=pkeys,
        keys=script_keys,
        args=args,
        side_writes=[
            *(_alias_refreshes(layout, final, retention) if refresh else ()),
            *(_identity_refreshes(layout, defs, final, retention) if refresh else ()),
            *reevaluation_due_writes(defs, pkeys, final, now_ms),  # time-based re-evaluation
        ],
        new_version=token,
        trace_id_entries=trace_id_entries,
        outbox_entries=len(outbox) // 2,
    )
