"""The delivery worker: queue → batches → destination → recorded results.

One :class:`DispatchWorker` per process (any number of processes): it reads every
partition's queue as one consumer of the ``dispatchers`` group, buffers actions per
connector, lingers until a request is full or the connector's linger has passed, sends
through the connector's :class:`~dispatch_service.delivery.ConnectorDelivery` (which packs
requests and applies shared rate limits), and records each action's result atomically with
the acknowledgement of its queue entry (``scripts/complete.lua``):

* DELIVERED / SKIPPED: the record is final and expires after the retention.
* RETRY: the action waits in its partition's retry set, due after exponential backoff with
  jitter (or after the wait Braze asked for), and is queued again when due; once out of
  attempts or too old it is dead-lettered instead.
* FAILED: dead letter (record FAILED with Braze's reason, listed by ListFailedActions).

Delivery guarantee: **at least once.** An entry leaves the queue only in the same atomic
step that records its result, so nothing accepted is lost when a worker dies: entries it
held stay pending and any worker takes them over after ``claim_idle_ms`` (``XAUTOCLAIM``).
A duplicate request to Braze happens only when a worker dies (or loses Redis) after Braze
accepted a request but before the result was recorded, or when a request timed out on our
side although Braze processed it; both resend the same objects, which for attribute writes
is harmless and for events or purchases records them twice. A live worker refreshes the
idle time of the entries it holds, so a slow send is not mistaken for a dead worker.

Ordering: the actions of one connector are sent by one flush at a time per worker, in queue
order; a retried action may be overtaken by later actions of the same user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dispatch_service.braze.results import ActionResult, Outcome
from dispatch_service.delivery import Batch, ConnectorDelivery, DeliveryPlan
from dispatch_service.queue.queues import (
    Completion,
    QueuedAction,
    Taken,
    claim_stale,
    complete,
    load_actions,
    promote_due,
    read_new,
    touch,
)
from dispatch_service.queue.store import ActionStore

__all__ = ["DispatchWorker", "WorkerSettings", "retry_delay"]

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
    retry_base_s: float = 1.0
    """Backoff of the first retry; doubled per attempt, with jitter."""
    retry_max_s: float = 300.0
    """Longest backoff."""
    max_buffered: int = 20_000
    """Actions held in memory per worker before reading pauses."""
    record_retry_s: float = 30.0
    """How long recording results is retried while Redis is unreachable."""


def retry_delay(
    attempt: int,
    retry_after_s: float | None,
    settings: WorkerSettings,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds until retry number ``attempt`` (1 for the first retry).

    Braze's own wait (429 headers) wins, plus up to 10% jitter so that replicas do not all
    come back in the same instant; otherwise exponential backoff with "equal jitter" (half
    fixed, half random), which keeps a floor while spreading retries out.
    """
    if retry_after_s is not None and retry_after_s > 0:
        return retry_after_s * (1 + 0.1 * rng())
    delay = min(settings.retry_max_s, settings.retry_base_s * 2 ** max(0, attempt - 1))
    return delay / 2 + rng() * delay / 2


@dataclass
class _Buffer:
    """Actions of one connector waiting to be sent."""

    actions: list[QueuedAction] = field(default_factory=list)
    oldest: float = 0.0
    """Monotonic time the oldest waiting action arrived."""
    checked: int = 0
    """Buffer size at the last readiness check (re-plan only after growth)."""


