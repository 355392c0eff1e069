"""The outbox forwarder: moves fired actions from the partition outboxes to the dispatch service.

The profile commit appends fired actions to its partition's outbox stream in the same atomic
step as the profile. Forwarders (one per replica, all in the consumer group ``forwarders``)
read the outboxes, submit the actions to the dispatch service and only then acknowledge and
delete the entries. Hence:

- a replica that dies after committing a profile loses nothing: the entry is in the outbox;
- a forwarder that dies after reading but before acknowledging leaves the entries pending in
  the group; another forwarder (or itself after a restart) claims them with ``XAUTOCLAIM``
  once they have been idle for ``claim_idle_ms``;
- while the dispatch service is down the forwarder retries with exponential backoff (and
  keeps its entries claimed, so no other forwarder submits them meanwhile).

Delivery to ``submit`` is at least once; a resubmission happens only when a forwarder died
between a successful submit and its acknowledgement (or stalled longer than
``claim_idle_ms``). The dispatch service deduplicates by idempotency key, so each action
takes effect exactly once.

Reads are one pipeline of one ``XREADGROUP`` per partition (not one multi-stream command),
so that they also work on Redis Cluster where partitions live in different slots (the shared
reader of :mod:`service_common.redis_toolkit.streams`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

import redis.asyncio
import redis.exceptions
from google.protobuf.message import DecodeError

from crowd.dispatch.v1 import action_pb2
from profile_service.storage.background import BackgroundLoop
from profile_service.storage.layout import Layout
from service_common.redis import REDIS_FAILURES
from service_common.redis_toolkit import streams
from service_common.redis_toolkit.retry import Backoff, FailureBackoff

__all__ = ["FORWARDER_GROUP", "ForwarderStats", "OutboxForwarder", "Submit", "SubmitRejected"]

logger = logging.getLogger(__name__)

FORWARDER_GROUP = "forwarders"

Submit = Callable[[list[action_pb2.Action]], Awaitable[None]]
"""Hands actions to the dispatch service (production: ``SubmitActions`` with the actions'
idempotency keys). Returns once the dispatch service stored them; raises on failure, which
makes the forwarder retry the same actions later."""

MAX_SUBMIT = 1000
"""``SubmitActions`` takes at most 1,000 actions."""


class SubmitRejected(Exception):
    """Raised by a `Submit` when the dispatch service refused some actions permanently
    (invalid input). The forwarder drops those entries (logging their keys) and submits
    the others again, so one bad action cannot block an outbox forever."""

    def __init__(self, idempotency_keys: Collection[str], reason: str = "") -> None:
        super().__init__(reason or "actions refused by the dispatch service")
        self.idempotency_keys = frozenset(idempotency_keys)
        self.reason = reason


@dataclass(frozen=True)
class _Pending:
    partition: int
    entry_id: str
    key: str
    action: action_pb2.Action | None
    """``None`` when the entry cannot be parsed (dropped with an error log)."""


@dataclass
class ForwarderStats:
    """Counters for tests and metrics."""

    rounds: int = 0
    forwarded: int = 0
    submit_failures: int = 0
    rejected: int = 0
    claimed: int = 0


def _consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{random.randrange(16**6):06x}"


class OutboxForwarder:
    """Drains the partition outboxes into the dispatch service.

    Args:
        client: The Redis client.
        layout: The dataset's partitioning.
        submit: Hands a list of actions to the dispatch service (see `Submit`).
        consumer: This forwarder's consumer name (default: host, pid and a random suffix).
        read_count: Most entries read per partition per round.
        idle_interval_s: Pause after a round that found nothing (`wake` cuts it short).
        claim_idle_ms: Pending entries idle for longer are taken over from their consumer
            (it is presumed dead).
        claim_interval_s: How often stale pending entries are looked for.
        initial_backoff_s / max_backoff_s: Retry delays while ``submit`` fails.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        layout: Layout,
        submit: Submit,
        *,
        consumer: str | None = None,
        read_count: int = 100,
        idle_interval_s: float = 0.1,
        claim_idle_ms: int = 30_000,
        claim_interval_s: float = 5.0,
        initial_backoff_s: float = 0.1,
        max_backoff_s: float = 10.0,
    ) -> None:
        self._client = client
        self._layout = layout
        self._submit = submit
        self.consumer = consumer or _consumer_name()
        self._read_count = read_count
        self._idle_interval_s = idle_interval_s
        self._claim_idle_ms = claim_idle_ms
        self._claim_interval_s = claim_interval_s
        self._backoff = Backoff(initial_backoff_s, max_backoff_s)
        self._next_claim = 0.0
        self._claim_cursors = ["0-0"] * layout.partitions
        self._outboxes = [pkeys.outbox for pkeys in layout.all_partitions()]
        self._wake = asyncio.Event()
        self._loop = BackgroundLoop("outbox-forwarder")
        self._groups_ready = False
        self.stats = ForwarderStats()

    def wake(self) -> None:
        """Start the next round now (call after committing actions)."""
        self._wake.set()

    async def ensure_groups(self) -> None:
        """Create the consumer group on every partition's outbox (idempotent)."""
        # from "0": entries written before the group existed are forwarded too.
        await streams.create_groups(self._client, self._outboxes, FORWARDER_GROUP)
        self._groups_ready = True

    async def forward_once(self) -> int:
        """One round: claim stale entries, read new ones, submit, acknowledge.

        Returns the number of entries handled (forwarded or dropped as invalid).
        """
        self.stats.rounds += 1
        if not self._groups_ready:
            await self.ensure_groups()
        pending = await self._claim_stale() if time.monotonic() >= self._next_claim else []
        pending += await self._read_new()
        if not pending:
            return 0
        done = [p for p in pending if p.action is None]
        for bad in done:
            logger.error("dropping an unreadable outbox entry %s (key %r)", bad.entry_id, bad.key)
        readable = [p for p in pending if p.action is not None]
        for start in range(0, len(readable), MAX_SUBMIT):
            chunk = readable[start : start + MAX_SUBMIT]
            if not await self._submit_with_retry(chunk):
                break  # stopping: the rest stays pending and will be claimed later
            done += chunk
            self.stats.forwarded += len(chunk)
        await self._acknowledge(done)
        return len(done)

    async def _read_new(self) -> list[_Pending]:
        raws = await streams.read_new(
            self._client,
            self._outboxes,
            FORWARDER_GROUP,
            self.consumer,
            count=self._read_count * len(self._outboxes),  # read_count per partition
            block_ms=0,
            per_stream=True,
        )
        return [self._parse(raw) for raw in raws]

    async def _claim_stale(self) -> list[_Pending]:
        self._next_claim = time.monotonic() + self._claim_interval_s
        raws = await streams.claim_stale(
            self._client,
            self._outboxes,
            FORWARDER_GROUP,
            self.consumer,
            self._claim_idle_ms,
            self._read_count,
            cursors=self._claim_cursors,
        )
        claimed = [self._parse(raw) for raw in raws]
        self.stats.claimed += len(claimed)
        return claimed

    @staticmethod
    def _parse(entry: streams.RawEntry) -> _Pending:
        partition, raw_id, fields = entry
        entry_id = raw_id.decode()
        key = fields.get(b"k", b"").decode("utf-8", errors="replace")
        raw = fields.get(b"a")
        if raw is None:
            return _Pending(partition, entry_id, key, None)
        action = action_pb2.Action()
        try:
            action.ParseFromString(raw)
        except DecodeError:
            return _Pending(partition, entry_id, key, None)
        if not action.idempotency_key:
            action.idempotency_key = key
        return _Pending(partition, entry_id, key, action)

    async def _submit_with_retry(self, batch: Sequence[_Pending]) -> bool:
        """Submit until the dispatch service accepts (True) or the forwarder stops (False);
        meanwhile keep the entries claimed."""
        remaining = list(batch)
        backoff = FailureBackoff(self._backoff)
        last_refresh = time.monotonic()
        while remaining:
            if self._loop.stopping:
                return False
            try:
                await self._submit([p.action for p in remaining if p.action is not None])
                return True
            except SubmitRejected as rejected:
                refused = [p for p in remaining if p.key in rejected.idempotency_keys]
                for p in refused:
                    logger.error(
                        "the dispatch service refused action %r: %s", p.key, rejected.reason
                    )
                self.stats.rejected += len(refused)
                if not refused:  # names none of ours: treat like any other failure
                    raise
                remaining = [p for p in remaining if p.key not in rejected.idempotency_keys]
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.submit_failures += 1
                delay = backoff.next_delay()
                logger.warning(
                    "submitting %d actions failed (%s); retrying in %.2fs",
                    len(remaining),
                    type(exc).__name__,
                    delay,
                )
                await self._loop.pause(delay)
            if (time.monotonic() - last_refresh) * 1000 > self._claim_idle_ms / 2:
                await self._keep_claimed(remaining)
                last_refresh = time.monotonic()
        return True

    async def _keep_claimed(self, entries: Sequence[_Pending]) -> None:
        """Reset the entries' idle time so no other forwarder takes them while we retry."""
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await streams.keep_claimed(
                self._client,
                self._outboxes,
                FORWARDER_GROUP,
                self.consumer,
                _ids_by_partition(entries),
            )

    async def _acknowledge(self, entries: Sequence[_Pending]) -> None:
        await streams.ack(self._client, self._outboxes, FORWARDER_GROUP, _ids_by_partition(entries))

    async def run(self) -> None:
        """Forward until `stop`; Redis failures are logged and retried."""
        backoff = FailureBackoff(self._backoff)
        while not self._loop.stopping:
            try:
                handled = await self.forward_once()
                backoff.succeeded()
            except REDIS_FAILURES as exc:
                logger.warning("outbox forwarding failed (%s); retrying", type(exc).__name__)
                await self._loop.pause(backoff.next_delay())
                continue
            if handled == 0:
                await self._loop.pause(self._idle_interval_s, self._wake)
                self._wake.clear()

    def start(self) -> None:
        """Start forwarding in a background task."""
        self._loop.start(self.run)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop forwarding: the current round finishes (a submit being retried is given
        up), then the task ends; it is cancelled if that takes longer than ``grace_s``.
        Entries read but not acknowledged stay pending and are claimed by a forwarder
        after ``claim_idle_ms``."""
        await self._loop.stop(grace_s)


def _ids_by_partition(entries: Sequence[_Pending]) -> dict[int, list[bytes | str]]:
    ids: dict[int, list[bytes | str]] = {}
    for entry in entries:
        ids.setdefault(entry.partition, []).append(entry.entry_id)
    return ids
