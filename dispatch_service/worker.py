"""The delivery worker: queue → batches → destination → recorded results.

(Over 400 lines on purpose: one class whose held/deferred/buffered bookkeeping must stay
consistent across reading, sending, recording and takeover; split, its invariants would
be spread over modules. Reading and retry timing already live in the shared toolkit.)

One :class:`DispatchWorker` per process (any number of processes): it reads every
partition's queue as one consumer of the ``dispatchers`` group, buffers actions per
connector, lingers until a request is full or the connector's linger has passed, sends
through the connector's :class:`~dispatch_service.delivery.ConnectorDelivery` (which packs
requests and applies shared rate limits), and records each action's result atomically with
the acknowledgement of its queue entry (``scripts/complete.lua``):

* DELIVERED / SKIPPED: the record is final and expires after the retention.
* RETRY: the action waits in its partition's retry set and is queued again when due; the
  connector's policy (:meth:`~dispatch_service.delivery.ConnectorDelivery.retry_delay`)
  names the wait (the one Braze asked for, else exponential backoff with jitter) or, once
  out of attempts or too old, dead-letters it ("gave up after N attempts: ...").
* FAILED: dead letter (record FAILED with Braze's reason, listed by ListFailedActions).

Delivery guarantee: **at least once.** An entry leaves the queue only in the same atomic
step that records its result, so nothing accepted is lost when a worker dies: entries it
held stay pending and any worker takes them over after ``claim_idle_ms`` (``XAUTOCLAIM``).
A duplicate request to Braze happens only when a worker dies (or loses Redis for longer
than ``record_retry_s``) after Braze accepted a request but before the result was recorded,
when a request timed out on our side although Braze processed it, or when a worker stalls
for longer than ``claim_idle_ms`` mid-send (its entries are then taken over). Each resends
the same objects: harmless for attribute writes, while events and purchases are recorded
twice. A live worker refreshes the idle time of the entries it holds, so a slow send is not
mistaken for a dead worker. On Redis Cluster a recorded result can also be lost with a master
that died before its replica had it (asynchronous replication): the action is sent again.
A partition whose slot is migrating or failing over holds back only its own results, which
are retried (only those) for ``record_retry_s``.

Ordering: one worker sends a connector's actions one delivery call at a time, in queue
order, and the Braze library keeps a user's writes in order within a call. Actions of one
user taken by two workers at once, or a retried action and a later one, may reach Braze in
either order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from dispatch_service.braze.results import ActionResult, Outcome
from dispatch_service.delivery import ConnectorDelivery, DeliveryOutcome
from dispatch_service.metrics import record_results
from dispatch_service.queue.queues import (
    Completion,
    QueuedAction,
    Result,
    Taken,
    claim_stale,
    complete,
    load_actions,
    promote_due,
    read_new,
    touch,
)
from dispatch_service.queue.store import ActionStore
from dispatch_service.transient import is_transient
from dispatch_service.visitor_trace import VisitorTrace, delivery_note
from service_common.redis_toolkit.retry import REDIS_LOOP, REDIS_RECORD, FailureBackoff
from service_common.redis_toolkit.streams import read_loop

__all__ = ["DispatchWorker", "WorkerSettings"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    """Tuning of a worker; the defaults suit production."""

    read_count: int = 1000
    """Most entries taken per read."""
    block_ms: int = 100
    """Longest one read waits for entries (also how fast ``stop`` is noticed)."""
    claim_idle_ms: int = 30_000
    """Entries pending this long with another consumer are taken over (the worker is
    presumed dead); live workers refresh theirs every third of this."""
    claim_count: int = 1000
    """Most entries taken over per partition per claim round."""
    promote_interval_s: float = 0.1
    """How often due retries are moved back onto the queues."""
    max_buffered: int = 20_000
    """Actions held in memory per worker before reading pauses."""
    record_retry_s: float = 30.0
    """How long recording results is retried while Redis is unreachable."""


@dataclass
class _Buffer:
    """Actions of one connector waiting to be sent."""

    actions: list[QueuedAction] = field(default_factory=list)
    oldest: float = 0.0
    """Monotonic time the oldest waiting action arrived."""
    checked: int = 0
    """Buffer size when it last went to a delivery call (re-check only after growth)."""


class DispatchWorker:
    """Delivers queued actions; see the module docstring for the guarantees.

    Args:
        store: The action store (its Redis client, partitions and retention are used).
        deliveries: Connector id -> how to deliver its actions.
        consumer_name: This worker's stable name in the consumer group (e.g. host:pid).
        settings: Tuning; see :class:`WorkerSettings`.
        trace: Where final results are noted in the visitors' live traces (optional).
    """

    def __init__(
        self,
        store: ActionStore,
        deliveries: Mapping[str, ConnectorDelivery],
        *,
        consumer_name: str,
        settings: WorkerSettings | None = None,
        trace: VisitorTrace | None = None,
    ) -> None:
        self._store = store
        self._redis = store.redis
        self._deliveries = dict(deliveries)
        self.consumer_name = consumer_name
        self.settings = settings or WorkerSettings()
        self._trace = trace
        self._buffers: dict[str, _Buffer] = {c: _Buffer() for c in self._deliveries}
        self._sending: dict[str, asyncio.Task[None]] = {}
        self._held: dict[tuple[int, bytes], Taken] = {}  # entries taken and not yet recorded
        self._held_keys: set[str] = set()
        # Further entries of held keys, left pending until the held entry is recorded.
        self._deferred: dict[tuple[int, bytes], Taken] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._reader: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Create the queues' consumer groups if needed and start working."""
        await self._store.ensure_queues()
        self._reader = asyncio.create_task(self._read_loop(), name="dispatch-read")
        self._background = [
            asyncio.create_task(self._flush_loop(), name="dispatch-flush"),
            asyncio.create_task(self._maintain_loop(), name="dispatch-maintain"),
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop reading, send everything buffered and record the results.

        Whatever is not finished within ``grace`` seconds is abandoned: its entries stay
        pending and another worker (or this one, restarted) takes them over.
        """
        self._stopping = True
        self._wake.set()
        deadline = time.monotonic() + grace
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._reader), grace)
            self._reader.cancel()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.force_flush(), max(0.0, deadline - time.monotonic()))
        for task in [*self._background, *self._sending.values()]:
            task.cancel()
        await asyncio.gather(*self._background, *self._sending.values(), return_exceptions=True)
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def force_flush(self) -> None:
        """Send every buffered action now and wait until all results are recorded."""
        while True:
            for connector_id, buffer in self._buffers.items():
                if buffer.actions and connector_id not in self._sending:
                    self._start_send(connector_id, only_full=False)
            if not self._sending:
                return
            await asyncio.gather(*self._sending.values(), return_exceptions=True)

    @property
    def buffered(self) -> int:
        """Actions held in memory, waiting or being sent."""
        return len(self._held)

    # --- reading -------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        settings = self.settings

        read = partial(
            read_new,
            self._redis,
            self._store.partitions,
            self.consumer_name,
            settings.read_count,
            settings.block_ms,
        )
        await read_loop(
            read,
            self._take,
            stopping=lambda: self._stopping,
            held_full=lambda: len(self._held) >= settings.max_buffered,
            pause_s=settings.block_ms / 1000,
            ensure_groups=self._store.ensure_queues,
            what="dispatch queues",
        )

    async def _take(self, taken: Sequence[Taken]) -> None:
        """Load taken entries and buffer their actions per connector."""
        fresh: list[Taken] = []
        for item in taken:
            entry = (item.partition, item.entry_id)
            if entry in self._held or entry in self._deferred:
                continue  # our own entry, reclaimed while we work on it
            if item.key in self._held_keys:
                # A second entry of an action we already hold (e.g. a stale entry taken over
                # after its retry was queued, or the retry of the held entry itself, queued
                # again while its result was being recorded). It must not be acknowledged
                # now: the held entry's result may already be in Redis, making this entry
                # the action's only way back. It stays pending and is taken again once the
                # held entry is recorded (then dropped if the action is finished).
                self._deferred[entry] = item
                continue
            self._held[entry] = item
            self._held_keys.add(item.key)
            fresh.append(item)
        if not fresh:
            return
        try:
            loaded = await load_actions(self._redis, fresh)
        except BaseException:
            self._let_go(fresh)
            raise
        # Entries whose record could not be read now stay pending for a later takeover.
        self._let_go(loaded.unread)
        ready = loaded.ready
        completions = [Completion(t, "drop") for t in loaded.stale]
        now = time.monotonic()
        for queued in ready:
            connector_id = queued.action.connector_id
            buffer = self._buffers.get(connector_id)
            if buffer is None:
                completions.append(
                    Completion(
                        queued.taken,
                        "failed",
                        connector_id=connector_id,
                        reason=f"connector {connector_id} is not configured",
                        attempted=False,
                    )
                )
                continue
            if not buffer.actions:
                buffer.oldest = now
            buffer.actions.append(queued)
        if completions:
            await self._record(completions)
        self._wake.set()

    def _let_go(self, taken: Sequence[Taken]) -> None:
        """Stop holding entries without recording anything: they stay pending in Redis and
        are taken over after ``claim_idle_ms`` (by any worker, this one included)."""
        keys = {item.key for item in taken}
        for item in taken:
            del self._held[(item.partition, item.entry_id)]
            self._held_keys.discard(item.key)
        # Their deferred entries too: all stay pending and are taken over together.
        for entry in [e for e, item in self._deferred.items() if item.key in keys]:
            del self._deferred[entry]

    # --- flushing ------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            now = time.monotonic()
            next_due: float | None = None
            for connector_id, buffer in self._buffers.items():
                if not buffer.actions or connector_id in self._sending:
                    continue
                delivery = self._deliveries[connector_id]
                due = buffer.oldest + delivery.linger_s
                if self._stopping or now >= due:
                    self._start_send(connector_id, only_full=False)
                    continue
                if len(buffer.actions) - buffer.checked >= max(1, delivery.batch_hint // 2):
                    # Enough new actions that a request may be full: send the full ones.
                    self._start_send(connector_id, only_full=True)
                    continue
                next_due = due if next_due is None else min(next_due, due)
            timeout = None if next_due is None else max(0.0, next_due - now)
            await self._wait_wake(timeout)

    async def _wait_wake(self, wait_s: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait_s)

    def _start_send(self, connector_id: str, *, only_full: bool) -> None:
        """Hand the connector's whole buffer to one delivery call (one at a time per
        connector, so that a user's writes leave in queue order)."""
        buffer = self._buffers[connector_id]
        actions, oldest = buffer.actions, buffer.oldest
        buffer.actions, buffer.checked = [], 0
        task = asyncio.create_task(
            self._send(connector_id, actions, oldest, only_full=only_full),
            name=f"dispatch-send-{connector_id}",
        )
        self._sending[connector_id] = task
        task.add_done_callback(lambda _t: self._sent(connector_id))

    def _sent(self, connector_id: str) -> None:
        self._sending.pop(connector_id, None)
        self._wake.set()

    async def _send(
        self, connector_id: str, actions: list[QueuedAction], oldest: float, *, only_full: bool
    ) -> None:
        delivery = self._deliveries[connector_id]
        try:
            outcome = await delivery.deliver(actions, only_full=only_full)
        except asyncio.CancelledError:
            # Abandoned (stop after its grace): the entries stay pending for reclaiming.
            raise
        except Exception as exc:
            # A library bug must not lose actions: retry them like a transient failure.
            logger.exception("delivery to connector %s failed", connector_id)
            reason = f"internal error: {type(exc).__name__}"
            outcome = DeliveryOutcome(
                [ActionResult(a.taken.key, Outcome.RETRY, reason) for a in actions]
            )
        held = set(outcome.held)
        if held:
            # Not sent: back to the front of the buffer, keeping their deadline.
            buffer = self._buffers[connector_id]
            waiting = [a for a in actions if a.taken.key in held]
            buffer.oldest = min(oldest, buffer.oldest) if buffer.actions else oldest
            buffer.actions = waiting + buffer.actions
            buffer.checked = len(waiting)
        settled = {r.idempotency_key: r for r in outcome.results}
        handled = [a for a in actions if a.taken.key not in held]
        if handled:
            await self._record(self._completions(connector_id, delivery, handled, settled))

    def _completions(
        self,
        connector_id: str,
        delivery: ConnectorDelivery,
        actions: Sequence[QueuedAction],
        results: Mapping[str, ActionResult],
    ) -> list[Completion]:
        now = time.time()
        missing = "no result from the delivery library"
        return [
            self._completion(
                connector_id,
                delivery,
                queued,
                results.get(queued.taken.key)
                or ActionResult(queued.taken.key, Outcome.RETRY, missing),
                now,
            )
            for queued in actions
        ]

    def _completion(
        self,
        connector_id: str,
        delivery: ConnectorDelivery,
        queued: QueuedAction,
        result: ActionResult,
        now: float,
    ) -> Completion:
        def finish(outcome: Result, reason: str = result.reason, due_ms: int = 0) -> Completion:
            return Completion(
                queued.taken,
                outcome,
                connector_id=connector_id,
                http_status=result.http_status,
                reason=reason,
                retry_due_ms=due_ms,
                attempted=result.outcome is not Outcome.SKIPPED,
                visitor_id=queued.action.visitor_id,
                action_id=queued.action.action_id,
            )

        if result.outcome is Outcome.DELIVERED:
            return finish("delivered", "")
        if result.outcome is Outcome.SKIPPED:
            return finish("skipped")
        if result.outcome is Outcome.FAILED:
            return finish("failed")
        attempts = queued.attempts + 1
        delay = delivery.retry_delay(attempts, now - queued.since_ms / 1000, result.retry_after_s)
        if delay is None:
            return finish("failed", f"gave up after {attempts} attempts: {result.reason}")
        return finish("retry", f"retrying: {result.reason}", int((now + delay) * 1000))

    async def _record(self, completions: Sequence[Completion]) -> None:
        """Record results; retried while Redis is unreachable, then left to reclaiming."""
        record_results([c.result for c in completions])
        deadline = time.monotonic() + self.settings.record_retry_s
        backoff = FailureBackoff(REDIS_RECORD)
        unrecorded = list(completions)
        while unrecorded:
            try:
                # Only the partitions that failed are sent again (a recorded retry must not
                # count its attempt twice).
                unrecorded = await complete(
                    self._redis, unrecorded, int(time.time() * 1000), self._store.retention_ms
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                if time.monotonic() >= deadline:
                    logger.exception(
                        "recording %d results failed; their entries stay pending", len(unrecorded)
                    )
                    break
            if unrecorded:
                if time.monotonic() >= deadline:
                    logger.error(
                        "recording %d results failed; their entries stay pending", len(unrecorded)
                    )
                    break
                await backoff.failed()
        released: set[str] = set()
        for completion in completions:
            taken = completion.taken
            if self._held.pop((taken.partition, taken.entry_id), None) is not None:
                self._held_keys.discard(taken.key)
                released.add(taken.key)
        if self._trace is not None:
            notes = [
                delivery_note(
                    c.visitor_id,
                    c.taken.key,
                    c.action_id,
                    c.connector_id,
                    c.result,
                    c.reason,
                    c.http_status,
                )
                for c in completions
            ]
            await self._trace.record([n for n in notes if n is not None])
        await self._take_deferred(released)

    async def _take_deferred(self, released: set[str]) -> None:
        """Take the entries deferred behind keys whose held entry was just recorded."""
        if not released or not self._deferred:
            return
        ready = [item for item in self._deferred.values() if item.key in released]
        for item in ready:
            del self._deferred[(item.partition, item.entry_id)]
        try:
            await self._take(ready)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Still pending under this worker: taken over again after claim_idle_ms.
            logger.exception("taking %d deferred entries failed", len(ready))

    # --- maintenance ---------------------------------------------------------------------

    async def _maintain_loop(self) -> None:
        settings = self.settings
        claim_every = settings.claim_idle_ms / 2000
        touch_every = settings.claim_idle_ms / 3000
        last_claim = last_touch = time.monotonic()
        backoff = FailureBackoff(REDIS_LOOP)
        while True:
            try:
                now = time.monotonic()
                await promote_due(
                    self._redis, self._store.partitions, int(time.time() * 1000), limit=1000
                )
                if now - last_touch >= touch_every:
                    last_touch = now
                    await touch(
                        self._redis,
                        self.consumer_name,
                        [*self._held.values(), *self._deferred.values()],
                    )
                if now - last_claim >= claim_every and not self._stopping:
                    last_claim = now
                    claimed = await claim_stale(
                        self._redis,
                        self._store.partitions,
                        self.consumer_name,
                        settings.claim_idle_ms,
                        settings.claim_count,
                    )
                    await self._take(claimed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A failover or a slot migration heals on its own: one line, then back off.
                if is_transient(exc):
                    logger.warning("dispatch queue maintenance: Redis %s", type(exc).__name__)
                else:
                    logger.exception("dispatch queue maintenance failed")
                await backoff.failed()
                continue
            backoff.succeeded()
            await asyncio.sleep(settings.promote_interval_s)
