"""Redis errors that heal on their own, and what the dispatch service does about them.

On Redis Cluster two everyday events make commands fail for a short while although nothing is
wrong with the request:

* a **failover**: the dead master's connections are refused and its slots answer
  ``CLUSTERDOWN`` until a replica is promoted (redis-py then refreshes its slot map);
* a **slot migration** (resharding): a script whose keys are split between the two nodes
  gets ``TRYAGAIN``, and redis-py gives up after its redirect budget with
  ``ClusterError("TTL exhausted.")``. Even a one-key command on a key already moved can end
  so: redis-py's asyncio cluster client sends ``ASKING`` as a command of its own, on any
  pooled connection of the target, so with concurrent commands the redirected command often
  lands on another connection and bounces back (``MOVED``) until the slot has moved.

Intake retries such failures for a few seconds (:data:`INTAKE_RETRY_S`); the RPCs answer
``UNAVAILABLE`` (retry later) when they last longer, never ``INTERNAL``
(:func:`unavailable_on_transient`). The background loops retry them with their backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as rex

from service_common.errors import Unavailable
from service_common.redis_toolkit.replication import WaitPolicy
from service_common.redis_toolkit.retry import REDIS_RECORD, FailureBackoff
from service_common.redis_toolkit.scripts import ScriptCall, run_scripts_settled

__all__ = [
    "INTAKE_RETRY_S",
    "TRANSIENT_REDIS_ERRORS",
    "TransientLog",
    "is_transient",
    "run_scripts_retrying",
    "unavailable_on_transient",
]

TRANSIENT_REDIS_ERRORS: tuple[type[BaseException], ...] = (
    rex.ConnectionError,  # a node down or restarting (also OSError-based refusals below)
    rex.TimeoutError,
    rex.ClusterError,  # CLUSTERDOWN, MASTERDOWN, and "TTL exhausted" around a moving slot
    rex.TryAgainError,  # a multi-key script over a slot that is half migrated
    rex.SlotNotCoveredError,  # a slot with no master for a moment (failover)
    rex.RedisClusterUnreachableError,  # every known node refused during a topology refresh
    OSError,
)
"""Errors after which the same command succeeds again once the cluster settled."""

INTAKE_RETRY_S = 5.0
"""How long SubmitActions and SyncCohort retry a transient failure before they answer
UNAVAILABLE: long enough for a slot migration of a few thousand keys, short enough for a
caller's deadline."""


def is_transient(error: object) -> bool:
    """Whether ``error`` (an exception, or a pipeline reply) heals with time."""
    return isinstance(error, TRANSIENT_REDIS_ERRORS) and not isinstance(
        error, rex.AuthenticationError
    )


@contextmanager
def unavailable_on_transient() -> Iterator[None]:
    """Turn a transient Redis failure into ``UNAVAILABLE`` (the caller may retry)."""
    try:
        yield
    except Exception as exc:
        if not is_transient(exc):
            raise
        raise Unavailable(
            "storage is temporarily unavailable (failover or resharding); retry",
            reason="STORAGE_UNAVAILABLE",
            retry_delay=1.0,
        ) from exc


async def run_scripts_retrying(
    redis: aioredis.Redis,
    calls: Sequence[ScriptCall],
    *,
    within_s: float,
    wait: WaitPolicy | None = None,
) -> list[Any]:
    """Run ``calls`` in one pipeline; send again (alone) those that failed transiently, with
    the shared backoff, until they succeed or ``within_s`` has passed.

    Only the failed calls are repeated, so a call that succeeded is never run twice, except
    when a whole pipeline failed (a node unreachable): other nodes may have run their calls,
    which are then run again. Callers' scripts are idempotent for that reason.

    ``wait``: as for :func:`~service_common.redis_toolkit.scripts.run_scripts` (replicas must
    confirm the writes).

    Raises:
        The first non-transient error at once; the transient one after ``within_s``.
    """
    results: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    deadline = time.monotonic() + within_s
    backoff = FailureBackoff(REDIS_RECORD)
    while todo:
        try:
            settled = await run_scripts_settled(redis, [calls[i] for i in todo], wait=wait)
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() >= deadline:
                raise
            await backoff.failed()
            continue
        for i, result in zip(todo, settled, strict=True):
            results[i] = result
            if isinstance(result, Exception) and not is_transient(result):
                raise result
        todo = [i for i in todo if isinstance(results[i], Exception)]
        if todo:
            if time.monotonic() >= deadline:
                raise results[todo[0]]
            await backoff.failed()
    return results


class TransientLog:
    """One warning per ``every_s`` for a transient failure that a loop meets every round
    (a slot migration can last seconds; a line per 100 ms round would bury the log)."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0) -> None:
        self._logger = logger
        self._every_s = every_s
        self._last = -every_s

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last >= self._every_s:
            self._last = now
            self._logger.warning(message, *args, stacklevel=2)
