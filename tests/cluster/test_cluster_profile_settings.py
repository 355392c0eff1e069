"""The documented cluster settings of the profile service: ``redis_cluster`` with one seed in
``redis_url``, ``redis_cluster_nodes`` surviving a dead seed, and ``redis_wait_replicas``
refusing to acknowledge what fewer replicas confirmed."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from crowd.client import CrowdClient, make_event
from service_common.errors import decode_error
from tests.cluster.helpers import ClusterProfileServers, counters, visitors_on_every_master
from tests.harness import RedisClusterHarness, free_port
from tests.profile_api.helpers import ADMIN_KEY, counter_definitions


async def test_one_seed_is_enough_and_a_dead_seed_is_skipped(
    redis_cluster: RedisClusterHarness, cluster_profile_servers: ClusterProfileServers
) -> None:
    dead_seed = f"redis://127.0.0.1:{free_port()}"
    one_seed = await cluster_profile_servers.profile(redis_cluster_nodes="")
    dead_first = await cluster_profile_servers.profile(redis_url=dead_seed)
    visitors = visitors_on_every_master(redis_cluster, 9, prefix="seed")
    async with (
        CrowdClient(one_seed.address, api_key=ADMIN_KEY) as first,
        CrowdClient(dead_first.address, api_key=ADMIN_KEY) as second,
    ):
        await first.publish_definitions(counter_definitions())
        for client in (first, second):
            await client.track_events([make_event(v, "page_view") for v in visitors])
        # The second server sees the definitions the first published, and both counted.
        assert await counters(second, visitors) == dict.fromkeys(visitors, 2.0)


async def test_a_write_fewer_replicas_confirm_is_unavailable_even_when_retried(
    cluster_profile_servers: ClusterProfileServers,
) -> None:
    # One replica per master: two can never confirm.
    server = await cluster_profile_servers.profile(redis_wait_replicas=2, redis_wait_timeout_ms=50)
    async with CrowdClient(server.address, api_key=ADMIN_KEY) as client:
        await client.publish_definitions(counter_definitions())
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.track_event("unconfirmed", "page_view", event_id="once")
            code, info, _ = decode_error(refused.value)
            assert code == grpc.StatusCode.UNAVAILABLE
            assert info is not None and info.reason == "REPLICATION_NOT_CONFIRMED"
