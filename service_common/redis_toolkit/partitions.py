"""The partition-count guard: a dataset keeps the partition count it was created with.

Both services spread their keys over hash-tagged partitions; changing the count would
re-home every visitor (profile) or hide every queued entry of a re-homed partition
(dispatch). The first replica records its count; every later one checks against it.
"""

from __future__ import annotations

from redis.asyncio import Redis

__all__ = ["PartitionMismatchError", "check_partitions"]


class PartitionMismatchError(ValueError, RuntimeError):
    """The dataset was created with another partition count than this replica's."""


async def check_partitions(redis: Redis, key: str, partitions: int, what: str) -> None:
    """Record ``partitions`` under ``key`` in a new dataset, or check it against the record.

    Args:
        redis: The dataset.
        key: Where the count is recorded (a ``service_common.keys`` constant).
        partitions: This replica's count.
        what: The data it partitions, for the message (``"visitor"``, ``"dispatch"``).

    Raises:
        PartitionMismatchError: The dataset uses another count.
    """
    await redis.set(key, str(partitions), nx=True)
    raw = await redis.get(key)
    recorded = raw.decode() if isinstance(raw, bytes) else raw
    if recorded is not None and recorded != str(partitions):
        raise PartitionMismatchError(
            f"this Redis holds {what} data for {recorded} partitions, not {partitions} "
            "(the partition count is fixed for the life of a dataset)"
        )
