"""Reads of profiles and audiences, and privacy deletion.

- `ProfileReader.get_profile` follows a visitor id's alias to the surviving profile.
- `ProfileReader.find_by_identity` looks a visitor-ID attribute value up in the identity
  index and confirms that the profile still holds that value, as its attribute or as a value
  of a profile it replaced (the index is written beside, not inside, the profile's atomic
  commit, so it is only trusted once confirmed).
- `ProfileReader.delete_profile` removes the profile (after a stitch: the survivor, which
  stands for every profile it replaced), its dedup ids, trace history, visit entry and
  audience memberships in one script that also queues the deletion's connector actions in
  the outbox; every alias and identity-index entry of the person goes in the same pipeline.
  It does not fire "left audience" actions. Actions already in the outbox are still
  delivered; pending delayed actions are dropped when due (no profile).
- Audience size is one pipelined ``SCARD`` over every partition; members are listed with
  ``SSCAN`` partition by partition behind an opaque page token.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import FiredAction, ProfileState
from profile_service.storage.layout import Layout
from profile_service.storage.lua import storage_script
from profile_service.storage.replies import as_text
from profile_service.storage.state_codec import decode_state
from service_common import keys
from service_common.errors import FieldViolation, InvalidArgument
from service_common.redis_toolkit.replication import WaitPolicy
from service_common.redis_toolkit.scripts import execute_with_scripts

__all__ = ["AudiencePage", "DeletedProfile", "ProfileReader", "StoredProfile"]

DELETE_SCRIPT = storage_script("delete_profile")
DELETE_IF_OWNER_SCRIPT = storage_script("delete_if_owner")

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
_SCAN_WINDOW = 16
"""Partitions scanned per pipeline when listing audience members."""

DeletionActions = Callable[[ProfileState, str], Sequence[FiredAction]]
"""``(state, version token) -> actions`` a deletion queues (e.g. Braze Delete User)."""


def identity_values(defs: CompiledDefinitions, state: ProfileState) -> list[tuple[str, str]]:
    """Every ``(visitor-ID attribute, value)`` that resolves to ``state``'s person: its own
    values and those of the profiles it replaced (conflicting secondary ids included)."""
    found: dict[tuple[str, str], None] = {}
    for attribute_id in defs.visitor_id_attributes:
        value = state.attributes.get(attribute_id)
        if isinstance(value, str) and value:
            found[(attribute_id, value)] = None
    for replaced in state.replaces:
        for attribute_id, value in (replaced.get("identities") or {}).items():
            if isinstance(value, str) and value:
                found[(attribute_id, value)] = None
    return list(found)


def holds_identity(state: ProfileState, attribute_id: str, value: str) -> bool:
    """Whether ``value`` of ``attribute_id`` belongs to ``state``'s person."""
    if state.attributes.get(attribute_id) == value:
        return True
    return any(
        (replaced.get("identities") or {}).get(attribute_id) == value for replaced in state.replaces
    )


@dataclass(frozen=True)
class StoredProfile:
    """A profile as stored."""

    profile_id: str
    state: ProfileState
    version: str


@dataclass(frozen=True)
class DeletedProfile:
    """What `ProfileReader.delete_profile` removed."""

    profile_id: str
    visitor_ids: list[str]
    """Every anonymous id that no longer finds a profile."""


@dataclass(frozen=True)
class AudiencePage:
    """One page of audience members."""

    profile_ids: list[str]
    next_page_token: str
    """Empty on the last page."""


@dataclass(frozen=True)
class _Cursor:
    partition: int
    scan_cursor: int
    skip: int
    """Members of the SSCAN call at ``scan_cursor`` already returned on an earlier page."""


def _encode_token(audience_id: str, cursor: _Cursor) -> str:
    doc = {"a": audience_id, "p": cursor.partition, "c": cursor.scan_cursor, "s": cursor.skip}
    raw = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_token(audience_id: str, token: str, partitions: int) -> _Cursor:
    bad = InvalidArgument([FieldViolation("page_token", "is not a token from this listing")])
    try:
        doc: Any = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        cursor = _Cursor(int(doc["p"]), int(doc["c"]), int(doc["s"]))
        same_audience = doc["a"] == audience_id
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad from None
    if not same_audience or not 0 <= cursor.partition < partitions or cursor.skip < 0:
        raise bad
    return cursor


