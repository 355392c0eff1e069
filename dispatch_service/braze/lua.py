"""Lua scripts run by SHA in one round trip, loaded on demand.

redis-py's ``Script`` objects check ``SCRIPT EXISTS`` before every pipeline, an extra round trip
per batch; here a script is sent with EVALSHA and loaded only when Redis answers NOSCRIPT
(after a restart or failover), then the call is repeated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

ScriptArg = str | bytes | int | float


class LuaScript:
    """A Lua script; every key it touches must be passed in ``keys`` (cluster rule)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    async def run(self, redis: Redis, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        """Run once and return the script's reply."""
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis.script_load(self.source)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline, keys: Sequence[str], args: Sequence[ScriptArg]) -> None:
        """Add a call to a pipeline (run it with :func:`execute_with_scripts`)."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)


async def execute_with_scripts(
    redis: Redis, scripts: Sequence[LuaScript], fill: Callable[[Pipeline], None]
) -> list[Any]:
    """Build a pipeline with ``fill`` and run it in one round trip (no MULTI).

    If Redis lost the scripts, they are loaded and the pipeline is rebuilt and sent again;
    scripts used this way must therefore be safe to repeat.
    """
    for attempt in range(2):
        pipe = redis.pipeline(transaction=False)
        fill(pipe)
        try:
            return await pipe.execute()
        except NoScriptError:
            if attempt:
                raise
            for script in scripts:
                await redis.script_load(script.source)
    raise AssertionError("unreachable")
