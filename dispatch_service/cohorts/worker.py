"""The cohort worker: queue entries → one run per cohort → Braze → acknowledged entries.

One :class:`CohortWorker` per process (any number of processes). It reads every partition's
cohort queue as one consumer of the ``cohort-senders`` group. For each cohort named by an
entry it runs the cohort once (:meth:`CohortWorker._work`):

1. take the cohort's lease (another replica working on it: wait for it);
2. remove the cohort from the dirty set, so that changes accepted from now on queue a new
   entry (nothing accepted during the run can be stranded);
3. run rounds (:class:`~dispatch_service.cohorts.sender.CohortSender`) until nothing is
   pending; after a transient failure wait — the wait Braze named (``Retry-After`` /
   ``X-Ratelimit-Retry-After``), else exponential backoff with full jitter — and go on;
4. acknowledge and delete the entry, free the lease.

Guarantee: **at least once**, per cohort in order. A change leaves the pending hash only
when Braze accepted it (2xx) or refused it for good (then it is in the dead letters with
Braze's reason), and only if no newer change of the same identifier replaced it meanwhile.
A worker that dies holds its entries pending; after ``claim_idle_ms`` another takes them over
(``XAUTOCLAIM``) and, once the dead worker's lease expired, sends what is still pending. A
change may reach Braze twice (the worker died between Braze's answer and the settle step, or
a request timed out on our side although Braze processed it): harmless, adding a member twice
or removing an absent one changes nothing. Transient failures are retried until
``max_age_s`` of the connector has passed since the first failure of the run; then the
cohort's pending changes are dead-lettered ("gave up after N attempts ...").

A cohort whose connector is no longer configured keeps its pending changes (logged, entry
acknowledged); they are sent by the next run after the connector is back and the cohort
receives a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

import aiohttp
import redis.asyncio as aioredis
from opentelemetry.trace import TracerProvider

from dispatch_service.braze.connector import BrazeConnector
from dispatch_service.braze.rate_limit import SharedRateLimiter
from dispatch_service.braze.retry import backoff_delay
from dispatch_service.cohorts.client import CohortClient
from dispatch_service.cohorts.intake import can_sync_cohorts
from dispatch_service.cohorts.queue import (
    Entry,
    Lease,
    acknowledge,
    claim_stale,
    read_new,
    touch,
)
from dispatch_service.cohorts.sender import CohortSender, RunState
from dispatch_service.cohorts.store import CohortStore
from dispatch_service.metrics import record_cohort_dead_letters
from service_common.keys import CohortKeys
from service_common.redis_toolkit.streams import read_loop

__all__ = ["CohortWorker", "CohortWorkerSettings", "cohort_senders"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortWorkerSettings:
    """Tuning of a cohort worker; the defaults suit production."""

    read_count: int = 100
    """Most entries taken per read."""
    block_ms: int = 100
    """Longest one read waits for entries (also how fast ``stop`` is noticed)."""
    claim_idle_ms: int = 30_000
    """Entries pending this long with another consumer are taken over; live workers refresh
    theirs (and their leases) every third of this."""
    claim_count: int = 100
    """Most entries taken over per partition per claim round."""
    lease_ms: int = 30_000
    """Lifetime of a cohort lease unless renewed (how long a dead worker blocks a cohort)."""
    lease_poll_s: float = 0.2
    """How often a run waiting for another replica's lease checks it again."""
    max_active: int = 64
    """Cohorts sent concurrently by this worker."""
    max_held: int = 10_000
    """Entries held in memory before reading pauses."""
    round_ids: int = 10_000
    """Most identifiers read and sent per round."""


@dataclass
class _Job:
    """One run over a cohort, and the entries it will acknowledge."""

    entry: Entry
    entries: list[Entry]
    later: list[Entry] = field(default_factory=list)
    """Entries of the same cohort taken during the run: they get a run of their own."""
    lease: Lease | None = None
    lost: bool = False
    """The lease expired and another worker may have the cohort: stop after this round."""


