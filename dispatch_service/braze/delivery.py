"""One call that delivers a batch of actions to one Braze connector.

``BrazeDelivery.deliver(pending)``: build each action's Braze objects (invalid ones FAIL),
load the delta memory (one Redis round trip), drop unchanged attributes (SKIPPED when nothing is
left), plan the requests, send them (in parallel, except that a request waits for earlier
requests that write the same Braze user, so each user's writes reach Braze in order), and
return one result per action.

A request Braze refuses as a whole with 400 or 413 is split in halves and re-sent, down to
single actions, so that one bad action cannot dead-letter the 74 good ones it travelled with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from crowd.dispatch.v1.action_pb2 import Action
from dispatch_service.braze.client import BrazeClient
from dispatch_service.braze.connector import BrazeConnector
from dispatch_service.braze.deltas import DeltaStore, DeltaView
from dispatch_service.braze.payload import InvalidAction, build_objects
from dispatch_service.braze.planner import DeliveryItem, PlannedRequest, plan_requests
from dispatch_service.braze.results import ActionResult, Outcome, failed

#: Statuses that refuse a request as a whole for something one of its actions may contain.
_SPLIT_STATUSES = frozenset({400, 413})


@dataclass(frozen=True)
class PendingAction:
    """An action to deliver, as the dispatcher's queue holds it."""

    idempotency_key: str
    action: Action
    attempt: int = 1
    """Which delivery attempt this is (1 for the first)."""
    received_at: datetime | None = None
    """When the action was accepted; default event time when it has no ``fired_at``."""


class BrazeDelivery:
    """Delivers batches of actions to one connector."""

    def __init__(
        self, connector: BrazeConnector, client: BrazeClient, deltas: DeltaStore | None = None
    ) -> None:
        self._connector = connector
        self._client = client
        self._deltas = deltas

    def prepare(
        self, pending: Sequence[PendingAction]
    ) -> tuple[list[DeliveryItem], list[ActionResult]]:
        """Braze objects of each action; invalid actions FAIL with every violation listed.

        A repeated idempotency key is delivered once (its first occurrence).
        """
        items: list[DeliveryItem] = []
        settled: list[ActionResult] = []
        seen: set[str] = set()
        for entry in pending:
            if entry.idempotency_key in seen:
                continue
            seen.add(entry.idempotency_key)
            try:
                objects = build_objects(
                    entry.action, self._connector, received_at=entry.received_at
                )
            except InvalidAction as exc:
                settled.append(failed(entry.idempotency_key, f"invalid action: {exc}"))
                continue
            items.append(DeliveryItem(entry.idempotency_key, entry.action, objects, entry.attempt))
        return items, settled

    async def deliver(self, pending: Sequence[PendingAction]) -> list[ActionResult]:
        """Deliver ``pending`` and return one result per distinct idempotency key, in order."""
        items, results = self.prepare(pending)
        items, never_sent = await self.skip_never_sent(items)
        results.extend(never_sent)
        view = await self._deltas.load(items) if self._deltas is not None else DeltaView()
        items, skipped = view.filter(items)
        results.extend(skipped)
        plan = plan_requests(self._connector, items)
        results.extend(plan.settled)
        results.extend(await self.send_all(plan.requests))
        by_key = {r.idempotency_key: r for r in results}
        order = dict.fromkeys(p.idempotency_key for p in pending)
        return [by_key[key] for key in order if key in by_key]

    async def skip_never_sent(
        self, items: Sequence[DeliveryItem]
    ) -> tuple[list[DeliveryItem], list[ActionResult]]:
        """Settle as SKIPPED the merges of Braze users this service never sent (no request);
        return the other items and those results."""
        if self._deltas is None:
            return list(items), []
        never_sent = await self._deltas.never_sent(items)
        skip = {r.idempotency_key for r in never_sent}
        return [i for i in items if i.idempotency_key not in skip], never_sent

    async def send_all(self, requests: Sequence[PlannedRequest]) -> list[ActionResult]:
        """Send ``requests`` concurrently (at most ``max_concurrent_requests`` at once); a
        request starts only after every earlier request sharing one of its Braze users."""
        done = [asyncio.Event() for _ in requests]
        waits: list[set[int]] = [set() for _ in requests]
        last_for_user: dict[str, int] = {}
        for index, request in enumerate(requests):
            for user in request.users:
                if user in last_for_user:
                    waits[index].add(last_for_user[user])
                last_for_user[user] = index
        gate = asyncio.Semaphore(self._connector.max_concurrent_requests)

        async def run(index: int) -> list[ActionResult]:
            try:
                for earlier in waits[index]:
                    await done[earlier].wait()
                async with gate:
                    return await self._send_splitting(requests[index])
            finally:
                done[index].set()

        batches = await asyncio.gather(*(run(i) for i in range(len(requests))))
        return [result for batch in batches for result in batch]

    async def _send_splitting(self, request: PlannedRequest) -> list[ActionResult]:
        results = await self._client.send(request)
        refused_whole = len(request.items) > 1 and all(
            r.outcome is Outcome.FAILED and r.http_status in _SPLIT_STATUSES for r in results
        )
        if not refused_whole:
            return results
        # Halves are planned afresh (their own bodies and indexes) and sent in order, so a
        # user's writes keep their order.
        middle = len(request.items) // 2
        out: list[ActionResult] = []
        for half in (request.items[:middle], request.items[middle:]):
            plan = plan_requests(self._connector, half)
            out.extend(plan.settled)
            for part in plan.requests:
                out.extend(await self._send_splitting(part))
        return out
