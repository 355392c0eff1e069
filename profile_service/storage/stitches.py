"""Identity stitching in storage: the first holder of a visitor-ID value keeps its index
entry, and a profile that gains a value another profile holds is stitched into one person.

Two profiles live in two partitions (two hash slots on a cluster), so a stitch is a durable
multi-step operation in which every step is one single-slot script or an idempotent
command, safe to repeat, by this process or by any replica (docs/identity.md):

1. **Freeze** the replaced profile into its survivor (`freeze_profile.lua`, its slot): its
   version changes and field ``f`` names the survivor, so no commit writes it any more; its
   own id's alias names the survivor, so events go there; the stitch is recorded in its
   partition's pending set. The first freeze wins.
2. **Merge** into the survivor: the engine's `merge_profiles` (merge rules, audiences,
   triggers, MergeUsers for Braze) committed with the survivor's ordinary compare-and-set,
   unless the survivor's ``replaces`` already lists the replaced profile.
3. **Re-point** every anonymous id and visitor-ID value of the replaced profile to the
   survivor (aliases and index entries: idempotent SETs in their own slots).
4. **Retire** the replaced profile (`retire_profile.lua`, its slot): delete it, its visit
   entry and its audience memberships (no LEFT actions), trace the stitch, drop the pending
   record. A crash anywhere leaves the pending record and the frozen profile: the next
   event routed past it (the client's retry, say) finishes the stitch before it is
   answered (`_finish_stitches`), and the sweeper completes the rest (`recover_stitches`)
   after a grace period.

The survivor is the older profile (`survivor_first`): a total order, so two concurrent
stitches of the same pair agree, and no chain of stitches forms a cycle.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from crowd.profile.v1 import trace_pb2
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import NormalizedEvent, ProfileState, TraceRecord
from profile_service.engine.stitching import (
    StitchRefusal,
    refusal_note,
    refusal_record,
    survivor_first,
)
from profile_service.metrics import record_stitch, record_stitch_refused
from profile_service.storage.commit import build_write, new_version_token
from profile_service.storage.lua import LuaScript, is_noscript
from profile_service.storage.replies import as_text
from profile_service.storage.store_core import (
    CLAIM_IDENTITY_SCRIPT,
    FREEZE_PROFILE_SCRIPT,
    RETIRE_PROFILE_SCRIPT,
    EventApplyResult,
    StoreCore,
    parse_profile,
    raise_errors,
)
from service_common import keys
from service_common.trace_entries import TRACE_MAXLEN, TRACE_TTL_MS, encode_entries, entry_doc

__all__ = ["StitchFault", "Stitches"]

logger = logging.getLogger(__name__)

StitchFault = Callable[[str], None]
"""Test hook called with the name of the step about to run ("merge", "repoint", "retire");
raising from it abandons the stitch there, as a crash would (the sweeper completes it)."""

MAX_CHAIN = 8
"""Most alias hops followed to find a profile's final survivor."""


@dataclass(frozen=True)
class _Claim:
    """A visitor-ID value a committed profile holds, and the event that brought it."""

    profile_id: str
    attribute_id: str
    value: str
    indexes: tuple[int, ...]


