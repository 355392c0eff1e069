"""The one retry policy of both services: capped exponential backoff with full jitter.

A :class:`Backoff` names a policy (first ceiling and cap); the delay before retry ``n`` is
uniform in ``[0, min(cap, initial * 2**(n-1))]`` (tenacity's ``wait_random_exponential``),
so many retriers spread out instead of hitting Redis or Braze in the same instant.

- :func:`retrying` runs a block with tenacity (bounded or forever), logging each failed
  attempt once;
- :class:`FailureBackoff` is the same policy for long-running loops that count their
  consecutive failures themselves (read loops, forwarders);
- the named policies below are the only ones the services use.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import tenacity
from tenacity.wait import wait_random_exponential

__all__ = [
    "BRAZE_DELIVERY",
    "CAS_CONFLICT",
    "REDIS_LOOP",
    "REDIS_RECORD",
    "REDIS_STARTUP",
    "Backoff",
    "FailureBackoff",
    "RetryLog",
    "retrying",
]

RetryLog = Callable[[int, BaseException, float], None]
"""Called once per failed attempt with (attempt number, error, delay before the next)."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter.

    Attributes:
        initial_s: Ceiling of the first delay (retry 1).
        cap_s: Largest ceiling of any delay.
    """

    initial_s: float
    cap_s: float

    def wait(self) -> wait_random_exponential:
        """The tenacity wait strategy of this policy."""
        return wait_random_exponential(multiplier=self.initial_s, max=self.cap_s)

    def ceiling(self, retry: int) -> float:
        """The largest delay before retry number ``retry`` (1-based)."""
        return float(min(self.cap_s, self.initial_s * 2 ** max(0, retry - 1)))

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """A jittered delay before retry number ``retry`` (1-based)."""
        return (rng or random).uniform(0.0, self.ceiling(retry))


#: Redis at start-up: retried forever, at most 5 s apart.
REDIS_STARTUP = Backoff(initial_s=0.1, cap_s=5.0)
#: A transient Redis error inside a background loop (read, claim, record).
REDIS_LOOP = Backoff(initial_s=0.1, cap_s=5.0)
#: Recording delivery results while Redis is briefly away (the worker holds them meanwhile,
#: so it retries often; bounded by the worker's ``record_retry_s``).
REDIS_RECORD = Backoff(initial_s=0.05, cap_s=1.0)
#: Braze delivery (the retry schedule persisted with each action; attempts and age are the
#: connector's ``max_attempts`` / ``max_age_s``).
BRAZE_DELIVERY = Backoff(initial_s=0.5, cap_s=60.0)
#: A compare-and-set that found the profile changed under it: retried quickly.
CAS_CONFLICT = Backoff(initial_s=0.002, cap_s=0.05)


def retrying(
    policy: Backoff,
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    attempts: int | None = None,
    give_up_on: Callable[[BaseException], bool] | None = None,
    log: RetryLog | None = None,
) -> tenacity.AsyncRetrying:
    """A tenacity ``AsyncRetrying`` for ``async for attempt in retrying(...): with attempt:``.

    Args:
        policy: The backoff between attempts.
        retry_on: Exceptions that are retried; any other propagates at once.
        attempts: Attempts before the last error is re-raised; ``None`` retries forever.
        give_up_on: Errors of ``retry_on`` that will not heal (re-raised at once).
        log: Called once per failed attempt with (attempt number, error, next delay).
    """

    def should_retry(error: BaseException) -> bool:
        return isinstance(error, retry_on) and not (give_up_on and give_up_on(error))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if log is not None and state.outcome is not None:
            error = state.outcome.exception()
            if error is not None:
                delay = state.next_action.sleep if state.next_action else 0.0
                log(state.attempt_number, error, delay)

    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(should_retry),
        wait=policy.wait(),
        stop=tenacity.stop_never if attempts is None else tenacity.stop_after_attempt(attempts),
        before_sleep=before_sleep,
        reraise=True,
    )


@dataclass
class FailureBackoff:
    """The policy for a loop that goes on after failures: sleep longer after each one.

    ``await failed()`` after a failed round, ``succeeded()`` after a good one.
    """

    policy: Backoff = REDIS_LOOP
    failures: int = field(default=0, init=False)

    def next_delay(self) -> float:
        """Count one more failure and return the jittered delay before the next round."""
        self.failures += 1
        return self.policy.delay(self.failures)

    async def failed(self) -> None:
        """Count one more failure and sleep before the next round."""
        await asyncio.sleep(self.next_delay())

    def succeeded(self) -> None:
        """Reset the count (the next failure waits the shortest again)."""
        self.failures = 0
