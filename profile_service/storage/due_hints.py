"""When each partition can next have something due: lets a poller skip idle partitions.

The background pollers (visit sweeper, time re-evaluation) used to ask every partition,
every interval, for its due entries: 768 commands a second for the sweeper alone, parsed in
the service's event loop even when nothing was due. A hint per partition says when polling
it can find something:

- the earliest entry it held when last polled (that one is due then at the latest), and
- ``gap_ms`` after that poll: a lower bound, from the definitions, on how far in the future
  an entry written after the poll (by any replica) is due, e.g. the visit timeout: a visit
  started after the poll cannot end earlier than that;
- and in any case ``idle_poll_ms`` after the poll: entries the bound does not cover (events
  dated in the past, a definitions change on another replica, clock skew between replicas)
  wait at most that long.

Polls come a random 0-50% early, so that partitions polled together drift apart. A
partition that had something due is polled again at the next interval; a restart starts
with every partition due, so nothing is missed across restarts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["DueHints"]

NEVER = float("inf")


class DueHints:
    """Per-partition "poll no earlier than" instants (epoch milliseconds).

    Args:
        partitions: The partitions, in the order `due` lists them.
        idle_poll_ms: Longest time a partition goes unpolled.
    """

    def __init__(self, partitions: Sequence[int], idle_poll_ms: int) -> None:
        self._order = list(partitions)
        self._idle_poll_ms = idle_poll_ms
        self._next: dict[int, float] = dict.fromkeys(self._order, 0.0)

    def due(self, now_ms: int) -> list[int]:
        """The partitions that may have something due at ``now_ms``."""
        return [p for p in self._order if self._next[p] <= now_ms]

    def polled(self, partition: int, now_ms: int, earliest_ms: float, gap_ms: float) -> None:
        """Record a poll at ``now_ms`` that found nothing due; ``earliest_ms`` is when its
        earliest entry comes due (`NEVER`: none), ``gap_ms`` the bound on new entries."""
        # Jitter (earlier is always safe) spreads the polls of partitions polled together.
        wait = min(gap_ms, self._idle_poll_ms) * random.uniform(0.5, 1.0)
        self._next[partition] = min(earliest_ms, now_ms + wait)

    def settle(
        self, polled: Sequence[int], earliest_ms: Sequence[float], now_ms: int, gap_ms: float
    ) -> list[int]:
        """Record a poll at ``now_ms`` of the ``polled`` partitions, whose earliest entries
        come due at ``earliest_ms`` (`NEVER`: none), and return those with something due now:
        they are polled again at the next interval, until a poll finds nothing due; the
        others wait as :meth:`polled` says."""
        due: list[int] = []
        for partition, earliest in zip(polled, earliest_ms, strict=True):
            if earliest <= now_ms:
                due.append(partition)
                self.poll_again(partition)
            else:
                self.polled(partition, now_ms, earliest, gap_ms)
        return due

    def poll_again(self, partition: int) -> None:
        """Poll ``partition`` at the next interval (it had due entries)."""
        self._next[partition] = 0.0

    def reset(self) -> None:
        """Poll every partition at the next interval (e.g. the definitions changed)."""
        self._next = dict.fromkeys(self._order, 0.0)
