"""Lua scripts of the storage layer, loaded once and run by SHA.

redis-py's own `Script` objects, when queued in a pipeline, first send ``SCRIPT EXISTS``
on every ``execute()``: one extra round trip per batch. `LuaScript` queues a bare
``EVALSHA`` instead; the scripts are loaded at start-up (`load_all`) and a ``NOSCRIPT``
reply (Redis restarted, ``SCRIPT FLUSH``) is handled by the caller, which loads them again
and retries the affected work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis.asyncio
import redis.exceptions

from profile_service.storage.replies import RedisArg

__all__ = ["LuaScript", "is_noscript", "load_all"]


class LuaScript:
    """One script of ``profile_service/storage/scripts``; every key comes through ``KEYS``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = (
            resources.files("profile_service.storage")
            .joinpath("scripts", f"{name}.lua")
            .read_text(encoding="utf-8")
        )
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()

    def queue(
        self,
        pipe: redis.asyncio.client.Pipeline,
        keys: Sequence[str],
        args: Sequence[RedisArg],
    ) -> None:
        """Queue one ``EVALSHA`` of this script on ``pipe``."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    async def run(
        self, client: redis.asyncio.Redis, keys: Sequence[str], args: Sequence[RedisArg]
    ) -> Any:
        """Run the script now (one round trip; two more if Redis lost the script)."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


def is_noscript(reply: object) -> bool:
    """Whether a pipeline reply (with ``raise_on_error=False``) is a ``NOSCRIPT`` error."""
    return isinstance(reply, redis.exceptions.NoScriptError)


async def load_all(client: redis.asyncio.Redis, scripts: Sequence[LuaScript]) -> None:
    """Load ``scripts`` into Redis (one round trip)."""
    async with client.pipeline(transaction=False) as pipe:
        for script in scripts:
            pipe.script_load(script.source)
        await pipe.execute()
