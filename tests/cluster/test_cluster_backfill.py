"""Audience backfill on a real Redis Cluster, shared by two profile replicas.

Every partition lives on some master; the backfill scans each one on the master holding it
and both replicas take partitions (leases), so the job finishes with every qualifying
profile a member, counted once.
"""

from __future__ import annotations

from crowd.client import CrowdClient
from tests.backfill.helpers import (
    AUDIENCE,
    amount_of,
    base_definitions,
    load_profiles,
    with_audience,
)
from tests.cluster.helpers import ClusterProfileServers
from tests.profile_api.helpers import ADMIN_KEY, wait_for

PROFILES = 2_000
FAST = {"backfill_profiles_per_second": 1_000_000.0, "backfill_interval_seconds": 0.05}


async def test_a_new_audience_is_backfilled_on_every_master_by_two_replicas(
    cluster_profile_servers: ClusterProfileServers,
) -> None:
    first = await cluster_profile_servers.profile(**FAST)
    second = await cluster_profile_servers.profile(**FAST)
    async with (
        CrowdClient(first.address, api_key=ADMIN_KEY) as client,
        CrowdClient(second.address, api_key=ADMIN_KEY) as other,
    ):
        await client.publish_definitions(base_definitions())
        await load_profiles(client, PROFILES)
        version = (await client.publish_definitions(with_audience())).version

        async def done() -> bool:
            status = await other.backfill_status()
            return status.version == version and status.state == "done"

        await wait_for(done, "the backfill to finish on the cluster", within_s=120)
        status = await other.backfill_status()
        expected = {f"p{n}" for n in range(PROFILES) if amount_of(n) > 50}
        assert status.joins_found == len(expected)
        assert status.partitions_done == status.partitions_total
        assert await other.audience_size(AUDIENCE) == len(expected)
        assert set(await client.audience_members(AUDIENCE)) == expected
