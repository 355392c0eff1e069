"""Test harness: real redis-server processes, a real Redis Cluster, and network helpers.

Import it as `tests.harness` (pytest puts the repo root on sys.path, see pyproject.toml).
"""

from .net import free_port, wait_for_port
from .redis_cluster import RedisClusterError, RedisClusterHarness, find_redis_cli
from .redis_server import RedisServer, RedisServerError, find_redis_server

__all__ = [
    "RedisClusterError",
    "RedisClusterHarness",
    "RedisServer",
    "RedisServerError",
    "find_redis_cli",
    "find_redis_server",
    "free_port",
    "wait_for_port",
]