@dataclass(frozen=True)
class _Stitch:
    """A stitch in progress, as recorded in the pending set."""

    replaced: str
    survivor: str
    attribute_id: str
    value: str
    stitch_id: str

    def member(self) -> str:
        return json.dumps(
            {
                "r": self.replaced,
                "s": self.survivor,
                "a": self.attribute_id,
                "v": self.value,
                "i": self.stitch_id,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, member: str) -> _Stitch:
        doc = json.loads(member)
        return cls(doc["r"], doc["s"], doc["a"], doc["v"], doc["i"])


class Stitches(StoreCore):
    """Claims visitor-ID values after commits and runs stitches (part of `ProfileStore`)."""

    stitch_fault: StitchFault | None = None

    async def _claim_and_stitch(
        self,
        defs: CompiledDefinitions,
        events: Sequence[NormalizedEvent],
        results: list[EventApplyResult],
        finals: dict[str, tuple[ProfileState, list[int]]],
        now: int,
    ) -> list[EventApplyResult]:
        """Claim the index entries of every committed profile's visitor-ID values; stitch
        where another profile holds one. Returns ``results`` with the stitches reported on
        the events that caused them (their profile id is the survivor's then)."""
        claims = [
            _Claim(profile_id, attribute_id, value, tuple(indexes))
            for profile_id, (state, indexes) in finals.items()
            for attribute_id in defs.visitor_id_attributes
            if isinstance(value := state.attributes.get(attribute_id), str) and value
        ]
        if not claims:
            return results
        retention = defs.limits.visitor_retention_ms

        def claim_all(pipe: redis.asyncio.client.Pipeline) -> None:
            for claim in claims:
                key = keys.identity_index(claim.attribute_id, claim.value, self._layout.partitions)
                CLAIM_IDENTITY_SCRIPT.queue(pipe, [key], [claim.profile_id, retention])

        # Every step is acknowledged per the store's WAIT policy, like commits: a failover
        # must not lose a claim, a freeze or a re-point that the next step relies on.
        # A failed claim fails the call: the events are committed, and the client's retry
        # (duplicates, by their event ids) claims again and so completes the stitch.
        owners = await self._scripts_acknowledged(claim_all)
        for claim, owner in zip(claims, owners, strict=True):
            other = as_text(owner)
            if other == claim.profile_id:
                continue
            done = await self._stitch(defs, claim, other, events, now)
            if not claim.indexes:
                continue  # only duplicates of this profile in the batch: nothing to report
            if isinstance(done, StitchRefusal):
                last = results[claim.indexes[-1]]
                if last.outcome is not None:
                    last.outcome.identity_notes.append(refusal_note(done))
            elif done is not None:
                survivor, replaced = done
                cause = _cause(results, claim) if replaced is not None else -1
                for index in claim.indexes:
                    stitched = results[index].stitched
                    if index == cause and replaced is not None:
                        stitched = (*stitched, replaced)
                    results[index] = dataclasses.replace(
                        results[index], profile_id=survivor, stitched=stitched
                    )
        return results

    async def _finish_stitches(
        self, defs: CompiledDefinitions, replaced_ids: Sequence[str], now: int
    ) -> None:
        """Finish the stitches of frozen profiles that a batch's events were routed past:
        a client retrying after a failure mid-stitch (a master's death, say) is answered
        once the person is one profile, not when the sweeper's grace period has passed.
        Steps 2 to 4 are idempotent, so a replica running the same stitch now is harmless."""
        for replaced_id in replaced_ids:
            key = self._layout.keys_for(replaced_id).profile(replaced_id)

            def fill(pipe: redis.asyncio.client.Pipeline, key: str = key) -> None:
                pipe.hget(key, "p")

            replies = await self._execute_acknowledged(fill, [key])
            raise_errors(replies)
            if replies[0]:  # else retired meanwhile: nothing left to finish
                await self._complete(defs, _Stitch.parse(as_text(replies[0])), None, now)

    async def _final_survivor(self, profile_id: str) -> str:
        """Follow alias and freeze links from ``profile_id`` to the profile that stands."""
        current = profile_id
        for _ in range(MAX_CHAIN):
            pkeys = self._layout.keys_for(current)
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.get(pkeys.alias(current))
                pipe.hget(pkeys.profile(current), "f")
                replies = await self._execute(pipe)
            # A failed read must fail the stitch, not pass for an absent link (the error's
            # text would be taken for a profile id).
            raise_errors(replies)
            alias, frozen = replies
            target = as_text(frozen) if frozen else as_text(alias) if alias else None
            if target is None or target == current:
                return current
            current = target
        return current

    async def _point_index(self, key: str, owner: str, retention_ms: int) -> None:
        """Point an index entry at ``owner``, acknowledged per the WAIT policy (a decision
        made on a read during a failover must not stand if that node was not the master)."""

        def fill(pipe: redis.asyncio.client.Pipeline) -> None:
            pipe.set(key, owner, px=retention_ms)

        raise_errors(await self._execute_acknowledged(fill, []))

    async def _read_state(
        self, profile_id: str, *, confirmed: bool = False
    ) -> tuple[ProfileState | None, str, str | None]:
        """A profile's state, version and freeze target (``f``).

        ``confirmed``: read under the WAIT policy (a replication marker in the profile's
        slot), so that an absence read from a node that is not the master (a restarted one,
        during a failover) fails instead of deciding a stitch.
        """
        key = self._layout.keys_for(profile_id).profile(profile_id)

        def fill(pipe: redis.asyncio.client.Pipeline) -> None:
            pipe.hmget(key, ["s", "v", "f"])

        if confirmed:
            replies = await self._execute_acknowledged(fill, [key])
            raise_errors(replies)
            reply = replies[0]
        else:
            reply = await self._client.hmget(key, ["s", "v", "f"])
        state, version = parse_profile(reply)
        return state, version, as_text(reply[2]) if reply[2] else None

    async def _stitch(
        self,
        defs: CompiledDefinitions,
        claim: _Claim,
        owner: str,
        events: Sequence[NormalizedEvent],
        now: int,
    ) -> tuple[str, str | None] | StitchRefusal | None:
        """Stitch the claiming profile and the value's owner: ``(survivor, replaced)`` (the
        replaced id None when another call stitched them), the guardrail's refusal, or None
        if there was nothing to stitch (the owner is gone or no longer holds the value)."""
        mine = await self._final_survivor(claim.profile_id)
        other = await self._final_survivor(owner)
        retention = defs.limits.visitor_retention_ms
        index_key = keys.identity_index(claim.attribute_id, claim.value, self._layout.partitions)
        if mine == other:
            # Already one person (e.g. another replica is stitching the pair right now): the
            # entry names a profile merged away, point it here; the events belong to ``mine``.
            await self._point_index(index_key, mine, retention)
            return (mine, None) if mine != claim.profile_id else None
        a, _, _ = await self._read_state(mine, confirmed=True)
        b, _, _ = await self._read_state(other, confirmed=True)
        if a is None:
            return None
        if b is None or not _holds(b, claim.attribute_id, claim.value):
            # A stale entry (its profile expired or lost the value): the claimer takes it.
            await self._point_index(index_key, mine, retention)
            return None
        survivor, replaced = survivor_first(a, b)
        refusal = self._engine.check_stitch(
            defs, survivor, replaced, claim.attribute_id, claim.value
        )
        event = events[claim.indexes[-1]] if claim.indexes else None
        if refusal is not None:
            await self._refuse(claim, refusal, other, now)
            return refusal
        stitch = _Stitch(
            replaced=replaced.profile_id,
            survivor=survivor.profile_id,
            attribute_id=claim.attribute_id,
            value=claim.value,
            stitch_id=f"{replaced.profile_id}>{survivor.profile_id}",
        )
        kept = await self._run(defs, stitch, event, now)
        return (kept, stitch.replaced) if kept is not None else None

    async def _run(
        self,
        defs: CompiledDefinitions,
        stitch: _Stitch,
        event: NormalizedEvent | None,
        now: int,
    ) -> str | None:
        """Steps 1 to 4 of ``stitch``; the survivor that holds the person afterwards."""
        retention = defs.limits.visitor_retention_ms
        rkeys = self._layout.keys_for(stitch.replaced)
        frozen = await self._script(
            FREEZE_PROFILE_SCRIPT,
            [rkeys.profile(stitch.replaced), rkeys.alias(stitch.replaced), rkeys.stitches],
            [stitch.survivor, new_version_token(), retention, now, stitch.member()],
        )
        status = as_text(frozen[0])
        if status == "gone":
            return None
        if status == "frozen":
            # Another stitch froze it first: that one will merge it; this one is done.
            return await self._final_survivor(stitch.replaced)
        return await self._complete(defs, stitch, event, now)

    async def _complete(
        self,
        defs: CompiledDefinitions,
        stitch: _Stitch,
        event: NormalizedEvent | None,
        now: int,
    ) -> str | None:
        """Steps 2 to 4 (also the sweeper's recovery of an interrupted stitch)."""
        self._fault("merge")
        replaced, _, _ = await self._read_state(stitch.replaced)
        survivor = await self._merge(defs, stitch, replaced, event, now)
        if survivor is None:
            return None
        self._fault("repoint")
        await self._repoint(defs, stitch, replaced, survivor)
        self._fault("retire")
        if await self._retire(defs, stitch, survivor, replaced, now):
            # Counted once, by whoever retired it (a retry and the sweeper may both finish).
            self.stats.stitches += 1
            record_stitch()
        return survivor

    async def _script(self, script: LuaScript, script_keys: list[str], args: list[Any]) -> Any:
        """One single-slot step, acknowledged per the WAIT policy; its reply (errors raise)."""

        def fill(pipe: redis.asyncio.client.Pipeline) -> None:
            script.queue(pipe, script_keys, args)

        return (await self._scripts_acknowledged(fill))[0]

    async def _scripts_acknowledged(
        self, fill: Callable[[redis.asyncio.client.Pipeline], None]
    ) -> list[Any]:
        """The replies of the scripts ``fill`` queues, acknowledged per the WAIT policy, run
        once more if a node had lost the scripts (a restarted master: `_execute` has just
        loaded them again). Every error raises, NOSCRIPT too: an error reply must never be
        read as a profile id."""
        replies = await self._execute_acknowledged(fill, [])
        if any(is_noscript(reply) for reply in replies):
            replies = await self._execute_acknowledged(fill, [])
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return list(replies)

    def _fault(self, step: str) -> None:
        if self.stitch_fault is not None:
            self.stitch_fault(step)

    async def _merge(
        self,
        defs: CompiledDefinitions,
        stitch: _Stitch,
        replaced: ProfileState | None,
        event: NormalizedEvent | None,
        now: int,
    ) -> str | None:
        """Step 2: the survivor absorbs the replaced profile, once (compare-and-set)."""
        target = stitch.survivor
        for _ in range(self._max_attempts):
            target = await self._final_survivor(target)
            state, version, frozen = await self._read_state(target)
            if frozen:
                continue  # the survivor is being stitched itself: merge into its survivor
            if state is None:
                return None
            if replaced is None or any(
                r.get("profile_id") == stitch.replaced for r in state.replaces
            ):
                return target  # merged already (a repeated step)
            outcome = self._engine.merge_profiles(
                defs,
                state,
                replaced,
                attribute_id=stitch.attribute_id,
                value=stitch.value,
                event=event,
                stitch_id=stitch.stitch_id,
                now_ms=now,
            )
            write = build_write(
                layout=self._layout,
                defs=defs,
                profile_id=target,
                expected_version=version,
                initial_audiences=list(state.audiences),
                final=outcome.state,
                steps=[(event, outcome)],
                now_ms=now,
                trace=self._trace_history.choice(target, None),
                trace_history=self._trace_history,
            )

            if (await self._commit_acknowledged([write]))[0]:
                if write.outbox_entries and self._on_outbox_write is not None:
                    self._on_outbox_write()
                return target
        return None

    async def _repoint(
        self,
        defs: CompiledDefinitions,
        stitch: _Stitch,
        replaced: ProfileState | None,
        survivor: str,
    ) -> None:
        """Step 3: the replaced profile's ids and values resolve to the survivor."""
        retention = defs.limits.visitor_retention_ms
        visitor_ids = {stitch.replaced}
        values = {(stitch.attribute_id, stitch.value)}
        if replaced is not None:
            visitor_ids.update(replaced.visitor_ids)
            for record in replaced.replaces:
                visitor_ids.update(record.get("visitor_ids", []))
                values.update(record.get("identities", {}).items())
            for attribute_id in defs.visitor_id_attributes:
                value = replaced.attributes.get(attribute_id)
                if isinstance(value, str) and value:
                    values.add((attribute_id, value))

        def repoint_all(pipe: redis.asyncio.client.Pipeline) -> None:
            for visitor_id in sorted(visitor_ids - {survivor}):
                alias = self._layout.keys_for(visitor_id).alias(visitor_id)
                pipe.set(alias, survivor, px=retention)
            for attribute_id, value in sorted(values):
                key = keys.identity_index(attribute_id, value, self._layout.partitions)
                pipe.set(key, survivor, px=retention)

        raise_errors(await self._execute_acknowledged(repoint_all, []))

    async def _retire(
        self,
        defs: CompiledDefinitions,
        stitch: _Stitch,
        survivor: str,
        replaced: ProfileState | None,
        now: int,
    ) -> bool:
        """Step 4: delete the frozen profile and its memberships; trace; drop the record.
        True if this call retired it (False: it was gone already)."""
        rkeys = self._layout.keys_for(stitch.replaced)
        audiences = sorted({*defs.audiences, *(replaced.audiences if replaced else ())})
        record = _stitched_record(stitch, survivor)
        doc = entry_doc(record, profile_id=stitch.replaced, time_ms=now)
        _, entry = encode_entries([doc])
        retired = await self._script(
            RETIRE_PROFILE_SCRIPT,
            [
                rkeys.profile(stitch.replaced),
                rkeys.trace(stitch.replaced),
                rkeys.visits_due,
                rkeys.stitches,
                rkeys.dedup(stitch.replaced),
                *(rkeys.audience(a) for a in audiences),
            ],
            [
                stitch.replaced,
                survivor,
                stitch.member(),
                TRACE_MAXLEN,
                TRACE_TTL_MS,
                entry,
                defs.limits.event_dedup_window_ms,
            ],
        )
        return bool(retired == 1)

    async def _refuse(self, claim: _Claim, refusal: StitchRefusal, other: str, now: int) -> None:
        """A guardrail refused the stitch: trace it on the claiming profile."""
        record = refusal_record(refusal, claim.profile_id, other)
        doc = entry_doc(record, profile_id=claim.profile_id, time_ms=now)
        field, entry = encode_entries([doc])
        trace = self._layout.keys_for(claim.profile_id).trace(claim.profile_id)
        await self._client.xadd(trace, {field: entry}, maxlen=TRACE_MAXLEN, approximate=True)
        self.stats.stitches_refused += 1
        record_stitch_refused()

    async def recover_stitches(
        self, defs: CompiledDefinitions, stalled: Sequence[tuple[int, str]], now: int
    ) -> int:
        """Complete interrupted stitches, given as ``(partition, pending member)`` (steps 2
        to 4 again; each is idempotent). Returns how many were completed."""
        done = 0
        for partition, member in stalled:
            stitch = _Stitch.parse(member)
            if await self._complete(defs, stitch, None, now) is not None:
                done += 1
            else:
                # Nothing left to merge into (the survivor expired): drop the record.
                await self._client.zrem(keys.PartitionKeys(partition).stitches, member)
        return done


def _cause(results: Sequence[EventApplyResult], claim: _Claim) -> int:
    """The event of the batch that brought the claimed value (the first to change the
    attribute; the profile's last event if none did, e.g. the value was set earlier)."""
    for index in claim.indexes:
        outcome = results[index].outcome
        if outcome is not None and claim.attribute_id in outcome.changed_attributes:
            return index
    return claim.indexes[-1]


def _holds(state: ProfileState, attribute_id: str, value: str) -> bool:
    if state.attributes.get(attribute_id) == value:
        return True
    return any(r.get("identities", {}).get(attribute_id) == value for r in state.replaces)


def _stitched_record(stitch: _Stitch, survivor: str) -> TraceRecord:
    return TraceRecord(
        trace_pb2.TRACE_ENTRY_KIND_VISITOR_STITCHED,
        f"profile {stitch.replaced} stitched into {survivor} by {stitch.attribute_id}",
        {
            "survivor": survivor,
            "replaced": stitch.replaced,
            "attribute_id": stitch.attribute_id,
            "value": stitch.value[:64],
            "stitch_id": stitch.stitch_id,
        },
    )
