"""The boundary between the queue worker and a destination library.

The worker (``dispatch_service.worker``) knows queues, lingering, retries and dead letters;
a :class:`ConnectorDelivery` knows how one connector packs actions into requests and sends
them. :class:`BrazeDelivery` is the Braze implementation, on ``dispatch_service.braze``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dispatch_service.braze.results import ActionResult
from dispatch_service.queue.queues import QueuedAction

__all__ = ["Batch", "ConnectorDelivery", "DeliveryPlan"]


@dataclass(frozen=True)
class Batch:
    """One request to send and the actions it carries."""

    keys: tuple[str, ...]
    ready: bool
    """True when the request is full: waiting for more actions would not grow it."""
    request: Any
    """The library's own request object, handed back to :meth:`ConnectorDelivery.send`."""


@dataclass
class DeliveryPlan:
    """Requests for a set of actions, in sending order, and actions settled without one."""

    batches: list[Batch] = field(default_factory=list)
    settled: list[ActionResult] = field(default_factory=list)


class ConnectorDelivery(Protocol):
    """How one connector's actions are packed and sent."""

    @property
    def linger_s(self) -> float:
        """Longest an action waits for others to fill its request."""

    @property
    def batch_hint(self) -> int:
        """Actions that may fill a request (how often the worker re-plans its buffer)."""

    @property
    def max_attempts(self) -> int:
        """Delivery attempts before an action is dead-lettered."""

    @property
    def max_age_s(self) -> float:
        """Age after which a still-failing action is dead-lettered."""

    def plan(self, actions: Sequence[QueuedAction]) -> DeliveryPlan:
        """Pack ``actions`` (in queue order) into requests; never raises for bad actions
        (they come back settled as FAILED)."""

    async def send(self, batches: Sequence[Batch]) -> list[ActionResult]:
        """Send requests in order; return a result for every action they carry.

        Transient failures come back as RETRY results, not exceptions.
        """