class ProfileReader:
    """Reads, looks up and deletes profiles; reads audience membership.

    Args:
        client: The Redis client.
        layout: The dataset's partitioning.
        wait: Replicas that must confirm a deletion before it is acknowledged (off by
            default; see `service_common.redis_toolkit.replication`).
    """

    def __init__(
        self, client: redis.asyncio.Redis, layout: Layout, *, wait: WaitPolicy | None = None
    ) -> None:
        self._client = client
        self._layout = layout
        self._wait = wait

    async def get_profile(self, visitor_id: str) -> StoredProfile | None:
        """The profile of an anonymous visitor id (following its alias), or ``None``."""
        pkeys = self._layout.keys_for(visitor_id)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.get(pkeys.alias(visitor_id))
            pipe.hmget(pkeys.profile(visitor_id), ["s", "v"])
            alias, own = await pipe.execute()
        if alias and as_text(alias) != visitor_id:
            survivor = as_text(alias)
            found = await self._read(survivor)
            if found is not None:
                return found
        return _stored(visitor_id, own)

    async def _read(self, profile_id: str) -> StoredProfile | None:
        pkeys = self._layout.keys_for(profile_id)
        reply = await self._client.hmget(pkeys.profile(profile_id), ["s", "v"])
        return _stored(profile_id, reply)

    async def find_by_identity(self, attribute_id: str, value: str) -> StoredProfile | None:
        """The profile whose visitor-ID attribute ``attribute_id`` holds ``value``, or None."""
        owner = await self._client.get(
            keys.identity_index(attribute_id, value, self._layout.partitions)
        )
        if not owner:
            return None
        found = await self.get_profile(as_text(owner))
        if found is None or not holds_identity(found.state, attribute_id, value):
            return None  # a stale hint: the profile expired or no longer holds the value
        return found

    async def delete_profile(
        self,
        visitor_id: str,
        defs: CompiledDefinitions,
        actions: DeletionActions | None = None,
    ) -> DeletedProfile | None:
        """Delete the person of ``visitor_id`` and everything linked to it; ``None`` if
        there is no such profile.

        ``defs`` names the audiences (memberships are removed from every defined audience
        and from those the profile records) and the visitor-ID attributes (identity index).
        ``actions`` gives the connector actions the deletion queues, once for the person.
        """
        found = await self.get_profile(visitor_id)
        if found is None:
            return None
        profile_id, state = found.profile_id, found.state
        aliases = sorted({v for v in [*state.visitor_ids, visitor_id] if v != profile_id})
        fired = list(actions(state, found.version)) if actions is not None else []
        # After a Redis restart the scripts go again as EVAL (every step is idempotent).
        await execute_with_scripts(
            self._client,
            lambda pipe: self._queue_delete(pipe, found, aliases, defs, fired),
            wait=self._wait,
        )
        return DeletedProfile(profile_id, [profile_id, *aliases])

    def _queue_delete(
        self,
        pipe: redis.asyncio.client.Pipeline,
        found: StoredProfile,
        aliases: list[str],
        defs: CompiledDefinitions,
        fired: Sequence[FiredAction],
    ) -> None:
        profile_id, state = found.profile_id, found.state
        pkeys = self._layout.keys_for(profile_id)
        audiences = sorted(set(state.audiences) | set(defs.audiences))
        outbox: list[str | bytes] = []
        for action in fired:
            outbox += [action.idempotency_key, action.action.SerializeToString()]
        DELETE_SCRIPT.queue(
            pipe,
            [
                pkeys.profile(profile_id),
                pkeys.dedup(profile_id),
                pkeys.trace(profile_id),
                pkeys.visits_due,
                pkeys.outbox,
                *(pkeys.audience(a) for a in audiences),
            ],
            [profile_id, *outbox],
        )
        for alias in aliases:
            pipe.delete(self._layout.keys_for(alias).alias(alias))
        for attribute_id, value in identity_values(defs, state):
            index = keys.identity_index(attribute_id, value, self._layout.partitions)
            DELETE_IF_OWNER_SCRIPT.queue(pipe, [index], [profile_id])

    async def audience_size(self, audience_id: str) -> int:
        """The number of profiles in an audience (one pipelined SCARD per partition)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for pkeys in self._layout.all_partitions():
                pipe.scard(pkeys.audience(audience_id))
            sizes = await pipe.execute()
        return sum(int(s) for s in sizes)

    async def audience_members(
        self, audience_id: str, page_size: int = DEFAULT_PAGE_SIZE, page_token: str = ""
    ) -> AudiencePage:
        """One page of an audience's members.

        Pages follow ``SSCAN`` semantics: a profile that is a member for the whole listing
        is returned at least once (rarely twice); one that joins or leaves meanwhile may or
        may not be. Page sizes are at most ``page_size`` and may be smaller.

        Raises:
            InvalidArgument: ``page_size`` out of 1..1000 or a token not from this listing.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(
                [FieldViolation("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")]
            )
        partitions = self._layout.partitions
        cursor = (
            _decode_token(audience_id, page_token, partitions) if page_token else _Cursor(0, 0, 0)
        )
        members: list[str] = []
        while cursor.partition < partitions:
            window = range(cursor.partition, min(partitions, cursor.partition + _SCAN_WINDOW))
            need = page_size - len(members)
            async with self._client.pipeline(transaction=False) as pipe:
                for partition in window:
                    scan_from = cursor.scan_cursor if partition == cursor.partition else 0
                    key = keys.PartitionKeys(partition).audience(audience_id)
                    pipe.sscan(key, scan_from, count=max(need, 10))
                replies = await pipe.execute()
            for partition, (next_scan, found) in zip(window, replies, strict=True):
                scanned_from = cursor.scan_cursor if partition == cursor.partition else 0
                skip = cursor.skip if partition == cursor.partition else 0
                fresh = [as_text(m) for m in found][skip:]
                need = page_size - len(members)
                if len(fresh) > need:
                    # This SSCAN step returned more than fits: resume at the same step
                    # next time and skip what this page took.
                    members += fresh[:need]
                    next_cursor = _Cursor(partition, scanned_from, skip + need)
                    return AudiencePage(members, _encode_token(audience_id, next_cursor))
                members += fresh
                next_scan = int(next_scan)
                if next_scan != 0:
                    cursor = _Cursor(partition, next_scan, 0)
                    break
                cursor = _Cursor(partition + 1, 0, 0)
            if len(members) >= page_size and cursor.partition < partitions:
                return AudiencePage(members, _encode_token(audience_id, cursor))
        return AudiencePage(members, "")


def _stored(profile_id: str, reply: Any) -> StoredProfile | None:
    raw_state, raw_version = reply[0], reply[1]
    if raw_state is None:
        return None
    return StoredProfile(
        profile_id,
        decode_state(raw_state),
        as_text(raw_version) if raw_version else "",
    )
