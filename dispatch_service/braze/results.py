"""What happened to each action handed to the Braze library."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from crowd.dispatch.v1.action_pb2 import (
    ACTION_STATE_ACCEPTED,
    ACTION_STATE_DELIVERED,
    ACTION_STATE_FAILED,
    ACTION_STATE_SKIPPED,
    ActionState,
)


class Outcome(StrEnum):
    """Delivery outcome of one action."""

    DELIVERED = "delivered"
    """Braze accepted every object of the action."""
    SKIPPED = "skipped"
    """Nothing to send: every attribute equals what Braze already holds (deltas)."""
    RETRY = "retry"
    """Transient failure (408, 429, 5xx, timeout, connection error): try again later."""
    FAILED = "failed"
    """Permanent failure (Braze refused it, or it can never fit a request): dead-letter it."""

    @property
    def action_state(self) -> ActionState.ValueType:
        """The ``crowd.dispatch.v1.ActionState`` to record (RETRY stays ACCEPTED)."""
        return _STATES[self]

    @property
    def final(self) -> bool:
        """True unless the action should be attempted again."""
        return self is not Outcome.RETRY


_STATES: dict[Outcome, ActionState.ValueType] = {
    Outcome.DELIVERED: ACTION_STATE_DELIVERED,
    Outcome.SKIPPED: ACTION_STATE_SKIPPED,
    Outcome.RETRY: ACTION_STATE_ACCEPTED,
    Outcome.FAILED: ACTION_STATE_FAILED,
}


@dataclass(frozen=True)
class ActionResult:
    """The outcome of one action in one delivery attempt."""

    idempotency_key: str
    outcome: Outcome
    reason: str = ""
    """Why it failed, was skipped or must be retried (Braze's own message where there is one);
    never contains a credential."""
    http_status: int = 0
    """Status of the Braze response that decided the outcome; 0 when no response decided it."""
    retry_after_s: float | None = None
    """For RETRY: the wait Braze asked for (429 headers); ``None`` means use backoff_delay."""


def delivered(key: str, status: int, reason: str = "") -> ActionResult:
    """Shorthand for a DELIVERED result."""
    return ActionResult(key, Outcome.DELIVERED, reason, status)


def skipped(key: str, reason: str) -> ActionResult:
    """Shorthand for a SKIPPED result."""
    return ActionResult(key, Outcome.SKIPPED, reason)


def failed(key: str, reason: str, status: int = 0) -> ActionResult:
    """Shorthand for a FAILED result."""
    return ActionResult(key, Outcome.FAILED, reason, status)


def retry(key: str, reason: str, status: int = 0, after: float | None = None) -> ActionResult:
    """Shorthand for a RETRY result."""
    return ActionResult(key, Outcome.RETRY, reason, status, after)
