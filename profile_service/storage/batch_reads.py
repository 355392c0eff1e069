"""Round trips 1 and 1b of an event batch: each visitor's alias, profile, version and
already-seen event ids, and the profiles aliased visitor ids point to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from profile_service.engine.state import NormalizedEvent, ProfileState
from profile_service.storage import recent_ids
from profile_service.storage.lua import is_noscript
from profile_service.storage.replies import as_text
from profile_service.storage.store_core import (
    READ_VISITOR_SCRIPT,
    StoreCore,
    parse_profile,
    raise_errors,
)

__all__ = ["MAX_LINK_HOPS", "BatchReads", "Loaded"]

MAX_LINK_HOPS = 8
"""Most alias or freeze links followed from a visitor id to its surviving profile."""


@dataclass
class Loaded:
    """A profile as read: state (``None`` if absent), version token and the event ids it saw
    recently (`recent_ids`: id -> time seen in ms, all of them, not only the batch's)."""

    profile_id: str
    state: ProfileState | None
    version: str
    seen: dict[str, float] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)
    """Visitor ids whose own profile still stands frozen into this one: their events came
    here past a stitch that was cut short (or is running elsewhere right now)."""
    followed: bool | None = None
    """Whether a StreamTrace follows the profile (its tracing marker, read with it);
    ``None``: not read (the commit script checks the marker itself)."""
    expires_ms: int | None = None
    """The profile's expiry deadline as stored with its recent ids (``None``: none stored,
    the commit refreshes the TTL)."""


