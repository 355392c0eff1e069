"""Rate limits shared by every replica: a sliding window of request slots and a shared pause,
in Redis.

Why not the ``limits`` package: its moving-window Redis strategy stamps entries with each
client's own clock (``time.time()`` passed as an argument), so replicas with skewed clocks can
jointly exceed the budget; it also opens its own Redis connection pool, builds key names we
cannot hash-tag, and only takes whole-second windows. Here one Lua script per grant decides with
the Redis server's clock (``TIME``), takes its keys through ``KEYS`` (``keys.rate_limit_slots``
/ ``keys.rate_limit_pause``, which share a hash tag) and checks the shared pause in the same step.

Guarantee (by construction, not by timing): for each (connector, group), the requests that
reach Braze within any interval of the configured window are at most ``requests``, across all
replicas, however long a replica takes between a grant and its bytes leaving (a busy event
loop, a slow connect). Braze counts a request at some moment between our send and its answer,
so a slot is not stamped with its grant time (the old design, which overshot by one request
whenever a process stalled between grant and send for longer than the margin) but held like a
lease:

* :meth:`SharedRateLimiter.reserve` grants a slot only if fewer than ``requests`` slots are
  held or were released within the last ``window + rate_margin_s``, and records it as *in
  flight* (score: grant time + the longest a request may be in flight);
* :meth:`RateSlot.release`, called once Braze's answer is back, re-stamps the slot with the
  Redis time of that moment, which is after Braze counted the request.

Take any ``requests + 1`` requests and the last of them to be granted, at time G: at G one of
the others was already released at some time R <= G - window, and Braze counted it before R;
the last one reaches Braze after G. So those two arrivals are at least a window apart, and no
interval of one window (sliding, or aligned to the clock as Braze's are) holds ``requests + 1``
of them. Only clock *rates* matter (the Redis host's against Braze's), never clock offsets.

Limits of the guarantee: a slot whose request never got an answer (timeout, connection error,
a crash, a cancelled task) is not released, so it counts as in flight until its lease ends
(``timeout_s`` + :data:`IN_FLIGHT_GRACE_S` after the grant) and then as sent at that moment; a
replica frozen for longer than that between grant and send could still overshoot.
``rate_margin_s`` is no longer needed for the grant-to-send delay; it keeps absorbing what
happens inside Braze (counting at a load balancer, clock drift).

The cost: a slot stays taken for the request's round trip plus one window, so a group's
throughput is ``requests`` per (window + margin + round trip) instead of per (window + margin).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from dispatch_service.braze.connector import BrazeConnector
from dispatch_service.braze.endpoints import RateGroup
from service_common import keys
from service_common.redis_toolkit.scripts import LuaScript

log = logging.getLogger(__name__)

# Times in these scripts are Redis server microseconds; scores are written with %.0f because
# Lua's default number format (%.14g) would round them.
#
# KEYS[1] slots (sorted set), KEYS[2] pause-until key (server ms).
# ARGV[1] requests per window, ARGV[2] window in us, ARGV[3] in-flight lease in us,
# ARGV[4] the new slot's id.
# Returns {1, 0} when granted, else {0, us to wait at least}.
_RESERVE = LuaScript("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0') * 1000
if paused > now then return {0, paused - now} end
local limit, window, hold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local blocker = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  local stamp = tonumber(blocker[2])
  -- Still in flight: its answer comes back at the earliest now, and it counts for a window
  -- from then.
  if stamp > now then stamp = now end
  return {0, stamp + window - now}
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + hold), ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil((window + hold) / 1000) * 2)
return {1, 0}
""")