def cohort_senders(
    connectors: Mapping[str, BrazeConnector],
    redis: aioredis.Redis,
    partitions: int,
    session: aiohttp.ClientSession,
    tracer_provider: TracerProvider | None = None,
    *,
    round_ids: int = 10_000,
) -> dict[str, CohortSender]:
    """A sender per connector that can sync cohorts (sharing one HTTP session)."""
    senders: dict[str, CohortSender] = {}
    for connector_id, connector in connectors.items():
        if not can_sync_cohorts(connector):
            continue
        client = CohortClient(
            connector, session, SharedRateLimiter(redis, connector), tracer_provider
        )
        senders[connector_id] = CohortSender(
            connector, client, redis, partitions, round_ids=round_ids
        )
    return senders


class CohortWorker:
    """Sends accepted cohort changes; see the module docstring for the guarantees.

    Args:
        store: The cohort store (its Redis client and partitions are used).
        senders: Connector id -> its sender (:func:`cohort_senders`).
        consumer_name: This worker's stable name in the consumer group (e.g. host:pid).
        settings: Tuning; see :class:`CohortWorkerSettings`.
        rng: Random source of the backoff jitter.
    """

    def __init__(
        self,
        store: CohortStore,
        senders: Mapping[str, CohortSender],
        *,
        consumer_name: str,
        settings: CohortWorkerSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._redis = store.redis
        self._senders = dict(senders)
        self.consumer_name = consumer_name
        self.settings = settings or CohortWorkerSettings()
        self._rng = rng
        self._slots = asyncio.Semaphore(self.settings.max_active)
        self._jobs: dict[str, _Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[tuple[int, bytes], Entry] = {}
        self._stopping = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._maintainer: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Create the queues' consumer groups if needed and start working."""
        await self._store.ensure_queues()
        self._reader = asyncio.create_task(self._read_loop(), name="cohort-read")
        self._maintainer = asyncio.create_task(self._maintain_loop(), name="cohort-maintain")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop reading; let runs finish their current round within ``grace`` seconds.

        Runs that still have changes pending stop without acknowledging their entries: the
        changes stay pending and another worker (or this one, restarted) takes them over.
        """
        self._stopping.set()
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._reader), grace)
            self._reader.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._maintainer is not None:
            self._maintainer.cancel()
        pending = [t for t in (self._reader, self._maintainer) if t is not None]
        await asyncio.gather(*self._tasks, *pending, return_exceptions=True)
        for job in list(self._jobs.values()):
            if job.lease is not None:
                with contextlib.suppress(Exception):
                    await job.lease.release()

    @property
    def active(self) -> int:
        """Cohorts being run (or waiting for a slot or a lease)."""
        return len(self._jobs)

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
            stopping=self._stopping.is_set,
            held_full=lambda: len(self._held) >= settings.max_held,
            pause_s=settings.block_ms / 1000,
            ensure_groups=self._store.ensure_queues,
            what="cohort queues",
        )

    def _take(self, entries: list[Entry]) -> None:
        for entry in entries:
            held_key = (entry.partition, entry.entry_id)
            if held_key in self._held:
                continue  # our own entry, reclaimed while we work on it
            self._held[held_key] = entry
            job = self._jobs.get(entry.member)
            if job is not None:
                job.later.append(entry)
            else:
                self._start_job(entry, [entry])

    def _start_job(self, entry: Entry, entries: list[Entry]) -> None:
        job = _Job(entry, entries)
        self._jobs[entry.member] = job
        task = asyncio.create_task(self._run(job), name=f"cohort-{entry.cohort_id[:40]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one run -------------------------------------------------------------------------

    async def _run(self, job: _Job) -> None:
        finished = False
        try:
            async with self._slots:
                finished = await self._work(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "cohort run failed for connector %s; its entries will be taken over",
                job.entry.connector_id,
            )
        finally:
            if job.lease is not None:
                with contextlib.suppress(Exception):
                    await job.lease.release()
        if finished:
            try:
                await acknowledge(self._redis, job.entries)
            except Exception:
                # The entries stay pending and are taken over later: a harmless extra run.
                logger.exception("acknowledging cohort entries failed")
        # Unfinished entries are let go of too: XAUTOCLAIM hands them out again.
        for entry in job.entries:
            self._held.pop((entry.partition, entry.entry_id), None)
        self._jobs.pop(job.entry.member, None)
        if job.later and not self._stopping.is_set():
            self._start_job(job.later[0], job.later)

    async def _work(self, job: _Job) -> bool:
        """Run the cohort until nothing is pending; True if its entries may be acknowledged."""
        entry = job.entry
        if self._stopping.is_set():
            return False  # waited for a slot until shutdown: leave it to the next worker
        lease = Lease(self._redis, entry, self.settings.lease_ms)
        while not await lease.acquire():
            if not await self._pause(self.settings.lease_poll_s):
                return False
        job.lease = lease
        keys = CohortKeys(entry.partition)
        # From here on, an intake queues a new entry: its changes cannot be stranded.
        await self._redis.srem(keys.dirty, entry.member)
        sender = self._senders.get(entry.connector_id)
        if sender is None:
            waiting = await self._redis.hlen(keys.pending(entry.connector_id, entry.cohort_id))
            logger.warning(
                "connector %s cannot sync cohorts (not configured, or no partner credentials); "
                "%d changes of a cohort stay pending",
                entry.connector_id,
                waiting,
            )
            return True
        state = RunState(entry.cohort_id)
        failing_since: float | None = None
        while True:
            if job.lost or self._stopping.is_set():
                return False
            result = await sender.run_round(state)
            if result.done:
                return True
            if result.retry is None:
                state.attempt, failing_since = 1, None
                continue
            now = time.monotonic()
            failing_since = now if failing_since is None else failing_since
            delay = self._retry_delay(
                sender.connector, state.attempt, now - failing_since, result.retry.retry_after_s
            )
            if delay is None:
                moved = await sender.dead_letter_pending(
                    entry.cohort_id,
                    f"gave up after {state.attempt} attempts: {result.retry.reason}",
                    result.retry.http_status,
                )
                record_cohort_dead_letters(moved)
                logger.warning(
                    "gave up on %d cohort changes of connector %s after %d attempts",
                    moved,
                    entry.connector_id,
                    state.attempt,
                )
                return True
            state.attempt += 1
            if not await self._pause(delay):
                return False

    def _retry_delay(
        self, connector: BrazeConnector, attempt: int, failing_s: float, retry_after: float | None
    ) -> float | None:
        """The wait before the next round, or ``None`` once the run has failed for longer
        than the connector's ``max_age_s`` (cohort changes are retried by time, not by count:
        they are idempotent, and giving up early would leave the cohort out of sync)."""
        delay = retry_after if retry_after is not None else backoff_delay(attempt, rng=self._rng)
        if failing_s + delay > connector.max_age_s:
            return None
        return delay

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``; False (at once) if the worker is stopping."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()

    # --- maintenance ---------------------------------------------------------------------

    async def _maintain_loop(self) -> None:
        settings = self.settings
        refresh_every = min(settings.claim_idle_ms, settings.lease_ms) / 3000
        claim_every = settings.claim_idle_ms / 2000
        last_claim = time.monotonic()
        while True:
            await asyncio.sleep(refresh_every)
            try:
                await touch(self._redis, self.consumer_name, list(self._held.values()))
                for job in list(self._jobs.values()):
                    if job.lease is not None and job.lease.held and not await job.lease.renew():
                        job.lost = True
                now = time.monotonic()
                if now - last_claim >= claim_every and not self._stopping.is_set():
                    last_claim = now
                    claimed = await claim_stale(
                        self._redis,
                        self._store.partitions,
                        self.consumer_name,
                        settings.claim_idle_ms,
                        settings.claim_count,
                    )
                    self._take(claimed)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("cohort queue maintenance failed")
