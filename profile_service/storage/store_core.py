"""The shared core of `ProfileStore`: its results and errors, its Lua scripts, and the
client, layout, engine and pipeline runner every job of the store (event batches, visit
ends, delayed actions) uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from profile_service.engine.state import Outcome, ProfileState
from profile_service.storage.commit import (
    COMMIT_SCRIPT,
    ProfileWrite,
    QueuedCommits,
    queue_commits,
)
from profile_service.storage.engine_api import EngineFunctions
from profile_service.storage.keyed_locks import KeyedLocks
from profile_service.storage.layout import Clock, Layout, system_clock_ms
from profile_service.storage.lua import is_noscript, load_scripts, storage_script
from profile_service.storage.recent_ids import DEFAULT_DEDUP_MAX_ENTRIES
from profile_service.storage.replies import as_text
from profile_service.storage.state_codec import decode_state
from profile_service.storage.trace_history import TraceHistory
from service_common.errors import Aborted
from service_common.redis_toolkit.replication import WaitPolicy, execute_acknowledged

__all__ = [
    "FIX_VISIT_DUE_SCRIPT",
    "MOVE_DELAYED_SCRIPT",
    "READ_VISITOR_SCRIPT",
    "DelayedReport",
    "EventApplyResult",
    "ProfileConflictError",
    "StoreCore",
    "StoreStats",
    "parse_profile",
    "raise_errors",
]

logger = logging.getLogger(__name__)

FIX_VISIT_DUE_SCRIPT = storage_script("fix_visit_due")
MOVE_DELAYED_SCRIPT = storage_script("move_delayed")
READ_VISITOR_SCRIPT = storage_script("read_visitor")
CLAIM_IDENTITY_SCRIPT = storage_script("claim_identity")
FREEZE_PROFILE_SCRIPT = storage_script("freeze_profile")
RETIRE_PROFILE_SCRIPT = storage_script("retire_profile")
_SCRIPTS = (
    COMMIT_SCRIPT,
    FIX_VISIT_DUE_SCRIPT,
    MOVE_DELAYED_SCRIPT,
    READ_VISITOR_SCRIPT,
    CLAIM_IDENTITY_SCRIPT,
    FREEZE_PROFILE_SCRIPT,
    RETIRE_PROFILE_SCRIPT,
)


class ProfileConflictError(Aborted):
    """Some profiles kept changing under this replica for every allowed attempt (``ABORTED``).

    Profiles of the batch not named here were committed; retrying the whole batch is safe
    when its events carry event ids (committed ones are then duplicates).
    """

    def __init__(self, profile_ids: Sequence[str]) -> None:
        super().__init__(
            "too many concurrent updates of the same visitor; retry the request",
            reason="PROFILE_UPDATE_CONFLICT",
            metadata={"profileCount": str(len(profile_ids))},
        )
        self.profile_ids = list(profile_ids)


@dataclass(frozen=True)
class EventApplyResult:
    """What applying one event of a batch did.

    Attributes:
        index: The event's position in the batch.
        profile_id: The profile the event was applied to (its visitor id or the survivor
            the visitor id is an alias of).
        duplicate: The event id was seen within the dedup window; nothing changed.
        outcome: The engine's outcome; ``None`` for a duplicate.
        stitched: Profiles merged into ``profile_id`` because of this event.
    """

    index: int
    profile_id: str
    duplicate: bool = False
    outcome: Outcome | None = None
    stitched: tuple[str, ...] = ()
    """Profiles this event's visitor-ID values stitched into ``profile_id``."""


@dataclass(frozen=True)
class DelayedReport:
    """What one pass over due delayed actions did."""

    fired: int = 0
    """Moved to the outbox (the visitor still qualified)."""
    dropped: int = 0
    """Removed without firing (no longer qualifies, profile gone, unreadable entry)."""


@dataclass
class StoreStats:
    """Counters for tests, benchmarks and metrics."""

    round_trips: int = 0
    """Pipelines and single commands sent to Redis (each one network round trip)."""
    batches: int = 0
    conflicts: int = 0
    """Compare-and-set attempts that found the profile changed and were retried."""
    visits_ended: int = 0
    stitches: int = 0
    """Stitches this store completed (two profiles made one)."""
    stitches_refused: int = 0
    """Stitches a guardrail refused."""


