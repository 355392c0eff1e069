"""The commit's entry in the partition's ``reevaluate_due`` index (time-based re-evaluation).

The entry is written in the commit's pipeline, right after the compare-and-set script (same
slot), with ``ZADD LT``: a commit that lost its compare-and-set may leave an entry that is
too early, which only makes the worker look at the profile early (it re-reads, finds
nothing to change and corrects the entry). A profile with no future flip gets no entry; a
stale one is removed by the worker when it comes due.
"""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio

from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import ProfileState
from profile_service.engine.time_dependence import is_time_dependent, next_flip_ms
from service_common.keys import PartitionKeys

__all__ = ["reevaluation_due_writes"]


def reevaluation_due_writes(
    defs: CompiledDefinitions, pkeys: PartitionKeys, final: ProfileState, now_ms: int
) -> list[Callable[[redis.asyncio.client.Pipeline], None]]:
    """The side write recording when ``final`` next needs a time-based re-evaluation."""
    if not is_time_dependent(defs):
        return []
    due = next_flip_ms(defs, final, now_ms)
    if due is None:
        return []
    key, member = pkeys.reevaluate_due, final.profile_id

    def write(pipe: redis.asyncio.client.Pipeline) -> None:
        pipe.zadd(key, {member: due}, lt=True)

    return [write]
