"""The audience reconciler: removes audience members whose profile expired by retention.

A profile that expires (its TTL, refreshed by every event, runs out) disappears without any
code running, so its audience memberships would linger. This reconciler scans the audience
sets of the current definitions partition by partition and removes members whose profile
key is gone. The removal re-checks the profile inside a script (``remove_if_gone.lua``) so
that a profile re-created in the meantime keeps its membership.

It runs rarely (hourly by default): retention is measured in months, and an expired member
only inflates audience sizes until the next pass. Several replicas may run it; the work is
idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio
import redis.exceptions

from profile_service.definitions.model import CompiledDefinitions
from profile_service.storage.background import BackgroundLoop
from profile_service.storage.layout import Layout
from profile_service.storage.lua import load_scripts, storage_script
from profile_service.storage.replies import as_text
from service_common.keys import PartitionKeys
from service_common.redis import REDIS_FAILURES

__all__ = ["AudienceReconciler"]

logger = logging.getLogger(__name__)

REMOVE_IF_GONE_SCRIPT = storage_script("remove_if_gone")


class AudienceReconciler:
    """Periodically drops audience members whose profile no longer exists.

    Args:
        client: The Redis client.
        layout: The dataset's partitioning.
        definitions: Returns the current compiled definitions (which audiences to scan).
        interval_s: Pause between passes.
        scan_count: ``SSCAN COUNT`` hint.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        layout: Layout,
        definitions: Callable[[], CompiledDefinitions],
        *,
        interval_s: float = 3600.0,
        scan_count: int = 500,
    ) -> None:
        self._client = client
        self._layout = layout
        self._definitions = definitions
        self._interval_s = interval_s
        self._scan_count = scan_count
        self._loop = BackgroundLoop("audience-reconciler")

    async def reconcile_once(self) -> int:
        """One full pass; returns the number of memberships removed."""
        await load_scripts(self._client, [REMOVE_IF_GONE_SCRIPT])
        audience_ids = list(self._definitions().audiences)
        removed = 0
        for pkeys in self._layout.all_partitions():
            for audience_id in audience_ids:
                key = pkeys.audience(audience_id)
                cursor = 0
                while True:
                    cursor, members = await self._client.sscan(key, cursor, count=self._scan_count)
                    removed += await self._remove_gone(pkeys.partition, key, members)
                    if int(cursor) == 0:
                        break
        if removed:
            logger.info("removed %d audience memberships of expired profiles", removed)
        return removed

    async def _remove_gone(self, partition: int, key: str, members: list[Any]) -> int:
        if not members:
            return 0
        pkeys = PartitionKeys(partition)
        profile_ids = [as_text(m) for m in members]
        async with self._client.pipeline(transaction=False) as pipe:
            for profile_id in profile_ids:
                pipe.exists(pkeys.profile(profile_id))
            exists = await pipe.execute()
        gone = [p for p, e in zip(profile_ids, exists, strict=True) if not e]
        if not gone:
            return 0
        async with self._client.pipeline(transaction=False) as pipe:
            for profile_id in gone:
                REMOVE_IF_GONE_SCRIPT.queue(pipe, [pkeys.profile(profile_id), key], [profile_id])
            results = await pipe.execute()
        return sum(int(r) for r in results)

    async def run(self) -> None:
        """Reconcile every ``interval_s`` until `stop`."""
        while not self._loop.stopping:
            try:
                await self.reconcile_once()
            except REDIS_FAILURES as exc:
                logger.warning("audience reconciliation failed (%s)", type(exc).__name__)
            await self._loop.pause(self._interval_s)

    def start(self) -> None:
        """Start reconciling in a background task."""
        self._loop.start(self.run)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop after the current pass (cancelled after ``grace_s``)."""
        await self._loop.stop(grace_s)
