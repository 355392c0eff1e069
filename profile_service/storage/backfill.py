"""Audience backfill: fill added or changed audiences from the profiles already stored.

When the current definitions version adds an audience or changes an audience's expression
(compared with the last version this job looked at, kept as per-audience digests in
``BACKFILL_JOB``; with no record yet, with the previous published version), a **job** for
that version starts: every partition's profiles are scanned (``SCAN … MATCH`` of the profile
keys on the master holding it) and each profile is re-evaluated for those audiences through
the normal compare-and-set commit (`Reevaluations`).

- **One walk per node:** a SCAN cursor is a position in the node's whole keyspace, so the
  unfinished partitions at the same cursor on one node share each SCAN step (the MATCH
  covers every partition's profile keys and the ids are routed to their partitions); a pass
  walks each node's keyspace once, not once per partition.

- **Durable, resumable:** each partition's cursor and counters are stored in its own
  ``backfill`` hash after the chunk's commits. A replica that dies mid-chunk leaves the old
  cursor; the chunk is redone, and a profile already updated re-evaluates to no change.
- **Shared between replicas:** a replica takes a partition for one chunk with a lease
  (``SET NX PX``), in a per-replica random order, so replicas work on different partitions.
- **Rate-limited:** at most ``profiles_per_second`` profiles per replica.
- **Superseded:** a newer version that adds or changes audiences starts a new job (cursors
  restart); audiences of an unfinished older job are carried into it.
- **Actions:** joins and leaves fire the audience's JOINED / LEFT actions only if the
  audience sets ``backfill_fires_actions``; keys ``{profile}:{action}:backfill:{version}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import CompiledDefinitions
from profile_service.storage.background import BackgroundLoop
from profile_service.storage.definitions_store import DefinitionsStore
from profile_service.storage.layout import Clock, system_clock_ms
from profile_service.storage.lua import storage_script
from profile_service.storage.profile_store import ProfileStore
from profile_service.storage.replies import as_text
from service_common import keys
from service_common.keys import PartitionKeys
from service_common.redis import REDIS_FAILURES

__all__ = [
    "BackfillProgress",
    "BackfillWorker",
    "PartitionProgress",
    "audience_digests",
    "backfill_figures",
    "read_backfill_progress",
]

logger = logging.getLogger(__name__)

START_JOB_SCRIPT = storage_script("backfill_start")
LEASE_MS = 30_000
SCAN_COUNT_MAX = 10_000
"""Most keys one SCAN step walks. Redis runs a SCAN to its end before any other command:
at ``COUNT 200000`` one step held every GetProfile for tens of milliseconds; 10,000 keys
take about a millisecond, at the price of more (cheap) steps per pass."""


def audience_digests(audiences: Mapping[str, pb.AudienceDefinition]) -> dict[str, str]:
    """Audience id -> digest of its expression (what decides whether it needs a backfill)."""
    return {
        audience_id: hashlib.sha256(
            audience.expression.SerializeToString(deterministic=True)
        ).hexdigest()[:16]
        for audience_id, audience in audiences.items()
    }


@dataclass(frozen=True)
class PartitionProgress:
    """One partition's progress in the current job."""

    partition: int
    scanned: int = 0
    joins: int = 0
    done: bool = False


@dataclass(frozen=True)
class BackfillProgress:
    """The current job's progress (``version`` empty: no backfill has run)."""

    version: str = ""
    audience_ids: tuple[str, ...] = ()
    partitions: tuple[PartitionProgress, ...] = field(default_factory=tuple)

    @property
    def scanned(self) -> int:
        return sum(p.scanned for p in self.partitions)

    @property
    def joins(self) -> int:
        return sum(p.joins for p in self.partitions)

    @property
    def partitions_done(self) -> int:
        return sum(1 for p in self.partitions if p.done)

    @property
    def state(self) -> str:
        """``idle`` (no job yet), ``running`` or ``done``."""
        if not self.version:
            return "idle"
        return "done" if self.partitions_done == len(self.partitions) else "running"

    def figures(self) -> dict[str, float]:
        """Flat numbers for metrics (e.g. Prometheus gauges)."""
        return {
            "backfill_profiles_scanned": float(self.scanned),
            "backfill_joins_found": float(self.joins),
            "backfill_partitions_done": float(self.partitions_done),
            "backfill_partitions_total": float(len(self.partitions)),
            "backfill_running": 1.0 if self.state == "running" else 0.0,
        }


def _text_map(reply: Any) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in (reply or {}).items()}


async def read_backfill_progress(client: redis.asyncio.Redis, partitions: int) -> BackfillProgress:
    """Read the current job and every partition's progress (2 round trips)."""
    job = _text_map(await client.hgetall(keys.BACKFILL_JOB))
    version = job.get("job", "")
    if not version:
        return BackfillProgress()
    async with client.pipeline(transaction=False) as pipe:
        for partition in range(partitions):
            pipe.hgetall(PartitionKeys(partition).backfill)
        replies = await pipe.execute()
    progress = []
    for partition, reply in enumerate(replies):
        row = _text_map(reply)
        if row.get("job") != version:
            progress.append(PartitionProgress(partition))
            continue
        progress.append(
            PartitionProgress(
                partition,
                scanned=int(row.get("scanned", 0)),
                joins=int(row.get("joins", 0)),
                done=row.get("done") == "1",
            )
        )
    return BackfillProgress(
        version=version,
        audience_ids=tuple(json.loads(job.get("audiences", "[]"))),
        partitions=tuple(progress),
    )


async def backfill_figures(client: redis.asyncio.Redis, partitions: int) -> dict[str, float]:
    """The current job's progress as flat numbers (the metrics' backfill gauges)."""
    return (await read_backfill_progress(client, partitions)).figures()


def _number(version: str) -> int:
    """The sequence number of a version id ``v<N>`` (0 for none)."""
    digits = version.removeprefix("v")
    return int(digits) if digits.isdigit() else 0


class _Pacer:
    """Keeps a replica at or below ``rate`` profiles per second."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._next = time.monotonic()

    async def take(self, count: int) -> None:
        now = time.monotonic()
        self._next = max(self._next, now) + count / self._rate
        wait = self._next - now - 1.0  # a one-second burst is allowed
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass
class _WalkGroup:
    """Unfinished partitions whose next SCAN step starts at the same cursor on one node."""

    node: str  # "" on a standalone Redis
    cursor: int
    partitions: list[int] = field(default_factory=list)


_PARTITION_PREFIX = f"{keys.PREFIX}:{{p"
_PROFILE_INFIX = "}:profile:"
#: Every partition's profile keys: ``crowd:v1:{p<N>}:profile:<id>`` (braces escaped for MATCH).
_PROFILE_PATTERN = f"{keys.PREFIX}:\\{{p*\\}}:profile:*"


def _parse_profile_key(key: str) -> tuple[int, str] | None:
    """(partition, profile id) of a profile key, or None for another key the pattern matched."""
    if not key.startswith(_PARTITION_PREFIX):
        return None
    number, infix, profile_id = key[len(_PARTITION_PREFIX) :].partition(_PROFILE_INFIX)
    if not infix or not number.isdigit():
        return None
    return int(number), profile_id


class BackfillWorker:
    """Starts backfill jobs for new versions and works on their partitions.

    Args:
        client: The Redis client (standalone or cluster).
        store: Commits the re-evaluations.
        definitions_store: Reads the previous version when no job record exists yet.
        definitions: Returns the current compiled definitions.
        profiles_per_second: Rate limit per replica.
        chunk: About how many profiles one partition step takes.
        interval_s: Pause when there is nothing to do.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        store: ProfileStore,
        definitions_store: DefinitionsStore,
        definitions: Callable[[], CompiledDefinitions],
        *,
        profiles_per_second: float = 1000.0,
        chunk: int = 200,
        interval_s: float = 1.0,
        clock: Clock = system_clock_ms,
    ) -> None:
        self._client = client
        self._store = store
        self._definitions_store = definitions_store
        self._definitions = definitions
        self._partitions = store.layout.partitions
        self._chunk = chunk
        self._interval_s = interval_s
        self._clock = clock
        self._pacer = _Pacer(profiles_per_second)
        self._owner = secrets.token_hex(8)
        self._order = list(range(self._partitions))
        random.shuffle(self._order)
        self._loop = BackgroundLoop("audience-backfill")
        self._advanced = False  # a cursor moved in the last step (even past no profile)
        self._finished: str | None = None  # a job this replica saw every partition finish
        self.fault_after_commit: Callable[[], None] | None = None
        """Test hook: called after a chunk's commits, before its progress is saved."""

    # --- jobs --------------------------------------------------------------------------

    async def ensure_job(self, defs: CompiledDefinitions) -> dict[str, str]:
        """Start a job for ``defs`` if it adds or changes audiences; return the job record."""
        job = _text_map(await self._client.hgetall(keys.BACKFILL_JOB))
        if not defs.version or _number(job.get("baseline_version", "")) >= _number(defs.version):
            return job  # already looked at (or this replica has not switched yet)
        current = audience_digests(defs.audiences)
        if job:
            baseline: dict[str, str] = json.loads(job.get("baseline", "{}"))
        else:
            baseline = await self._previous_digests(defs.version)
        targets = {a for a, digest in current.items() if baseline.get(a) != digest}
        if job.get("job"):
            progress = await read_backfill_progress(self._client, self._partitions)
            if progress.state == "running":
                targets |= {a for a in progress.audience_ids if a in current}
        fields = {
            "baseline_version": defs.version,
            "baseline": json.dumps(current, sort_keys=True),
        }
        if targets:
            fields |= {
                "job": defs.version,
                "audiences": json.dumps(sorted(targets)),
                "started": str(self._clock()),
            }
            logger.info("backfill of %s for audiences %s", defs.version, sorted(targets))
        await START_JOB_SCRIPT.run(
            self._client,
            [keys.BACKFILL_JOB],
            [job.get("baseline_version", ""), *(x for kv in fields.items() for x in kv)],
        )
        return _text_map(await self._client.hgetall(keys.BACKFILL_JOB))

    async def _previous_digests(self, version: str) -> dict[str, str]:
        history = [as_text(v) for v in await self._client.zrange(keys.DEFINITIONS_HISTORY, 0, -1)]
        if version not in history or history.index(version) == 0:
            return {}
        previous = await self._definitions_store.find(history[history.index(version) - 1])
        if previous is None:
            return {}
        return audience_digests({a.id: a for a in previous.definitions.audiences})

    # --- work --------------------------------------------------------------------------

    async def step(self) -> int:
        """Work one chunk on each partition this replica can take; return profiles scanned."""
        defs = self._definitions()
        job = await self.ensure_job(defs)
        version = job.get("job", "")
        if not version or _number(version) > _number(defs.version):
            return 0  # no job, or this replica has not switched to the job's version yet
        if version == self._finished:
            return 0  # a finished job stays finished: no need to read every partition's row
        audience_ids = frozenset(json.loads(job.get("audiences", "[]"))) & defs.audiences.keys()
        groups = await self._walk_groups(version)
        if not groups:
            self._finished = version
        scanned = 0
        for group in groups:
            scanned += await self._group_step(defs, version, audience_ids, group)
        return scanned

    async def _walk_groups(self, version: str) -> list[_WalkGroup]:
        """The unfinished partitions, grouped by (node, cursor): one SCAN step serves a group.

        A SCAN cursor is a position in the node's whole keyspace, not in one partition's
        keys, so partitions at the same cursor on the same node share one walk: a pass
        costs the keyspace once per node instead of once per partition.
        """
        async with self._client.pipeline(transaction=False) as pipe:
            for partition in self._order:
                pipe.hgetall(PartitionKeys(partition).backfill)
            replies = await pipe.execute()
        groups: dict[tuple[str, int], _WalkGroup] = {}
        for partition, reply in zip(self._order, replies, strict=True):
            row = _text_map(reply)
            if row.get("job") == version and row.get("done") == "1":
                continue
            cursor = int(row["cursor"]) if row.get("job") == version else 0
            node = self._node_of(partition)
            group = groups.setdefault((node, cursor), _WalkGroup(node, cursor))
            group.partitions.append(partition)
        return list(groups.values())

    def _node_of(self, partition: int) -> str:
        """The name of the master holding ``partition`` ("" on a standalone Redis)."""
        client: Any = self._client
        if isinstance(client, redis.asyncio.RedisCluster):
            node = client.get_node_from_key(PartitionKeys(partition).profile(""))
            return str(node.name) if node is not None else ""
        return ""

    async def _group_step(
        self,
        defs: CompiledDefinitions,
        version: str,
        audience_ids: frozenset[str],
        group: _WalkGroup,
    ) -> int:
        next_cursor, found = await self._scan(group)
        scanned = 0
        for partition in group.partitions:
            scanned += await self._partition_step(
                defs,
                version,
                audience_ids,
                partition,
                (group.cursor, next_cursor),
                found.get(partition, []),
            )
        return scanned

    async def _partition_step(
        self,
        defs: CompiledDefinitions,
        version: str,
        audience_ids: frozenset[str],
        partition: int,
        walk: tuple[int, int],
        profile_ids: list[str],
    ) -> int:
        """Re-evaluate the partition's profiles of one walk step ``(cursor, next cursor)``."""
        pkeys = PartitionKeys(partition)
        if not await self._client.set(pkeys.backfill_lease, self._owner, nx=True, px=LEASE_MS):
            return 0
        try:
            row = _text_map(await self._client.hgetall(pkeys.backfill))
            if row.get("job") != version:
                row = {"job": version, "cursor": "0", "scanned": "0", "joins": "0", "done": "0"}
            cursor, next_cursor = walk
            if row.get("done") == "1" or int(row["cursor"]) != cursor:
                return 0  # another replica moved it on since this walk step was read
            await self._pacer.take(max(1, len(profile_ids)))
            report = await self._store.reevaluate_profiles(
                defs,
                profile_ids,
                self._clock(),
                cause=f"backfill:{version}",
                audience_ids=audience_ids,
                fires_actions=lambda a: defs.audiences[a].backfill_fires_actions,
            )
            if self.fault_after_commit is not None:
                self.fault_after_commit()
            await self._client.hset(
                pkeys.backfill,
                mapping={
                    "job": version,
                    "cursor": str(next_cursor),
                    "scanned": str(int(row["scanned"]) + len(profile_ids)),
                    "joins": str(int(row["joins"]) + report.joins),
                    "done": "1" if next_cursor == 0 else "0",
                },
            )
            self._advanced = True
            return len(profile_ids)
        finally:
            await self._client.delete(pkeys.backfill_lease)

    async def _scan(self, group: _WalkGroup) -> tuple[int, dict[int, list[str]]]:
        """One SCAN step from the group's cursor over every partition's profile keys on its
        node; returns the next cursor and the profile ids found, by partition."""
        client: Any = self._client
        # MATCH filters after the walk: the hint is how many keys one step walks; a
        # partition holds about 1/partitions of them (and a profile has a few keys), so each
        # partition of the group gets about a chunk of profiles per step.
        count = min(self._chunk * self._partitions * 4, SCAN_COUNT_MAX)
        if group.node:
            node = client.get_node(node_name=group.node)
            reply = await client.execute_command(
                "SCAN", group.cursor, "MATCH", _PROFILE_PATTERN, "COUNT", count, target_nodes=node
            )
            if isinstance(reply, dict):
                reply = next(iter(reply.values()))
            next_cursor, keys_found = reply
            if isinstance(next_cursor, dict):  # redis-py's cluster SCAN reply: {node: cursor}
                next_cursor = next(iter(next_cursor.values()))
        else:
            next_cursor, keys_found = await client.scan(
                group.cursor, match=_PROFILE_PATTERN, count=count
            )
        wanted = set(group.partitions)
        found: dict[int, list[str]] = {}
        for key in keys_found:
            parsed = _parse_profile_key(as_text(key))
            if parsed is not None and parsed[0] in wanted:
                found.setdefault(parsed[0], []).append(parsed[1])
        return int(next_cursor), found

    async def run(self) -> None:
        """Backfill until `stop`; failures are logged and retried next interval."""
        while not self._loop.stopping:
            scanned = 0
            self._advanced = False
            try:
                scanned = await self.step()
            except REDIS_FAILURES as exc:
                logger.warning("backfill step failed (%s); retrying", type(exc).__name__)
            except Exception:
                logger.exception("backfill step failed")
            if scanned == 0 and not self._advanced:  # walks past other keys go on at once
                await self._loop.pause(self._interval_s)

    def start(self) -> None:
        """Start backfilling in a background task."""
        self._loop.start(self.run)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop after the current step (its compare-and-set writes keep it safe)."""
        await self._loop.stop(grace_s)
