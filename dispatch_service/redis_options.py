"""What a Redis client was built with, for both client kinds.

``redis.asyncio.Redis`` keeps its connection options on its pool; ``RedisCluster`` has no
``connection_pool`` (one pool per node) and keeps them on itself, so reading the pool crashed
the stores at start on a cluster.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

__all__ = ["decodes_responses"]


def decodes_responses(redis: aioredis.Redis | RedisCluster) -> bool:
    """Whether ``redis`` answers ``str`` instead of ``bytes`` (``decode_responses=True``)."""
    if isinstance(redis, RedisCluster):
        options = redis.get_connection_kwargs()
    else:
        options = redis.connection_pool.connection_kwargs
    return bool(options.get("decode_responses"))