def raise_errors(replies: Sequence[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception) and not is_noscript(reply):
            raise reply


def parse_profile(reply: Any) -> tuple[ProfileState | None, str]:
    raw_state, raw_version = reply[0], reply[1]
    if raw_state is None:
        return None, ""
    state_bytes = raw_state if isinstance(raw_state, bytes) else str(raw_state).encode()
    return decode_state(state_bytes), as_text(raw_version) if raw_version else ""


class StoreCore:
    """What every job of `ProfileStore` shares: the client, layout, engine, locks, counters
    and the pipeline runner that reloads lost scripts.

    Args:
        client: The Redis client (``decode_responses`` either way, RESP2 or RESP3).
        layout: The dataset's partitioning.
        engine: The engine entry points (`EngineFunctions.real()` in production).
        clock: Epoch-milliseconds clock used when no ``now_ms`` is given.
        max_attempts: Compare-and-set attempts per profile before `ProfileConflictError`.
        dedup_max_entries: Most event ids remembered per profile (within the dedup window).
        on_outbox_write: Called after a commit that added actions to an outbox (e.g. the
            local forwarder's ``wake``), so they leave without waiting for its next poll.
        wait: Replicas that must confirm the commits of event batches before they are
            acknowledged (``redis_wait_replicas``; off by default).
        trace_history: Which profiles keep a trace history (`TraceHistory`; by default
            every profile, as a library; the service passes its settings).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        layout: Layout,
        engine: EngineFunctions,
        *,
        clock: Clock = system_clock_ms,
        max_attempts: int = 32,
        dedup_max_entries: int = DEFAULT_DEDUP_MAX_ENTRIES,
        on_outbox_write: Callable[[], None] | None = None,
        wait: WaitPolicy | None = None,
        trace_history: TraceHistory | None = None,
    ) -> None:
        self._client = client
        self._layout = layout
        self._engine = engine
        self._clock = clock
        self._max_attempts = max_attempts
        self._dedup_max_entries = dedup_max_entries
        self._on_outbox_write = on_outbox_write
        self._wait = wait or WaitPolicy()
        self._trace_history = trace_history or TraceHistory()
        self._locks = KeyedLocks()
        self.stats = StoreStats()

    @property
    def layout(self) -> Layout:
        """The dataset's partitioning."""
        return self._layout

    async def prepare(self) -> None:
        """Load the Lua scripts (call once at start-up; one round trip, not counted)."""
        await load_scripts(self._client, _SCRIPTS)

    async def _execute(self, pipe: redis.asyncio.client.Pipeline) -> list[Any]:
        self.stats.round_trips += 1
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        await self._reload_if_lost(replies)
        return replies

    async def _execute_acknowledged(
        self, fill: Callable[[redis.asyncio.client.Pipeline], None], confirm_keys: Sequence[str]
    ) -> list[Any]:
        """Run the writes ``fill`` queues in one round trip, acknowledged per the store's
        ``WAIT`` policy (`execute_acknowledged`; ``ReplicasNotConfirmed`` if replicas fall
        short); replies as `_execute`."""
        self.stats.round_trips += 1
        replies = await execute_acknowledged(
            self._client, fill, self._wait, confirm_keys=confirm_keys
        )
        await self._reload_if_lost(replies)
        return replies

    async def _commit_acknowledged(
        self, writes: Sequence[ProfileWrite], confirm_keys: Sequence[str] = ()
    ) -> list[bool]:
        """Run ``writes`` (`queue_commits`: one script call per partition) in one round
        trip acknowledged like `_execute_acknowledged`; which of them committed."""
        queued: list[QueuedCommits] = []

        def fill(pipe: redis.asyncio.client.Pipeline) -> None:
            queued[:] = [queue_commits(pipe, writes)]

        replies = await self._execute_acknowledged(fill, confirm_keys)
        return queued[0].committed(replies)

    async def _reload_if_lost(self, replies: Sequence[Any]) -> None:
        if any(is_noscript(r) for r in replies):
            # Redis lost its script cache (restart, SCRIPT FLUSH): reload; the callers treat
            # the NOSCRIPT replies like conflicts and retry that work.
            logger.warning("Redis has lost the storage scripts; loading them again")
            await self.prepare()
