"""The boundary between the queue worker and a destination library.

The worker (``dispatch_service.worker``) knows queues, lingering, retry scheduling and dead
letters; a :class:`ConnectorDelivery` knows how one connector packs actions into requests,
sends them and how long a failing action may keep trying. :class:`BrazeConnectorDelivery`
is the Braze implementation, on the ``dispatch_service.braze`` library.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import redis.asyncio as aioredis
from opentelemetry.trace import TracerProvider

from dispatch_service.braze import (
    ActionResult,
    BrazeClient,
    BrazeConnector,
    BrazeDelivery,
    DeltaStore,
    Endpoint,
    PendingAction,
    PlannedRequest,
    SharedRateLimiter,
    next_retry_delay,
    plan_requests,
)
from dispatch_service.braze.deltas import DeltaView
from dispatch_service.queue.queues import QueuedAction

__all__ = ["BrazeConnectorDelivery", "ConnectorDelivery", "DeliveryOutcome", "braze_deliveries"]


@dataclass
class DeliveryOutcome:
    """What one delivery call did."""

    results: list[ActionResult] = field(default_factory=list)
    """One result per action that was sent or settled."""
    held: list[str] = field(default_factory=list)
    """Keys of actions not sent because their request was not full (``only_full``)."""


class ConnectorDelivery(Protocol):
    """How one connector's actions are packed and sent."""

    @property
    def linger_s(self) -> float:
        """Longest an action waits for others to fill its request."""

    @property
    def batch_hint(self) -> int:
        """Roughly how many actions fill a request (how often the worker re-checks)."""

    async def deliver(self, actions: Sequence[QueuedAction], *, only_full: bool) -> DeliveryOutcome:
        """Send ``actions`` (in queue order) and return their results.

        With ``only_full``, requests that are not full are not sent: their actions come back
        in ``held``, to linger for more company. Transient failures are RETRY results,
        never exceptions.
        """

    def retry_delay(self, attempts: int, age_s: float, retry_after_s: float | None) -> float | None:
        """Seconds until the next attempt after a RETRY, or ``None`` to dead-letter."""


class BrazeConnectorDelivery:
    """:class:`ConnectorDelivery` of one Braze connector.

    Uses the Braze library's pipeline (objects, deltas, planning, rate-limited sending with
    per-user ordering); adds only the choice of which planned requests are full enough to
    send before the linger ends.
    """

    def __init__(
        self,
        connector: BrazeConnector,
        client: BrazeClient,
        deltas: DeltaStore | None,
        rng: random.Random | None = None,
    ) -> None:
        self.connector = connector
        self._braze = BrazeDelivery(connector, client, deltas)
        self._deltas = deltas
        self._rng = rng

    @property
    def linger_s(self) -> float:
        return self.connector.linger_ms / 1000

    @property
    def batch_hint(self) -> int:
        return self.connector.batch_mode.limit

    def retry_delay(self, attempts: int, age_s: float, retry_after_s: float | None) -> float | None:
        return next_retry_delay(self.connector, attempts, age_s, retry_after_s, self._rng)

    async def deliver(self, actions: Sequence[QueuedAction], *, only_full: bool) -> DeliveryOutcome:
        pending = [PendingAction(a.taken.key, a.action, a.attempts + 1) for a in actions]
        items, settled = self._braze.prepare(pending)
        outcome = DeliveryOutcome(results=settled)
        if only_full and not _sendable(
            plan_requests(self.connector, items).requests, self.connector
        ):
            # Deltas only shrink requests: if none is full now, none will be after them.
            # Checked first so that holding back costs no Redis round trip.
            outcome.held = [item.idempotency_key for item in items]
            return outcome
        items, never_sent = await self._braze.skip_never_sent(items)
        outcome.results.extend(never_sent)
        view = await self._deltas.load(items) if self._deltas is not None else DeltaView()
        items, skipped = view.filter(items)
        outcome.results.extend(skipped)
        plan = plan_requests(self.connector, items)
        outcome.results.extend(plan.settled)
        requests = plan.requests
        if only_full:
            requests = _sendable(plan.requests, self.connector)
            sent = {key for request in requests for key in request.keys}
            outcome.held = [k for request in plan.requests for k in request.keys if k not in sent]
        if requests:
            outcome.results.extend(await self._braze.send_all(requests))
        return outcome


def _sendable(
    requests: Sequence[PlannedRequest], connector: BrazeConnector
) -> list[PlannedRequest]:
    """The full requests that no held-back request must precede.

    A request is full when it reached its object cap, or when the planner had to open
    another request of the same endpoint after it. A full request that writes a user of an
    earlier held-back request is held back too, so that user's writes stay in order.
    """
    last_of = {request.endpoint: index for index, request in enumerate(requests)}
    sendable: list[PlannedRequest] = []
    held_users: set[str] = set()
    for index, request in enumerate(requests):
        followed = index < last_of[request.endpoint]
        if (followed or _at_cap(request, connector)) and not request.users & held_users:
            sendable.append(request)
        else:
            held_users.update(request.users)
    return sendable


def _at_cap(request: PlannedRequest, connector: BrazeConnector) -> bool:
    if request.endpoint is not Endpoint.TRACK:
        return request.object_count >= (request.endpoint.max_objects or 0)
    mode = connector.batch_mode
    if mode.per_array:
        return any(len(indexes) >= mode.limit for indexes in request.origins.values())
    return request.object_count >= mode.limit


def braze_deliveries(
    connectors: Mapping[str, BrazeConnector],
    redis: aioredis.Redis,
    partitions: int,
    session: aiohttp.ClientSession,
    tracer_provider: TracerProvider | None = None,
) -> dict[str, BrazeConnectorDelivery]:
    """A delivery per connector, sharing one HTTP session (close it after the worker)."""
    deliveries: dict[str, BrazeConnectorDelivery] = {}
    for connector_id, connector in connectors.items():
        deltas = DeltaStore(redis, connector, partitions)
        limiter = SharedRateLimiter(redis, connector)
        client = BrazeClient(connector, session, limiter, deltas, tracer_provider)
        deliveries[connector_id] = BrazeConnectorDelivery(connector, client, deltas)
    return deliveries
