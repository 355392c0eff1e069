"""Rate limits shared by every replica: a sliding-log limiter and a shared pause, in Redis.

Why not the ``limits`` package: its moving-window Redis strategy stamps entries with each
client's own clock (``time.time()`` passed as an argument), so replicas with skewed clocks can
jointly exceed the budget; it also opens its own Redis connection pool, builds key names we
cannot hash-tag, and only takes whole-second windows. Here one Lua script per grant decides with
the Redis server's clock (``TIME``), takes its keys through ``KEYS`` (``keys.rate_limit_log`` /
``keys.rate_limit_pause``, which share a hash tag) and checks the shared pause in the same step.

Guarantee: for each (connector, group), grants in any interval of ``window`` are at most
``requests``, across all replicas, measured on the Redis clock. The window is the configured
one plus ``rate_margin_s``, so requests that reach Braze with different network delays still
fit Braze's window.
"""

from __future__ import annotations

import asyncio
import random
import time

from redis.asyncio import Redis

from dispatch_service.braze.connector import BrazeConnector
from dispatch_service.braze.endpoints import RateGroup
from dispatch_service.braze.lua import LuaScript
from service_common import keys

# KEYS[1] grant log (list, newest first), KEYS[2] pause-until key.
# ARGV[1] requests per window, ARGV[2] window in ms.
# Returns {1, 0} when granted, else {0, ms to wait}.
_ACQUIRE = LuaScript("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return {0, paused - now} end
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local oldest = redis.call('LINDEX', KEYS[1], limit - 1)
if oldest and now - tonumber(oldest) < window then
  return {0, tonumber(oldest) + window - now}
end
redis.call('LPUSH', KEYS[1], now)
redis.call('LTRIM', KEYS[1], 0, limit - 1)
redis.call('PEXPIRE', KEYS[1], window * 2)
return {1, 0}
""")

# KEYS[1] pause-until key. ARGV[1] pause in ms. Extends, never shortens, a running pause.
# Returns the ms the pause still lasts.
_PAUSE = LuaScript("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + ms > current then
  redis.call('SET', KEYS[1], now + ms, 'PX', ms)
  return ms
end
return current - now
""")

# KEYS[1] pause-until key. Returns the ms the pause still lasts (0 when not paused).
_PAUSED_FOR = LuaScript("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current > now then return current - now end
return 0
""")

#: Random extra wait so that waiters released together do not all hit Redis at once.
_WAKE_JITTER_S = 0.005


class Throttled(Exception):
    """No request slot within the allowed wait."""

    def __init__(self, wait_s: float | None) -> None:
        super().__init__(
            "rate limit: no slot within the allowed wait"
            if wait_s is None
            else f"rate limit: next slot in {wait_s:.1f}s"
        )
        self.wait_s = wait_s
        """Seconds until the next slot, if known."""


class SharedRateLimiter:
    """The Braze request budgets of one connector, shared through Redis.

    One coroutine per process and group polls Redis at a time (a local lock), so waiting
    senders cost one Redis call per grant, not one per waiter.
    """

    def __init__(self, redis: Redis, connector: BrazeConnector) -> None:
        self._redis = redis
        self._connector = connector
        self._locks = {group: asyncio.Lock() for group in RateGroup}

    def _keys(self, group: RateGroup) -> list[str]:
        return [
            keys.rate_limit_log(self._connector.id, group.value),
            keys.rate_limit_pause(self._connector.id, group.value),
        ]

    def _window_ms(self, group: RateGroup) -> int:
        rate = self._connector.rate_for(group)
        return max(1, round((rate.per_seconds + self._connector.rate_margin_s) * 1000))

    async def acquire(self, group: RateGroup, max_wait_s: float | None = None) -> float:
        """Wait until a request of ``group`` may be sent, and take that slot.

        Args:
            group: The endpoint group.
            max_wait_s: Give up instead of waiting longer than this (``None``: wait as long
                as it takes). A long shared pause (a 429 asking for minutes, an hourly budget
                spent) should send the actions back to the queue, not hold a worker.

        Returns:
            Seconds spent waiting.

        Raises:
            Throttled: the slot is further away than ``max_wait_s``.
            redis.exceptions.RedisError: Redis is unreachable (never sends without a slot).
        """
        started = time.monotonic()
        deadline = None if max_wait_s is None else started + max_wait_s
        rate = self._connector.rate_for(group)
        window = self._window_ms(group)
        lock = self._locks[group]
        try:
            async with asyncio.timeout(max_wait_s):
                await lock.acquire()
        except TimeoutError:
            raise Throttled(None) from None
        try:
            while True:
                granted, wait_ms = await _ACQUIRE.run(
                    self._redis, self._keys(group), [rate.requests, window]
                )
                if int(granted):
                    return time.monotonic() - started
                wait_s = int(wait_ms) / 1000
                if deadline is not None and time.monotonic() + wait_s > deadline:
                    raise Throttled(wait_s)
                await asyncio.sleep(wait_s + random.uniform(0, _WAKE_JITTER_S))
        finally:
            lock.release()

    async def pause(self, group: RateGroup, seconds: float) -> float:
        """Hold back every replica's requests of ``group`` for ``seconds`` (e.g. after a 429).

        A longer running pause is kept. Returns the seconds the pause now lasts.
        """
        ms = max(1, round(seconds * 1000))
        remaining = await _PAUSE.run(self._redis, [self._keys(group)[1]], [ms])
        return int(remaining) / 1000

    async def paused_for(self, group: RateGroup) -> float:
        """Seconds the shared pause of ``group`` still lasts (0 when not paused)."""
        remaining = await _PAUSED_FOR.run(self._redis, [self._keys(group)[1]], [])
        return int(remaining) / 1000