class BatchReads(StoreCore):
    """Reads the profiles an event batch needs (part of `ProfileStore`)."""

    async def _read(
        self, events: Sequence[NormalizedEvent], pending: Sequence[int]
    ) -> tuple[dict[str, Loaded], dict[str, list[int]]]:
        """Round trip 1 (and 1b for aliased visitor ids): profiles, versions, seen ids."""
        by_visitor: dict[str, list[int]] = {}
        for index in pending:
            by_visitor.setdefault(events[index].visitor_id, []).append(index)

        ids_of = {
            visitor_id: [events[i].event_id for i in indexes if events[i].event_id]
            for visitor_id, indexes in by_visitor.items()
        }
        replies = await self._read_visitors(ids_of)
        direct: dict[str, Loaded] = {}  # each visitor id's own profile, aliased or not
        survivor_of: dict[str, str] = {}
        for visitor_id, reply in zip(ids_of, replies, strict=True):
            alias, raw_state, raw_version, followed = reply[0], reply[1], reply[2], reply[3]
            seen, expires_ms = _seen(reply[4], reply[5] if len(reply) > 5 else None)
            state, version = parse_profile((raw_state, raw_version))
            direct[visitor_id] = Loaded(
                visitor_id,
                state,
                version,
                seen,
                followed=int(followed) == 1,
                expires_ms=expires_ms,
            )
            survivor_of[visitor_id] = as_text(alias) if alias else visitor_id

        survivors = {s for v, s in survivor_of.items() if s != v}
        loaded: dict[str, Loaded] = {}
        for _ in range(MAX_LINK_HOPS):
            if not survivors:
                break
            loaded, moved = await self._read_survivors(events, by_visitor, survivor_of, survivors)
            if not moved:
                break
            # A survivor is itself stitched (frozen, or merged away): follow it.
            survivor_of = {v: moved.get(s, s) for v, s in survivor_of.items()}
            survivors = {s for v, s in survivor_of.items() if s != v}
        for visitor_id, survivor in survivor_of.items():
            if survivor == visitor_id:
                continue
            if survivor not in loaded or loaded[survivor].state is None:
                # A stale alias (its survivor expired): the visitor id stands for itself.
                survivor_of[visitor_id] = visitor_id
            else:
                # Event ids seen on the visitor id's own profile before it was stitched
                # still count: a retried event is not applied twice.
                loaded[survivor].seen.update(direct[visitor_id].seen)
                if direct[visitor_id].state is not None:
                    loaded[survivor].frozen.append(visitor_id)
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
        event ids), in order: one script call per partition, all in one pipeline (run again
        if Redis had lost the script)."""
        by_partition: dict[int, list[str]] = {}
        for visitor_id in ids_of:
            by_partition.setdefault(self._layout.keys_for(visitor_id).partition, []).append(
                visitor_id
            )
        replies: list[Any] = []
        for _ in range(2):
            async with self._client.pipeline(transaction=False) as pipe:
                for visitor_ids in by_partition.values():
                    script_keys: list[str] = []
                    for visitor_id in visitor_ids:
                        pkeys = self._layout.keys_for(visitor_id)
                        script_keys += [
                            pkeys.alias(visitor_id),
                            pkeys.profile(visitor_id),
                            pkeys.dedup(visitor_id),
                            pkeys.tracing(visitor_id),
                        ]
                    flags = ["1" if ids_of[v] else "0" for v in visitor_ids]
                    READ_VISITOR_SCRIPT.queue(pipe, script_keys, flags)
                replies = await self._execute(pipe)
            if not any(is_noscript(r) for r in replies):
                break  # else `_execute` has just loaded the scripts again
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        reply_of = {
            visitor_id: one
            for visitor_ids, reply in zip(by_partition.values(), replies, strict=True)
            for visitor_id, one in zip(visitor_ids, reply, strict=True)
        }
        return [reply_of[visitor_id] for visitor_id in ids_of]

    async def _read_survivors(
        self,
        events: Sequence[NormalizedEvent],
        by_visitor: dict[str, list[int]],
        survivor_of: dict[str, str],
        survivors: set[str],
    ) -> tuple[dict[str, Loaded], dict[str, str]]:
        """Round trip 1b: the profiles aliased visitor ids point to, with every event id that
        may land on them; and the survivors that link on (frozen by a stitch, or merged away
        with an alias of their own) to where they lead."""
        ordered = sorted(survivors)
        ids_of: dict[str, list[str]] = {s: [] for s in ordered}
        for visitor_id, indexes in by_visitor.items():
            survivor = survivor_of[visitor_id]
            if survivor in ids_of:
                ids_of[survivor] += [events[i].event_id for i in indexes if events[i].event_id]
        async with self._client.pipeline(transaction=False) as pipe:
            for profile_id in ordered:
                pkeys = self._layout.keys_for(profile_id)
                pipe.hmget(pkeys.profile(profile_id), ["s", "v", "f", "d"])
                pipe.get(pkeys.alias(profile_id))
                if ids_of[profile_id]:
                    # Used only where the hash has no field d (see recent_ids).
                    pipe.zrange(pkeys.dedup(profile_id), 0, -1, withscores=True)
            replies = await self._execute(pipe)
        raise_errors(replies)
        loaded: dict[str, Loaded] = {}
        moved: dict[str, str] = {}
        at = 0
        for profile_id in ordered:
            state, version = parse_profile(replies[at])
            frozen, recent = replies[at][2:4]
            alias = replies[at + 1]
            at += 2
            if frozen:
                moved[profile_id] = as_text(frozen)
            elif state is None and alias and as_text(alias) != profile_id:
                moved[profile_id] = as_text(alias)
            scored = None
            if ids_of[profile_id]:
                scored = replies[at]
                at += 1
            seen, expires_ms = _seen(recent, scored)
            loaded[profile_id] = Loaded(profile_id, state, version, seen, expires_ms=expires_ms)
        return loaded, moved


def _seen(recent: Any, scored: Any) -> tuple[dict[str, float], int | None]:
    """The recent event ids of a profile as read and its expiry deadline: its field ``d``,
    else its sorted set (a profile written before the field existed, or the ids a
    stitched-away profile left; no deadline)."""
    if recent:
        return recent_ids.decode(recent)
    return (recent_ids.from_scored(scored) if scored else {}), None
