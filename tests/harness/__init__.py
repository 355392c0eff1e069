"""Test harness: real redis-server processes and network helpers shared by the test suite.

Import it as `tests.harness` (pytest puts the repo root on sys.path, see pyproject.toml).
"""

from .net import free_port, wait_for_port
from .redis_server import RedisServer, RedisServerError, find_redis_server

__all__ = ["RedisServer", "RedisServerError", "find_redis_server", "free_port", "wait_for_port"]
