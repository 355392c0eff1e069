"""The dispatch service's Lua scripts and a pipelined runner for them.

Each ``*.lua`` file beside this module is one script. Scripts receive every key through
``KEYS`` (the shapes live in :mod:`service_common.keys`) and never build key names, so each
call touches one partition's hash slot and runs unchanged on Redis Cluster.

:func:`run_scripts` sends many script calls in one pipeline with ``EVALSHA``: one network
round trip however many partitions a batch touches. redis-py's own ``Script`` objects would
add a ``SCRIPT EXISTS`` round trip to every pipeline; instead we load a script only when
Redis answers ``NOSCRIPT`` (first use, or after a restart emptied the script cache) and rerun
just the calls that failed that way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

__all__ = ["LuaScript", "ScriptCall", "load_script", "run_scripts"]

KeyArg = str | bytes
ScriptArg = str | bytes | int | float


@dataclass(frozen=True)
class LuaScript:
    """One Lua script: its name, source and SHA-1 (the ``EVALSHA`` handle)."""

    name: str
    source: str
    sha: str


@dataclass(frozen=True)
class ScriptCall:
    """One invocation of a script with its keys and arguments."""

    script: LuaScript
    keys: Sequence[KeyArg]
    args: Sequence[ScriptArg]


@cache
def load_script(name: str) -> LuaScript:
    """Return the script ``<name>.lua`` shipped in this package (read once per process)."""
    source = resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return LuaScript(name, source, hashlib.sha1(source.encode("utf-8")).hexdigest())


async def run_scripts(redis: aioredis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run ``calls`` in one pipeline and return their results in order.

    A script error (other than ``NOSCRIPT``) is raised after the whole pipeline ran, so
    calls of other partitions still took effect; callers treat the batch as failed and rely
    on each script's idempotency when the caller retries.
    """
    if not calls:
        return []
    results = await _execute(redis, calls)
    missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
    if missing:
        for script in {calls[i].script for i in missing}:
            await redis.script_load(script.source)
        rerun = await _execute(redis, [calls[i] for i in missing])
        for i, result in zip(missing, rerun, strict=True):
            results[i] = result
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


async def _execute(redis: aioredis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    async with redis.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        return list(await pipe.execute(raise_on_error=False))
