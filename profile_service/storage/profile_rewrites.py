"""Background rewrites of stored profiles (visit ends, re-evaluations): read a set of
profiles, compute their writes, then commit them with the same compare-and-set as an event
and correct their schedule entries in one pipeline.

A schedule entry (``visits_due``, ``reevaluate_due``) is a sorted-set member per profile;
`FIX_VISIT_DUE_SCRIPT` sets it to a new time, or removes it, only if the profile still has
the version the decision was made on, so a concurrent commit is never overridden.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from profile_service.engine.state import ProfileState
from profile_service.storage.commit import ProfileWrite, queue_commits
from profile_service.storage.store_core import (
    FIX_VISIT_DUE_SCRIPT,
    StoreCore,
    parse_profile,
    raise_errors,
)
from service_common.keys import PartitionKeys

__all__ = ["DueFix", "ProfileRewrites"]


@dataclass(frozen=True)
class DueFix:
    """Set a profile's schedule entry to ``due_ms`` (None: remove it), if its version is
    still ``version``."""

    profile_id: str
    version: str
    due_ms: int | None


class ProfileRewrites(StoreCore):
    """Reads and commits of background rewrites (part of `ProfileStore`)."""

    async def _read_profiles(
        self, profile_ids: Sequence[str], *, tracing: bool = False
    ) -> list[tuple[ProfileState | None, str, bool | None]]:
        """Each profile's state (None if absent), version token and, with ``tracing``,
        whether a ``StreamTrace`` follows it (``None``: not read), in one round trip."""
        async with self._client.pipeline(transaction=False) as pipe:
            for profile_id in profile_ids:
                pkeys = self._layout.keys_for(profile_id)
                pipe.hmget(pkeys.profile(profile_id), ["s", "v"])
                if tracing:
                    pipe.exists(pkeys.tracing(profile_id))
            replies = await self._execute(pipe)
        raise_errors(replies)
        if not tracing:
            return [(*parse_profile(reply), None) for reply in replies]
        return [
            (*parse_profile(reply), int(followed) == 1)
            for reply, followed in zip(replies[::2], replies[1::2], strict=True)
        ]

    async def _commit_rewrites(
        self,
        writes: Sequence[ProfileWrite],
        fixes: Sequence[DueFix],
        schedule: Callable[[PartitionKeys], str],
    ) -> list[bool]:
        """Every write's compare-and-set, then every fix of the ``schedule`` entry, in one
        pipeline; which writes committed (a loser is re-read and recomputed by the caller).

        A fix that loses its compare-and-set changes nothing: the commit that beat it wrote
        its own entry, which brings the profile back when it is due. A NOSCRIPT reply (a
        node that lost the scripts) counts as lost; the scripts are loaded again for the
        retry."""
        if not writes and not fixes:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            queued = queue_commits(pipe, writes)
            for fix in fixes:
                pkeys = self._layout.keys_for(fix.profile_id)
                due = "" if fix.due_ms is None else str(fix.due_ms)
                FIX_VISIT_DUE_SCRIPT.queue(
                    pipe,
                    [pkeys.profile(fix.profile_id), schedule(pkeys)],
                    [fix.version, fix.profile_id, due],
                )
            replies = await self._execute(pipe)
        committed = queued.committed(replies)
        raise_errors(replies[queued.commands :])
        if self._on_outbox_write is not None and any(
            done and write.outbox_entries > 0 for write, done in zip(writes, committed, strict=True)
        ):
            self._on_outbox_write()
        return committed
