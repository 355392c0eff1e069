"""Fixed-window rate limiting per endpoint group, plus traffic statistics for assertions."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from braze_sandbox.config import RateLimit

#: Window used for traffic statistics of groups without a configured limit.
_UNLIMITED_STATS_WINDOW = 1.0


@dataclass(frozen=True)
class RateDecision:
    """Outcome of one request against its group's limit; drives the X-RateLimit headers."""

    allowed: bool
    """False means answer 429."""
    limit: int
    """``X-RateLimit-Limit``."""
    remaining: int
    """``X-RateLimit-Remaining`` after this request."""
    reset_at: float
    """Epoch second at which the current window ends."""
    retry_after: int
    """Whole seconds until the window ends (at least 1)."""


@dataclass
class GroupTraffic:
    """What one endpoint group has received so far (every request counts, even 429s)."""

    window_seconds: float
    """Window the ``max_*`` figures are measured over (the group's limit window)."""
    total: int = 0
    """Requests received."""
    rejected: int = 0
    """Requests the limiter answered with 429."""
    max_in_window: int = 0
    """Most requests received within one fixed window (the windows Braze enforces)."""
    max_in_sliding_window: int = 0
    """Most requests received within any interval of ``window_seconds`` (stricter)."""
    _recent: deque[float] = field(default_factory=deque, repr=False)


@dataclass
class _Window:
    start: float
    allowed: int = 0
    received: int = 0


class RateLimiter:
    """Per-group fixed-window limiter.

    Braze resets limits "on the clock", not on a rolling window, so by default a window covers
    ``[k * window, (k + 1) * window)`` in epoch seconds. Requests refused with 429 do not use up
    the budget, but they are counted in the traffic statistics, because a client that sends
    them has still exceeded the limit.
    """

    def __init__(
        self,
        limits: Mapping[str, RateLimit | None],
        alignment: Literal["clock", "first_request"] = "clock",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limits = dict(limits)
        self._alignment = alignment
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._traffic: dict[str, GroupTraffic] = {}

    def limit_for(self, group: str) -> RateLimit | None:
        """The configured limit of ``group`` (``None``: unlimited)."""
        return self._limits.get(group)

    def acquire(self, group: str) -> RateDecision | None:
        """Count one request; returns ``None`` for unlimited groups."""
        now = self._clock()
        limit = self._limits.get(group)
        traffic = self._record_traffic(group, limit, now)
        if limit is None:
            return None
        window = self._current_window(group, limit, now)
        window.received += 1
        traffic.max_in_window = max(traffic.max_in_window, window.received)
        allowed = window.allowed < limit.requests
        if allowed:
            window.allowed += 1
        else:
            traffic.rejected += 1
        return self._decision(limit, window, now, allowed)

    def peek(self, group: str) -> RateDecision | None:
        """Current state without counting a request (used for headers on early rejections)."""
        limit = self._limits.get(group)
        if limit is None:
            return None
        now = self._clock()
        return self._decision(limit, self._current_window(group, limit, now), now, True)

    def traffic(self, group: str) -> GroupTraffic:
        """Traffic statistics of ``group`` (zeros if it saw no request)."""
        limit = self._limits.get(group)
        window = limit.window_seconds if limit else _UNLIMITED_STATS_WINDOW
        return self._traffic.get(group, GroupTraffic(window_seconds=window))

    def all_traffic(self) -> dict[str, GroupTraffic]:
        """Statistics of every group that received requests."""
        return dict(self._traffic)

    def reset(self) -> None:
        """Forget windows and statistics."""
        self._windows.clear()
        self._traffic.clear()

    def _record_traffic(self, group: str, limit: RateLimit | None, now: float) -> GroupTraffic:
        traffic = self._traffic.get(group)
        if traffic is None:
            window = limit.window_seconds if limit else _UNLIMITED_STATS_WINDOW
            traffic = self._traffic[group] = GroupTraffic(window_seconds=window)
        traffic.total += 1
        # Sliding maximum: keep the arrival times inside the last window; O(1) amortised.
        recent = traffic._recent
        while recent and recent[0] <= now - traffic.window_seconds:
            recent.popleft()
        recent.append(now)
        traffic.max_in_sliding_window = max(traffic.max_in_sliding_window, len(recent))
        if limit is None:
            traffic.max_in_window = traffic.max_in_sliding_window
        return traffic

    def _current_window(self, group: str, limit: RateLimit, now: float) -> _Window:
        size = limit.window_seconds
        window = self._windows.get(group)
        if self._alignment == "clock":
            start = math.floor(now / size) * size
            if window is None or window.start != start:
                window = self._windows[group] = _Window(start)
        elif window is None or now >= window.start + size:
            window = self._windows[group] = _Window(now)
        return window

    @staticmethod
    def _decision(limit: RateLimit, window: _Window, now: float, allowed: bool) -> RateDecision:
        reset_at = window.start + limit.window_seconds
        return RateDecision(
            allowed=allowed,
            limit=limit.requests,
            remaining=max(0, limit.requests - window.allowed),
            reset_at=reset_at,
            retry_after=max(1, math.ceil(reset_at - now)),
        )
