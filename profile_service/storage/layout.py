"""How visitors map to partitions and keys, plus the partition-count guard and the clock.

The partition count is part of the dataset (see `service_common.keys`): every replica of
both services must use the one recorded in ``META_PARTITIONS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio

from profile_service.storage.replies import as_text
from service_common import keys
from service_common.redis_toolkit.partitions import PartitionMismatchError, check_partitions

__all__ = ["Clock", "Layout", "PartitionMismatchError", "system_clock_ms"]

Clock = Callable[[], int]
"""Returns the current time in epoch milliseconds."""


def system_clock_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Layout:
    """The partition count of the dataset and the key shapes it implies."""

    partitions: int = keys.DEFAULT_PARTITIONS

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError("partitions must be at least 1")

    def keys_for(self, identifier: str) -> keys.PartitionKeys:
        """The key shapes of the partition ``identifier`` (a visitor or profile id) is in."""
        return keys.partition_keys_for(identifier, self.partitions)

    def all_partitions(self) -> list[keys.PartitionKeys]:
        """The key shapes of every partition, in partition order."""
        return [keys.PartitionKeys(p) for p in range(self.partitions)]

    async def resolve_profile_id(self, client: redis.asyncio.Redis, visitor_id: str) -> str:
        """The profile id a visitor id belongs to: its alias target, or itself."""
        survivor = await client.get(self.keys_for(visitor_id).alias(visitor_id))
        return as_text(survivor) if survivor else visitor_id

    async def check_partitions(self, client: redis.asyncio.Redis) -> None:
        """Record the partition count in a new dataset, or check it against the recorded one.

        Raises:
            PartitionMismatchError: The dataset uses another count (changing it would re-home
                every visitor).
        """
        await check_partitions(client, keys.META_PARTITIONS, self.partitions, "visitor")
