"""The one Lua-script runner of both services: ``EVALSHA`` first, the source only when needed.

redis-py's own ``Script`` objects send ``SCRIPT EXISTS`` before every pipeline, an extra
round trip per batch. Here a call is a bare ``EVALSHA``; when Redis answers ``NOSCRIPT``
(first use, a restart or failover emptied its script cache) the call is sent again as
``EVAL`` with the source, which also caches the script for the next ``EVALSHA``.

Nothing here queues ``SCRIPT LOAD`` in a pipeline: on Redis Cluster a pipeline is split by
hash slot and ``SCRIPT LOAD`` has none, while ``EVAL`` carries its keys and is routed like
any keyed command. (:func:`load_scripts` sends plain ``SCRIPT LOAD`` commands, which a
cluster client sends to every primary.)

Every key a script touches comes through ``KEYS`` (cluster rule); scripts never build names.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from service_common.redis_toolkit.replication import WaitPolicy, execute_acknowledged

__all__ = [
    "KeyArg",
    "LuaScript",
    "ScriptArg",
    "ScriptCall",
    "execute_with_scripts",
    "is_noscript",
    "load_scripts",
    "run_scripts",
    "run_scripts_settled",
]

KeyArg = str | bytes
ScriptArg = str | bytes | int | float

# Set while a pipeline is rebuilt after NOSCRIPT: `LuaScript.queue` then sends the source.
_send_source: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "crowd_lua_send_source", default=False
)


class LuaScript:
    """One Lua script: its source and SHA-1 (the ``EVALSHA`` handle)."""

    def __init__(self, source: str, name: str = "inline") -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    @classmethod
    def from_package(cls, package: str, path: str) -> LuaScript:
        """The script file ``path`` (relative, e.g. ``scripts/commit.lua``) of ``package``."""
        source = resources.files(package).joinpath(path).read_text(encoding="utf-8")
        return cls(source, name=path.rsplit("/", 1)[-1].removesuffix(".lua"))

    def __repr__(self) -> str:
        return f"LuaScript({self.name!r}, sha={self.sha[:8]})"

    async def run(self, redis: Redis, keys: Sequence[KeyArg], args: Sequence[ScriptArg]) -> Any:
        """Run the script now: one round trip, two if Redis had lost it."""
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await redis.eval(self.source, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline, keys: Sequence[KeyArg], args: Sequence[ScriptArg]) -> None:
        """Queue one call on ``pipe``: ``EVALSHA``, or ``EVAL`` when rebuilding after NOSCRIPT
        (see :func:`execute_with_scripts`)."""
        if _send_source.get():
            pipe.eval(self.source, len(keys), *keys, *args)
        else:
            pipe.evalsha(self.sha, len(keys), *keys, *args)

    def queue_source(
        self, pipe: Pipeline, keys: Sequence[KeyArg], args: Sequence[ScriptArg]
    ) -> None:
        """Queue one call as ``EVAL`` with the source (after a ``NOSCRIPT`` reply)."""
        pipe.eval(self.source, len(keys), *keys, *args)


@dataclass(frozen=True)
class ScriptCall:
    """One invocation of a script with its keys and arguments."""

    script: LuaScript
    keys: Sequence[KeyArg]
    args: Sequence[ScriptArg]


def is_noscript(reply: object) -> bool:
    """Whether a pipeline reply (with ``raise_on_error=False``) is a ``NOSCRIPT`` error."""
    return isinstance(reply, NoScriptError)


async def load_scripts(redis: Redis, scripts: Sequence[LuaScript]) -> None:
    """Load ``scripts`` into Redis's script cache (plain commands, side by side)."""
    await asyncio.gather(*(redis.script_load(script.source) for script in scripts))


async def run_scripts(
    redis: Redis, calls: Sequence[ScriptCall], *, wait: WaitPolicy | None = None
) -> list[Any]:
    """Run ``calls`` in one pipeline and return their results in order.

    Calls answered ``NOSCRIPT`` are sent again, in a second pipeline, as ``EVAL``. Another
    script error is raised after the whole pipeline ran, so calls of other partitions
    still took effect; callers treat the batch as failed and rely on each script's
    idempotency when they retry.

    Args:
        wait: Return only once this many replicas confirmed the writes
            (:func:`~service_common.redis_toolkit.replication.execute_acknowledged`;
            raises ``ReplicasNotConfirmed`` otherwise). ``None`` or off: no ``WAIT``.
    """
    results = await run_scripts_settled(redis, calls, wait=wait)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


async def run_scripts_settled(
    redis: Redis, calls: Sequence[ScriptCall], *, wait: WaitPolicy | None = None
) -> list[Any]:
    """Like :func:`run_scripts`, but a call that failed has its exception as its result
    instead of raising, so that a caller can retry only the calls that failed (on Redis
    Cluster, e.g. those of a slot being migrated). A failure of the whole pipeline (a node
    unreachable, replicas not confirming) still raises."""
    if not calls:
        return []
    results = await _execute(redis, calls, by_source=False, wait=wait)
    missing = [i for i, result in enumerate(results) if is_noscript(result)]
    if missing:
        rerun = await _execute(redis, [calls[i] for i in missing], by_source=True, wait=wait)
        for i, result in zip(missing, rerun, strict=True):
            results[i] = result
    return results


async def _execute(
    redis: Redis, calls: Sequence[ScriptCall], *, by_source: bool, wait: WaitPolicy | None
) -> list[Any]:
    def fill(pipe: Pipeline) -> None:
        for call in calls:
            if by_source:
                call.script.queue_source(pipe, call.keys, call.args)
            else:
                call.script.queue(pipe, call.keys, call.args)

    if wait is not None and wait.enabled:
        # A marker in each call's slot: a call that wrote nothing (a duplicate intake) still
        # gets its master confirmed, and with it the write of the first attempt.
        markers = [_text(call.keys[0]) for call in calls if call.keys]
        return await execute_acknowledged(redis, fill, wait, confirm_keys=markers)
    async with redis.pipeline(transaction=False) as pipe:
        fill(pipe)
        return list(await pipe.execute(raise_on_error=False))


def _text(key: KeyArg) -> str:
    return key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key


async def execute_with_scripts(
    redis: Redis, fill: Callable[[Pipeline], None], *, wait: WaitPolicy | None = None
) -> list[Any]:
    """Build a pipeline with ``fill`` (scripts queued with :meth:`LuaScript.queue`, mixed
    with other commands) and run it in one round trip (no MULTI).

    If Redis lost a script, the pipeline is rebuilt with the scripts sent as ``EVAL`` and
    sent again; pipelines run this way must therefore be safe to repeat. With ``wait``
    enabled the replies come back only once replicas confirmed the writes (see
    :func:`run_scripts`).
    """
    if wait is not None and wait.enabled:
        return await _execute_with_scripts_acknowledged(redis, fill, wait)
    pipe = redis.pipeline(transaction=False)
    fill(pipe)
    try:
        return list(await pipe.execute())
    except NoScriptError:
        pass
    token = _send_source.set(True)
    try:
        pipe = redis.pipeline(transaction=False)
        fill(pipe)
    finally:
        _send_source.reset(token)
    return list(await pipe.execute())


async def _execute_with_scripts_acknowledged(
    redis: Redis, fill: Callable[[Pipeline], None], wait: WaitPolicy
) -> list[Any]:
    replies = await execute_acknowledged(redis, fill, wait)
    if any(is_noscript(reply) for reply in replies):
        token = _send_source.set(True)
        try:
            replies = await execute_acknowledged(redis, fill, wait)
        finally:
            _send_source.reset(token)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
