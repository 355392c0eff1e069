"""Retry timing: exponential backoff with full jitter, and the waits Braze's headers ask for."""

from __future__ import annotations

import random
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from dispatch_service.braze.connector import BrazeConnector
from service_common.redis_toolkit.retry import BRAZE_DELIVERY, Backoff

#: ``X-RateLimit-Reset`` above this is an epoch second, below it a count of seconds: Braze
#: documents both readings (reference §1.2), and no wait is anywhere near 10^9 seconds.
_EPOCH_THRESHOLD = 1_000_000_000
#: Longest wait taken from a header; a bogus value must not park actions for days.
MAX_HEADER_WAIT_S = 3600.0


def backoff_delay(
    attempt: int,
    base: float = BRAZE_DELIVERY.initial_s,
    cap: float = BRAZE_DELIVERY.cap_s,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): the shared policy
    (full jitter, uniform in ``[0, min(cap, base * 2**(attempt-1))]``), so that retries of
    many actions spread out instead of landing in the same rate-limit window."""
    return Backoff(base, cap).delay(attempt, rng)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def retry_after_from_headers(headers: Mapping[str, str], now: float) -> float | None:
    """The wait a 429 response asks for, in seconds, or ``None`` if it names none.

    Order: ``X-Ratelimit-Retry-After`` (Braze's documented 429 header), ``Retry-After``
    (seconds or an HTTP date), then ``X-RateLimit-Reset`` (epoch seconds or seconds left).

    Args:
        headers: Response headers (case-insensitive mapping, e.g. aiohttp's).
        now: Current epoch seconds.
    """
    wait = _seconds(headers.get("X-Ratelimit-Retry-After"))
    if wait is None:
        raw = headers.get("Retry-After")
        wait = _seconds(raw)
        if wait is None and raw:
            try:
                wait = max(0.0, parsedate_to_datetime(raw).timestamp() - now)
            except (TypeError, ValueError):
                wait = None
    if wait is None:
        reset = _seconds(headers.get("X-RateLimit-Reset"))
        if reset is not None:
            wait = max(0.0, reset - now) if reset > _EPOCH_THRESHOLD else reset
    return None if wait is None else min(wait, MAX_HEADER_WAIT_S)


def next_retry_delay(
    connector: BrazeConnector,
    attempts: int,
    age_s: float,
    retry_after_s: float | None,
    rng: random.Random | None = None,
) -> float | None:
    """When to try an action again after a RETRY outcome, or ``None`` to dead-letter it.

    Args:
        connector: Supplies ``max_attempts`` and ``max_age_s``.
        attempts: Attempts made so far (including the one that just failed).
        age_s: Seconds since the action was accepted.
        retry_after_s: The result's ``retry_after_s`` (Braze's wait), if any.
    """
    if attempts >= connector.max_attempts:
        return None
    delay = retry_after_s if retry_after_s is not None else backoff_delay(attempts, rng=rng)
    if age_s + delay > connector.max_age_s:
        return None
    return delay
