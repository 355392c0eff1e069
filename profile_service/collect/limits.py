"""Per-source token buckets (in process) for Collect's requests-per-second limit."""

from __future__ import annotations

import time
from collections.abc import Callable

#: Buckets kept before idle (full) ones are dropped, so many client IPs cannot grow memory.
_MAX_BUCKETS = 10_000


class RateLimiter:
    """``rate`` requests per second per source with a burst of one second's worth (at least 1).

    ``clock`` returns seconds (monotonic); tests inject their own.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # source -> (tokens, at)

    def allow(self, source: str) -> bool:
        """Take one token of ``source``'s bucket; ``False`` when it is empty."""
        now = self._clock()
        tokens, at = self._buckets.get(source, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > _MAX_BUCKETS:
            self._drop_full(now)
        return allowed

    def _drop_full(self, now: float) -> None:
        for source, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * self._rate >= self._capacity:
                del self._buckets[source]
