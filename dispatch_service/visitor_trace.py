"""Delivery outcomes in the visitors' live traces.

A visitor's live trace (``ProfileService.StreamTrace``) should show what happened to the
actions it fired: suppressed by a frequency cap, delivered to Braze, or failed with Braze's
reason. When the dispatch service shares its Redis with the profile service, it appends
those entries to the visitor's trace stream, in the shared trace entry format
(`service_common.trace_entries`). The profile service records its partition count in
``META_PARTITIONS``; without that key (the services use separate Redis instances) nothing
is written.

Best effort by design: the trace is a debugging aid, so a failure here is logged and never
delays or fails a delivery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crowd.profile.v1 import trace_pb2
from service_common import keys
from service_common.trace_entries import TRACE_MAXLEN, TRACE_TTL_MS, TraceRecord, encode_entry

__all__ = ["DeliveryNote", "VisitorTrace"]

logger = logging.getLogger(__name__)

UNKNOWN_RECHECK_S = 10.0
"""How long "no profile service on this Redis" is believed before asking again."""


@dataclass(frozen=True)
class DeliveryNote:
    """One action outcome to show in a visitor's trace."""

    visitor_id: str
    kind: int
    """ACTION_SUPPRESSED, ACTION_DELIVERED or ACTION_FAILED (``TraceEntryKind``)."""
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def delivery_note(
    visitor_id: str,
    idempotency_key: str,
    action_id: str,
    connector_id: str,
    result: str,
    reason: str = "",
    http_status: int = 0,
) -> DeliveryNote | None:
    """The note for a final worker result ("delivered", "skipped", "failed"), else None."""
    what = f"action {action_id or idempotency_key!r}"
    details: dict[str, Any] = {
        "idempotency_key": idempotency_key,
        "action_id": action_id,
        "connector_id": connector_id,
    }
    if http_status:
        details["http_status"] = http_status
    if result == "delivered":
        kind, message = trace_pb2.TRACE_ENTRY_KIND_ACTION_DELIVERED, f"{what} delivered"
    elif result == "skipped":
        kind, message = trace_pb2.TRACE_ENTRY_KIND_ACTION_DELIVERED, f"{what}: nothing changed"
        details["skipped"] = True
    elif result == "failed":
        kind, message = trace_pb2.TRACE_ENTRY_KIND_ACTION_FAILED, f"{what} failed: {reason}"
        details["reason"] = reason
    else:
        return None
    return DeliveryNote(visitor_id, kind, message, details)


def suppression_note(
    visitor_id: str, idempotency_key: str, action_id: str, reason: str
) -> DeliveryNote:
    """The note for an action a frequency cap suppressed at intake."""
    return DeliveryNote(
        visitor_id,
        trace_pb2.TRACE_ENTRY_KIND_ACTION_SUPPRESSED,
        f"action {action_id or idempotency_key!r} suppressed: {reason}",
        {"idempotency_key": idempotency_key, "action_id": action_id, "reason": reason},
    )


class VisitorTrace:
    """Appends delivery notes to the profile service's per-visitor trace streams."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._partitions: int | None = None
        self._unknown_until = 0.0

    async def _profile_partitions(self) -> int | None:
        if self._partitions is None and time.monotonic() >= self._unknown_until:
            raw = await self._redis.get(keys.META_PARTITIONS)
            if raw:
                self._partitions = int(raw)
            else:
                self._unknown_until = time.monotonic() + UNKNOWN_RECHECK_S
        return self._partitions

    async def record(self, notes: Sequence[DeliveryNote]) -> None:
        """Append ``notes`` (one pipeline); never raises."""
        notes = [n for n in notes if n.visitor_id]
        if not notes:
            return
        try:
            partitions = await self._profile_partitions()
            if partitions is None:
                return
            now_ms = int(time.time() * 1000)
            async with self._redis.pipeline(transaction=False) as pipe:
                for note in notes:
                    stream = keys.partition_keys_for(note.visitor_id, partitions).trace(
                        note.visitor_id
                    )
                    record = TraceRecord(note.kind, note.message, note.details)
                    entry = encode_entry(record, profile_id=note.visitor_id, time_ms=now_ms)
                    pipe.xadd(stream, {"e": entry}, maxlen=TRACE_MAXLEN, approximate=True)
                    pipe.pexpire(stream, TRACE_TTL_MS)
                await pipe.execute()
        except (RedisError, OSError, ValueError) as exc:
            logger.warning("could not write %d trace notes: %s", len(notes), type(exc).__name__)