class DispatchWorker:
    """Delivers queued actions; see the module docstring for the guarantees.

    Args:
        store: The action store (its Redis client, partitions and retention are used).
        deliveries: Connector id -> how to deliver its actions.
        consumer_name: This worker's stable name in the consumer group (e.g. host:pid).
        settings: Tuning; see :class:`WorkerSettings`.
    """

    def __init__(
        self,
        store: ActionStore,
        deliveries: Mapping[str, ConnectorDelivery],
        *,
        consumer_name: str,
        settings: WorkerSettings | None = None,
    ) -> None:
        self._store = store
        self._redis = store.redis
        self._deliveries = dict(deliveries)
        self.consumer_name = consumer_name
        self.settings = settings or WorkerSettings()
        self._buffers: dict[str, _Buffer] = {c: _Buffer() for c in self._deliveries}
        self._sending: dict[str, asyncio.Task[None]] = {}
        self._held: dict[tuple[int, bytes], Taken] = {}
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
        await asyncio.gather(
            *self._background, *self._sending.values(), return_exceptions=True
        )
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def force_flush(self) -> None:
        """Send every buffered action now and wait until all results are recorded."""
        while True:
            for connector_id, buffer in self._buffers.items():
                if buffer.actions and connector_id not in self._sending:
                    self._start_send(connector_id, everything=True)
            if not self._sending:
                return
            await asyncio.gather(*self._sending.values(), return_exceptions=True)

    @property
    def buffered(self) -> int:
        """Actions held in memory, waiting or being sent."""
        return len(self._held)

    # --- reading -------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                if len(self._held) >= self.settings.max_buffered:
                    # Back-pressure: the destination is slower than the queue fills.
                    await self._wait_wake(self.settings.block_ms / 1000)
                    continue
                taken = await read_new(
                    self._redis,
                    self._store.partitions,
                    self.consumer_name,
                    self.settings.read_count,
                    self.settings.block_ms,
                )
                await self._take(taken)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                logger.exception("reading the dispatch queues failed")
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))

    async def _take(self, taken: Sequence[Taken]) -> None:
        """Load taken entries and buffer their actions per connector."""
        fresh = [t for t in taken if (t.partition, t.entry_id) not in self._held]
        if not fresh:
            return
        for item in fresh:
            self._held[(item.partition, item.entry_id)] = item
        try:
            ready, stale = await load_actions(self._redis, fresh)
        except BaseException:
            for item in fresh:
                del self._held[(item.partition, item.entry_id)]
            raise
        completions = [Completion(t, "drop") for t in stale]
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
                    self._start_send(connector_id, everything=True)
                    continue
                if len(buffer.actions) - buffer.checked >= max(1, delivery.batch_hint // 2):
                    buffer.checked = len(buffer.actions)
                    if self._start_send(connector_id, everything=False):
                        continue
                next_due = due if next_due is None else min(next_due, due)
            timeout = None if next_due is None else max(0.0, next_due - now)
            await self._wait_wake(timeout)

    async def _wait_wake(self, timeout: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _start_send(self, connector_id: str, *, everything: bool) -> bool:
        """Plan the connector's buffer and start sending; False if nothing was ready.

        With ``everything`` False only the leading full requests go (the rest keep
        lingering); their order is kept, so a user's later writes never overtake earlier ones.
        """
        buffer = self._buffers[connector_id]
        delivery = self._deliveries[connector_id]
        plan = delivery.plan(buffer.actions)
        batches = plan.batches
        if not everything:
            ready = 0
            while ready < len(batches) and batches[ready].ready:
                ready += 1
            batches = batches[:ready]
            if not batches:
                return False
        chosen = {key for batch in batches for key in batch.keys}
        chosen.update(result.idempotency_key for result in plan.settled)
        sending = [a for a in buffer.actions if a.taken.key in chosen]
        buffer.actions = [a for a in buffer.actions if a.taken.key not in chosen]
        buffer.checked = len(buffer.actions)
        if buffer.actions:
            buffer.oldest = min(self._arrival(a, buffer) for a in buffer.actions)
        task = asyncio.create_task(
            self._send(connector_id, sending, DeliveryPlan(batches, plan.settled)),
            name=f"dispatch-send-{connector_id}",
        )
        self._sending[connector_id] = task
        task.add_done_callback(lambda _t: self._sent(connector_id))
        return True

    @staticmethod
    def _arrival(_action: QueuedAction, buffer: _Buffer) -> float:
        # Arrival times are not kept per action: the leftovers of a partial flush keep the
        # buffer's original deadline, so they never linger longer than the first one did.
        return buffer.oldest

    def _sent(self, connector_id: str) -> None:
        self._sending.pop(connector_id, None)
        self._wake.set()

    async def _send(
        self, connector_id: str, actions: list[QueuedAction], plan: DeliveryPlan
    ) -> None:
        delivery = self._deliveries[connector_id]
        results: list[ActionResult] = list(plan.settled)
        try:
            if plan.batches:
                results.extend(await delivery.send(plan.batches))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A library bug must not lose actions: retry them like a transient failure.
            logger.exception("delivery to connector %s failed", connector_id)
            done = {r.idempotency_key for r in results}
            results.extend(
                ActionResult(a.taken.key, Outcome.RETRY, f"internal error: {type(exc).__name__}")
                for a in actions
                if a.taken.key not in done
            )
        await self._record(self._completions(connector_id, delivery, actions, results))

    def _completions(
        self,
        connector_id: str,
        delivery: ConnectorDelivery,
        actions: Sequence[QueuedAction],
        results: Sequence[ActionResult],
    ) -> list[Completion]:
        by_key = {r.idempotency_key: r for r in results}
        now = time.time()
        completions: list[Completion] = []
        for queued in actions:
            result = by_key.get(queued.taken.key) or ActionResult(
                queued.taken.key, Outcome.RETRY, "no result from the delivery library"
            )
            completions.append(self._completion(connector_id, delivery, queued, result, now))
        return completions

    def _completion(
        self,
        connector_id: str,
        delivery: ConnectorDelivery,
        queued: QueuedAction,
        result: ActionResult,
        now: float,
    ) -> Completion:
        base = Completion(
            queued.taken,
            "drop",
            connector_id=connector_id,
            http_status=result.http_status,
            reason=result.reason,
            attempted=result.outcome is not Outcome.SKIPPED,
        )
        if result.outcome is Outcome.DELIVERED:
            return _with(base, "delivered", reason="")
        if result.outcome is Outcome.SKIPPED:
            return _with(base, "skipped")
        if result.outcome is Outcome.FAILED:
            return _with(base, "failed")
        attempts = queued.attempts + 1
        age_s = now - queued.since_ms / 1000
        if attempts >= delivery.max_attempts or age_s >= delivery.max_age_s:
            return _with(
                base, "failed", reason=f"gave up after {attempts} attempts: {result.reason}"
            )
        delay = retry_delay(attempts, result.retry_after_s, self.settings)
        return Completion(
            queued.taken,
            "retry",
            connector_id=connector_id,
            http_status=result.http_status,
            reason=f"retrying: {result.reason}",
            retry_due_ms=int((now + delay) * 1000),
        )

    async def _record(self, completions: Sequence[Completion]) -> None:
        """Record results; retried while Redis is unreachable, then left to reclaiming."""
        deadline = time.monotonic() + self.settings.record_retry_s
        pause = 0.05
        while True:
            try:
                await complete(
                    self._redis, completions, int(time.time() * 1000), self._store.retention_ms
                )
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                if time.monotonic() >= deadline:
                    logger.exception(
                        "recording %d results failed; their entries stay pending", len(completions)
                    )
                    break
                await asyncio.sleep(pause)
                pause = min(1.0, pause * 2)
        for completion in completions:
            self._held.pop((completion.taken.partition, completion.taken.entry_id), None)

    # --- maintenance ---------------------------------------------------------------------

    async def _maintain_loop(self) -> None:
        settings = self.settings
        claim_every = settings.claim_idle_ms / 2000
        touch_every = settings.claim_idle_ms / 3000
        last_claim = last_touch = time.monotonic()
        while True:
            try:
                now = time.monotonic()
                await promote_due(
                    self._redis, self._store.partitions, int(time.time() * 1000), limit=1000
                )
                if now - last_touch >= touch_every:
                    last_touch = now
                    await touch(self._redis, self.consumer_name, list(self._held.values()))
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
            except Exception:
                logger.exception("dispatch queue maintenance failed")
            await asyncio.sleep(settings.promote_interval_s)


def _with(completion: Completion, result: str, **changes: object) -> Completion:
    from dataclasses import replace

    return replace(completion, result=result, **changes)  # type: ignore[arg-type]
