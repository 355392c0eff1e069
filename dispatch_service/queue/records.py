"""The action record: one Redis hash per accepted or suppressed action.

Fields (all written by the Lua scripts in ``dispatch_service/scripts``; byte strings):

==================  =================================================================
``action``          the serialized ``crowd.dispatch.v1.Action`` (defaults filled in)
``key``             the idempotency key
``state``           ``ActionState`` number (ACCEPTED 1, SUPPRESSED 2, DELIVERED 3, ...)
``reason``          why it is suppressed or failed, or the last retryable error
``outcome``         the first submission's outcome (ACCEPTED or SUPPRESSED), returned
                    to duplicates; ``outcome_reason`` its reason
``attempts``        delivery attempts so far
``last_http_status``  HTTP status of the last attempt (0: none, or a network error)
``accepted_at``     when it was stored (ms since the epoch); ``updated_at`` last change
``connector`` ``visitor`` ``action_id``   copied from the action for cheap status reads
``traceparent`` ``tracestate``            the W3C trace context the action continues
``retried_at``      when RetryFailedActions last requeued it (ms), if ever
==================  =================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from crowd.dispatch.v1 import action_pb2

__all__ = ["STATUS_FIELDS", "ActionRecord"]

#: Fields read for a status (everything but the payload, which can be large).
STATUS_FIELDS = (
    "key",
    "state",
    "reason",
    "attempts",
    "last_http_status",
    "accepted_at",
    "updated_at",
    "connector",
    "visitor",
    "action_id",
    "retried_at",
)


@dataclass(frozen=True)
class ActionRecord:
    """A decoded action record (without its payload)."""

    key: str
    partition: int
    state: int
    reason: str
    attempts: int
    last_http_status: int
    accepted_at_ms: int
    updated_at_ms: int
    connector_id: str
    visitor_id: str
    action_id: str
    retried_at_ms: int

    @classmethod
    def from_fields(cls, partition: int, values: Mapping[str, bytes | None]) -> ActionRecord | None:
        """Decode the :data:`STATUS_FIELDS` of a hash; ``None`` if the record does not exist."""
        if values.get("state") is None:
            return None

        def text(name: str) -> str:
            raw = values.get(name)
            return raw.decode("utf-8") if raw is not None else ""

        def number(name: str) -> int:
            raw = values.get(name)
            return int(raw) if raw else 0

        return cls(
            key=text("key"),
            partition=partition,
            state=number("state"),
            reason=text("reason"),
            attempts=number("attempts"),
            last_http_status=number("last_http_status"),
            accepted_at_ms=number("accepted_at"),
            updated_at_ms=number("updated_at"),
            connector_id=text("connector"),
            visitor_id=text("visitor"),
            action_id=text("action_id"),
            retried_at_ms=number("retried_at"),
        )

    @classmethod
    def from_list(cls, partition: int, values: list[bytes | None]) -> ActionRecord | None:
        """Decode the reply of ``HMGET record *STATUS_FIELDS``."""
        return cls.from_fields(partition, dict(zip(STATUS_FIELDS, values, strict=True)))

    def to_status(self) -> action_pb2.ActionStatus:
        """The record as the API's ``ActionStatus``."""
        return action_pb2.ActionStatus(
            idempotency_key=self.key,
            connector_id=self.connector_id,
            state=self.state,  # type: ignore[arg-type]
            reason=self.reason,
            attempts=self.attempts,
            accepted_at=_timestamp(self.accepted_at_ms),
            updated_at=_timestamp(self.updated_at_ms),
            last_http_status=self.last_http_status,
            visitor_id=self.visitor_id,
            action_id=self.action_id,
        )


def _timestamp(ms: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp
