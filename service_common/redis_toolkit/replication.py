"""Acknowledged writes that a master's death cannot take back: Redis ``WAIT`` on the connection
that wrote.

Redis replicates asynchronously: a master answers a write before any replica has it, so a
master that dies right after can take acknowledged writes with it. With a :class:`WaitPolicy`
of ``replicas`` >= 1 (settings ``redis_wait_replicas`` / ``redis_wait_timeout_ms``),
:func:`execute_acknowledged` sends ``WAIT <replicas> <timeout>`` right behind the writes, in
the same pipeline and so on the same connection (``WAIT`` counts the replicas that confirmed
every write *of its connection*):

- on one Redis, one non-transactional pipeline (one connection) holds the writes and the
  ``WAIT``;
- on a Redis Cluster, the writes are grouped by the master owning each command's slot and each
  group is sent with its ``WAIT`` over one connection of that master (its own pipeline).

A master that answered ``NOSCRIPT`` (it lost its script cache) is not checked: the caller
sends the scripts again through this function, and that ``WAIT``, later in the same master's
replication stream, confirms the earlier writes too. Fewer replicas within the timeout, a
``WAIT`` that failed, or a write a master refused
(``MOVED``/``ASK`` while slots move, a connection lost during a failover) raise
:class:`ReplicasNotConfirmed` (``UNAVAILABLE``) once every group is done: the writes may well
have happened, but their durability is not confirmed, so the caller must not acknowledge them;
clients retry, and idempotent writes (event ids, idempotency keys) deduplicate.

``WAIT`` does not make Redis strongly consistent: if the master dies and a replica that did
*not* confirm is promoted (two nodes failing together, or ``replicas`` lower than the replica
count), the write is still lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio
import redis.exceptions
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.exceptions import MovedError, NoScriptError

from service_common import keys
from service_common.errors import Unavailable
from service_common.settings import ServiceSettings

__all__ = [
    "MARKER_TTL_MS",
    "ReplicasNotConfirmed",
    "WaitPolicy",
    "execute_acknowledged",
    "replication_marker",
]

#: Lifetime of a replication marker (see :func:`replication_marker`).
MARKER_TTL_MS = 60_000

_EVAL_COMMANDS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})

#: Replies meaning a master did not take the write (or may not have): the slot moved or is
#: moving, the cluster is failing over, the connection broke. Other error replies (a script's
#: own error, NOSCRIPT) are the caller's to handle, like on the single-Redis path.
_REFUSALS = (
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

Command = tuple[tuple[Any, ...], dict[str, Any]]
"""A queued command: its arguments and redis-py's options."""


@dataclass(frozen=True)
class WaitPolicy:
    """How many replicas must confirm a write before it is acknowledged.

    Attributes:
        replicas: Replicas that must hold the write; 0 turns ``WAIT`` off.
        timeout_ms: Longest wait for them.
    """

    replicas: int = 0
    timeout_ms: int = 1000

    def __post_init__(self) -> None:
        if self.replicas < 0 or self.timeout_ms < 1:
            raise ValueError("replicas must be >= 0 and timeout_ms >= 1")

    @property
    def enabled(self) -> bool:
        """Whether writes wait for replicas at all."""
        return self.replicas > 0

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> WaitPolicy:
        """The policy of ``redis_wait_replicas`` / ``redis_wait_timeout_ms``."""
        return cls(settings.redis_wait_replicas, settings.redis_wait_timeout_ms)


class ReplicasNotConfirmed(Unavailable):
    """Fewer replicas than required confirmed a write in time (``UNAVAILABLE``: retry)."""

    def __init__(self, wanted: int, confirmed: int) -> None:
        super().__init__(
            f"the write reached {confirmed} of the {wanted} required Redis replica(s) in "
            "time; retry the request",
            reason="REPLICATION_NOT_CONFIRMED",
            metadata={"replicasWanted": str(wanted), "replicasConfirmed": str(confirmed)},
        )
        self.wanted = wanted
        self.confirmed = confirmed


def replication_marker(key: str) -> str:
    """A key in the same slot as ``key`` whose only use is to be written before a ``WAIT``.

    ``WAIT`` covers what its connection wrote, and a master's replication stream is ordered,
    so a marker write plus ``WAIT`` also confirms every earlier write to that master, e.g.
    one acknowledged by an attempt whose ``WAIT`` timed out and now seen as a duplicate.
    """
    return keys.wait_marker(key)


async def execute_acknowledged(
    redis: redis.asyncio.Redis | RedisCluster,
    fill: Callable[[Pipeline], Any],
    policy: WaitPolicy,
    *,
    confirm_keys: Iterable[str] = (),
) -> list[Any]:
    """Run the commands ``fill`` queues (no MULTI) and return their replies in order; errors
    are returned as replies, not raised (``raise_on_error=False``).

    With ``policy.enabled``, return only once ``policy.replicas`` replicas confirmed them.

    Args:
        redis: A client or a cluster client.
        fill: Queues the commands on the pipeline it is given. On a cluster each command
            must be keyed, its key first (scripts: their first ``KEYS``).
        policy: The replicas to wait for.
        confirm_keys: Keys whose master must confirm even if ``fill`` wrote nothing there (a
            :func:`replication_marker` write is queued for each; see there why).

    Raises:
        ReplicasNotConfirmed: Enabled, and some master's ``WAIT`` confirmed fewer replicas,
            failed, or a write was refused (moved slot, failover).
    """
    markers = [replication_marker(key) for key in dict.fromkeys(confirm_keys)]

    def fill_all(pipe: Pipeline) -> None:
        fill(pipe)
        if policy.enabled:
            for marker in markers:
                pipe.set(marker, b"1", px=MARKER_TTL_MS)

    if isinstance(redis, RedisCluster):
        if not policy.enabled:
            async with redis.pipeline() as cluster_pipe:
                fill_all(cast(Pipeline, cluster_pipe))
                return list(await cluster_pipe.execute(raise_on_error=False))
        return await _cluster_acknowledged(redis, _recorded(fill_all), policy, len(markers))
    async with redis.pipeline(transaction=False) as pipe:
        fill_all(pipe)
        if policy.enabled:
            pipe.execute_command("WAIT", policy.replicas, policy.timeout_ms)
        replies = list(await pipe.execute(raise_on_error=False))
    if not policy.enabled:
        return replies
    ack = replies.pop()
    if not any(isinstance(reply, NoScriptError) for reply in replies):
        _check_confirmed(policy, [ack])
    del replies[len(replies) - len(markers) :]
    return replies


def _recorded(fill: Callable[[Pipeline], Any]) -> list[Command]:
    """The commands ``fill`` queues, recorded on a pipeline that never runs."""
    recorder = Pipeline(
        connection_pool=cast(Any, None), response_callbacks={}, transaction=False, shard_hint=None
    )
    fill(recorder)
    return [(tuple(args), dict(options)) for args, options in recorder.command_stack]


def _key_of(args: Sequence[Any]) -> Any:
    name = args[0].upper() if isinstance(args[0], str) else bytes(args[0]).decode().upper()
    if name in _EVAL_COMMANDS:
        if int(args[2]) < 1:
            raise ValueError(f"{name} without keys cannot be routed on a cluster")
        return args[3]
    return args[1]


async def _cluster_acknowledged(
    redis: RedisCluster, commands: Sequence[Command], policy: WaitPolicy, markers: int
) -> list[Any]:
    """Each master's commands and its ``WAIT`` over one of its connections."""
    await redis.initialize()  # a no-op once the slot map is known
    groups: dict[str, tuple[ClusterNode, list[PipelineCommand]]] = {}
    for position, (args, options) in enumerate(commands):
        node = redis.get_node_from_key(_key_of(args))
        if node is None:  # pragma: no cover - get_node_from_key raises for an uncovered slot
            raise ReplicasNotConfirmed(policy.replicas, 0)
        groups.setdefault(node.name, (node, []))[1].append(
            PipelineCommand(position, *args, **options)
        )
    waits = []
    for _node, queued in groups.values():
        wait = PipelineCommand(-1, "WAIT", policy.replicas, policy.timeout_ms)
        queued.append(wait)
        waits.append(wait)
    outcomes = await asyncio.gather(
        *(node.execute_pipeline(queued) for node, queued in groups.values()),
        return_exceptions=True,
    )
    replies: list[Any] = [None] * len(commands)
    acks: list[Any] = []
    for (_node, queued), outcome, wait in zip(groups.values(), outcomes, waits, strict=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome  # cancellation
        group = [outcome if isinstance(outcome, BaseException) else c.result for c in queued[:-1]]
        for command, reply in zip(queued[:-1], group, strict=True):
            replies[command.position] = reply
        if not any(isinstance(reply, NoScriptError) for reply in group):
            acks.append(None if isinstance(outcome, BaseException) else wait.result)
    for reply in replies:
        if isinstance(reply, MovedError):
            # The slot has a new owner for good (resharding, failover): teach the client's
            # slot map, which this path bypasses, so that the caller's retry goes there.
            await redis.nodes_manager.move_slot(reply)
    refused = any(isinstance(reply, _REFUSALS) for reply in replies)
    _check_confirmed(policy, acks, refused=refused)
    return replies[: len(replies) - markers]


def _check_confirmed(policy: WaitPolicy, acks: Sequence[Any], *, refused: bool = False) -> None:
    confirmed = [ack if isinstance(ack, int) else -1 for ack in acks]
    lowest = min(confirmed, default=policy.replicas)
    if refused or lowest < policy.replicas:
        raise ReplicasNotConfirmed(policy.replicas, max(0, lowest))
