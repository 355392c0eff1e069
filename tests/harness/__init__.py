"""Test harness: the helpers every suite shares (real redis-server processes, network helpers,
waiting for state, the Braze sandbox as tests start it).

Import it as `tests.harness` (pytest puts the repo root on sys.path, see pyproject.toml). A
helper used by one suite only lives in that suite's ``helpers.py``.
"""

from .net import free_port, wait_for_port
from .redis_cluster import RedisClusterError, RedisClusterHarness, find_redis_cli
from .redis_server import RedisServer, RedisServerError, find_redis_server
from .sandbox import SandboxStarter, running_sandbox
from .waiting import eventually

__all__ = [
    "RedisClusterError",
    "RedisClusterHarness",
    "RedisServer",
    "RedisServerError",
    "SandboxStarter",
    "eventually",
    "find_redis_cli",
    "find_redis_server",
    "free_port",
    "running_sandbox",
    "wait_for_port",
]
