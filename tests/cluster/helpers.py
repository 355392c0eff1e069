"""Helpers of the profile cluster tests (tests/cluster/test_cluster_profile_*.py): settings that
point a profile server at the cluster fixture, and which master serves a visitor."""

from __future__ import annotations

from typing import Any

from service_common.keys import DEFAULT_PARTITIONS, partition_keys_for
from service_common.server import ManagedServer
from tests.harness import RedisClusterHarness, RedisServer
from tests.profile_api.servers import Servers, Tracing


def profile_cluster_settings(cluster: RedisClusterHarness, **overrides: Any) -> dict[str, Any]:
    """Profile settings overrides for ``cluster``: the documented ``redis_cluster`` switch,
    one seed in ``redis_url`` and every node in ``redis_cluster_nodes``."""
    values: dict[str, Any] = {
        "redis_url": cluster.url,
        "redis_cluster": True,
        "redis_cluster_nodes": ",".join(cluster.nodes),
    }
    values.update(overrides)
    return values


def profile_master(
    cluster: RedisClusterHarness, visitor_id: str, partitions: int = DEFAULT_PARTITIONS
) -> RedisServer:
    """The master serving the profile of ``visitor_id`` now."""
    return cluster.master_of_key(partition_keys_for(visitor_id, partitions).profile(visitor_id))


def visitors_on_every_master(
    cluster: RedisClusterHarness, count: int, prefix: str = "v", per_master: int = 1
) -> list[str]:
    """``count`` visitor ids (at least ``per_master`` served by each master)."""
    visitors = [f"{prefix}-{i}" for i in range(count)]
    served: dict[int, int] = {}
    for visitor in visitors:
        port = profile_master(cluster, visitor).port
        served[port] = served.get(port, 0) + 1
    masters = {m.port for m in cluster.masters()}
    assert set(served) == masters and min(served.values()) >= per_master, served
    return visitors


class ClusterProfileServers(Servers):
    """`Servers` whose profile servers run on ``cluster`` (dispatch servers keep the
    ``redis_url`` they are given, e.g. a single Redis)."""

    def __init__(self, cluster: RedisClusterHarness, tracing: Tracing) -> None:
        super().__init__(cluster.url, tracing)
        self.cluster = cluster

    async def profile(self, **overrides: Any) -> ManagedServer:
        return await super().profile(**profile_cluster_settings(self.cluster, **overrides))
