"""``ActionStore``: the servicer's one entry point to stored actions.

It accepts actions (:meth:`submit`), reads their status (:meth:`get`) and works on dead
letters (:meth:`list_failed`, :meth:`retry_failed`). Delivery lives in
:class:`dispatch_service.worker.DispatchWorker`, which shares the same records and queues.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2
from dispatch_service.metrics import record_suppressed
from dispatch_service.queue import status
from dispatch_service.queue.intake import current_trace_context, plan_submission, read_outcomes
from dispatch_service.queue.queues import ensure_groups
from dispatch_service.redis_options import decodes_responses
from dispatch_service.transient import INTAKE_RETRY_S, run_scripts_retrying
from dispatch_service.validation import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    Connectors,
    validate_actions,
)
from dispatch_service.visitor_trace import VisitorTrace, suppression_note
from service_common.errors import FieldViolation, InvalidArgument
from service_common.keys import DISPATCH_META_PARTITIONS
from service_common.redis_toolkit.partitions import check_partitions
from service_common.redis_toolkit.replication import WaitPolicy

__all__ = ["DEFAULT_RETENTION_S", "ActionStore"]

DEFAULT_RETENTION_S = 7 * 86_400.0
"""How long finished (delivered, skipped, suppressed) records stay readable, and so how long
their idempotency keys are remembered."""


def _now_ms(now: float | None) -> int:
    return int((time.time() if now is None else now) * 1000)


class ActionStore:
    """Durable action records and queues in Redis, partitioned by visitor.

    Args:
        redis: A client with ``decode_responses=False`` (payloads are binary protobuf).
        partitions: The dispatch partition count (fixed for the life of the dataset).
        connector_ids: The connectors actions may name, with their settings (a mapping of id
            to BrazeConnector) or ids only; :meth:`submit` validates against them.
        retention_s: Lifetime of finished records (see :data:`DEFAULT_RETENTION_S`).
        wait: Replicas that must confirm an intake before :meth:`submit` returns
            (``redis_wait_replicas``; off by default).
        trace: Where suppressions are noted in the visitors' live traces (optional).
        transient_retry_s: How long intake retries a failover or a slot migration (see
            :mod:`dispatch_service.transient`) before it gives up.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        partitions: int,
        connector_ids: Connectors,
        *,
        retention_s: float = DEFAULT_RETENTION_S,
        trace: VisitorTrace | None = None,
        wait: WaitPolicy | None = None,
        transient_retry_s: float = INTAKE_RETRY_S,
    ) -> None:
        if decodes_responses(redis):
            raise ValueError("ActionStore needs a Redis client with decode_responses=False")
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.redis = redis
        self.partitions = partitions
        self.connector_ids = frozenset(connector_ids)
        # With settings, intake checks each payload against its own connector's encoding.
        self._connectors: Connectors = (
            dict(connector_ids) if isinstance(connector_ids, Mapping) else self.connector_ids
        )
        self.retention_ms = int(retention_s * 1000)
        self._trace = trace
        self._wait = wait
        self._transient_retry_s = transient_retry_s

    async def ensure_queues(self) -> None:
        """Check the partition count and create every queue and consumer group (idempotent).

        Raises:
            ValueError: the dataset was created with another partition count; using it
                would hide every action of a re-homed visitor.
        """
        await check_partitions(self.redis, DISPATCH_META_PARTITIONS, self.partitions, "dispatch")
        await ensure_groups(self.redis, self.partitions)

    async def submit(
        self,
        actions: Sequence[action_pb2.Action],
        *,
        now: float | None = None,
        trace_context: value_pb2.TraceContext | None = None,
    ) -> list[dispatch_service_pb2.SubmitOutcome]:
        """Validate and store actions durably; return one outcome per action, in order.

        Any invalid action refuses the whole request before anything is written
        (:class:`~service_common.errors.InvalidArgument` with every field violation, e.g.
        ``actions[3].track_user.user``). Each action is applied atomically in its partition:
        a known key returns its first outcome (``duplicate``); otherwise caps decide between
        ACCEPTED (recorded and queued) and SUPPRESSED (recorded with the reason, not queued). When
        this returns, every outcome is in Redis; if it raises, any subset may be (callers
        retry with the same keys and get the first outcomes back).

        Args:
            actions: The request's actions.
            now: Acceptance time (seconds since the epoch); defaults to the clock.
            trace_context: Context for actions that carry none; defaults to the active span.
        """
        validate_actions(actions, self._connectors)
        now_ms = _now_ms(now)
        default_trace = trace_context if trace_context is not None else current_trace_context()
        calls, batches, origin = plan_submission(
            actions, self.partitions, now_ms, self.retention_ms, default_trace
        )
        # Each call is idempotent (a known key returns its first outcome), and only calls that
        # failed (e.g. their slot was being migrated) are sent again. With a WAIT policy, returns
        # only once replicas hold the intake (else UNAVAILABLE).
        results = await run_scripts_retrying(
            self.redis, calls, within_s=self._transient_retry_s, wait=self._wait
        )
        outcomes = read_outcomes(actions, batches, results, origin)
        suppressed = [
            (a, o)
            for a, o in zip(actions, outcomes, strict=True)
            if o.state == action_pb2.ACTION_STATE_SUPPRESSED and not o.duplicate
        ]
        record_suppressed([a.action_id for a, _ in suppressed])
        if self._trace is not None:
            await self._trace.record(
                [
                    suppression_note(a.visitor_id, o.idempotency_key, a.action_id, o.reason)
                    for a, o in suppressed
                ]
            )
        return outcomes

    async def get(self, idempotency_key: str) -> action_pb2.ActionStatus | None:
        """The status of an action, or ``None`` if the key is unknown (or expired).

        Raises:
            InvalidArgument: the key is empty or longer than any accepted key.
        """
        if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "idempotency_key",
                        f"must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
                    )
                ]
            )
        (records,) = await status.find_records(self.redis, self.partitions, [idempotency_key])
        return records[0].to_status() if records else None

    async def get_many(self, keys: Sequence[str]) -> list[action_pb2.ActionStatus | None]:
        """Statuses of several actions, in order, in one round trip."""
        found = await status.find_records(self.redis, self.partitions, keys)
        return [records[0].to_status() if records else None for records in found]

    async def list_failed(
        self, connector_id: str = "", page_size: int = 0, page_token: str = ""
    ) -> status.FailedPage:
        """One page of dead letters, newest first (see :func:`.status.list_failed`)."""
        return await status.list_failed(
            self.redis, self.partitions, connector_id, page_size, page_token
        )

    async def retry_failed(
        self,
        idempotency_keys: Sequence[str] = (),
        *,
        retry_all: bool = False,
        connector_id: str = "",
        now: float | None = None,
    ) -> tuple[int, list[str]]:
        """Requeue dead letters: ``(requeued, keys that were not failed)``."""
        return await status.retry_failed(
            self.redis,
            self.partitions,
            idempotency_keys,
            retry_all=retry_all,
            connector_id=connector_id,
            now_ms=_now_ms(now),
        )