# KEYS[1] slots. ARGV[1] slot id. Stamps an in-flight slot with the current time (never
# later than its lease end). Returns 1 if re-stamped, 0 if the slot was no longer in flight.
_RELEASE = LuaScript("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stamp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if stamp and tonumber(stamp) > now then
  redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', now), ARGV[1])
  return 1
end
return 0
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

#: Added to ``timeout_s`` for the lease of an in-flight slot: covers the time between the grant
#: and the start of the HTTP request, which the request timeout does not (a busy event loop).
IN_FLIGHT_GRACE_S = 10.0


class Throttled(Exception):
    """No request slot within the allowed wait."""

    def __init__(self, wait_s: float | None) -> None:
        super().__init__(
            "rate limit: no slot within the allowed wait"
            if wait_s is None
            else f"rate limit: next slot in {wait_s:.1f}s"
        )
        self.wait_s = wait_s
        """Seconds until the next slot, if known (a lower bound while slots are in flight)."""


@dataclass
class RateSlot:
    """A granted request slot, counted as in flight until :meth:`release`."""

    waited_s: float
    """Seconds spent waiting for the slot."""
    _redis: Redis
    _slots_key: str
    _id: str

    async def release(self) -> None:
        """Record that the request has been answered, so Braze has counted it by now.

        Call it after the answer arrived, never before the request went out. Not calling it
        (no answer: timeout, connection error) is safe: the slot then counts as in flight
        until its lease ends. A Redis error here is logged, not raised, for the same reason.
        """
        try:
            await _RELEASE.run(self._redis, [self._slots_key], [self._id])
        except RedisError as exc:
            log.warning("could not release a Braze rate-limit slot: %s", type(exc).__name__)


class SharedRateLimiter:
    """The Braze request budgets of one connector, shared through Redis.

    One coroutine per process and group polls Redis at a time (a local lock), so waiting
    senders cost one Redis call per grant, not one per waiter.
    """

    def __init__(
        self,
        redis: Redis,
        connector: BrazeConnector,
        *,
        in_flight_grace_s: float = IN_FLIGHT_GRACE_S,
    ) -> None:
        self._redis = redis
        self._connector = connector
        self._in_flight_grace_s = in_flight_grace_s
        self._locks = {group: asyncio.Lock() for group in RateGroup}

    def _keys(self, group: RateGroup) -> list[str]:
        return [
            keys.rate_limit_slots(self._connector.id, group.value),
            keys.rate_limit_pause(self._connector.id, group.value),
        ]

    def _window_us(self, group: RateGroup) -> int:
        rate = self._connector.rate_for(group)
        return max(1, round((rate.per_seconds + self._connector.rate_margin_s) * 1_000_000))

    def in_flight_lease_s(self) -> float:
        """Longest a slot counts as in flight without being released."""
        return self._connector.timeout_s + self._in_flight_grace_s

    async def reserve(self, group: RateGroup, max_wait_s: float | None = None) -> RateSlot:
        """Wait until a request of ``group`` may be sent, and take that slot.

        Take it as the last step before the request goes out (build and serialise the body
        first), and :meth:`RateSlot.release` it once the answer is back.

        Args:
            group: The endpoint group.
            max_wait_s: Give up instead of waiting longer than this (``None``: wait as long
                as it takes). A long shared pause (a 429 asking for minutes, an hourly budget
                spent) should send the actions back to the queue, not hold a worker.

        Raises:
            Throttled: the slot is further away than ``max_wait_s``.
            redis.exceptions.RedisError: Redis is unreachable (never sends without a slot).
        """
        hold_us = round(self.in_flight_lease_s() * 1_000_000)
        return await self._take(group, max_wait_s, hold_us)

    async def acquire(self, group: RateGroup, max_wait_s: float | None = None) -> float:
        """Take a slot stamped with its grant time (no release); returns seconds waited.

        Weaker than :meth:`reserve`: the requests of ``group`` stay within the limit only if
        every caller sends within ``rate_margin_s`` of its grant. Kept for callers that have
        not moved to :meth:`reserve` yet (the cohort client).
        """
        return (await self._take(group, max_wait_s, 0)).waited_s

    async def _take(self, group: RateGroup, max_wait_s: float | None, hold_us: int) -> RateSlot:
        started = time.monotonic()
        deadline = None if max_wait_s is None else started + max_wait_s
        rate = self._connector.rate_for(group)
        window = self._window_us(group)
        slot_keys = self._keys(group)
        lock = self._locks[group]
        try:
            async with asyncio.timeout(max_wait_s):
                await lock.acquire()
        except TimeoutError:
            raise Throttled(None) from None
        try:
            while True:
                slot_id = secrets.token_hex(8)
                granted, wait_us = await _RESERVE.run(
                    self._redis, slot_keys, [rate.requests, window, hold_us, slot_id]
                )
                if int(granted):
                    waited = time.monotonic() - started
                    return RateSlot(waited, self._redis, slot_keys[0], slot_id)
                wait_s = int(wait_us) / 1_000_000
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
