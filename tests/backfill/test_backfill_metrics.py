"""The audience backfill's progress on the profile service's /metrics (real server, real Redis):
idle before any job, then the finished job's figures, the same as GetBackfillStatus."""

from __future__ import annotations

from crowd.client import CrowdClient
from tests.backfill.helpers import amount_of, base_definitions, load_profiles, with_audience
from tests.harness.net import free_port
from tests.metrics.scrape import scrape, value
from tests.profile_api.helpers import ADMIN_KEY, wait_for
from tests.profile_api.servers import Servers

PROFILES = 400
FAST = {"backfill_profiles_per_second": 1_000_000.0, "backfill_interval_seconds": 0.05}


async def test_backfill_progress_is_on_the_metrics_endpoint(servers: Servers) -> None:
    server = await servers.profile(metrics_port=free_port(), **FAST)
    assert server.metrics is not None
    port = server.metrics.port
    async with CrowdClient(server.address, api_key=ADMIN_KEY) as client:
        await client.publish_definitions(base_definitions())
        idle = await scrape(port)
        assert value(idle, "crowd_profile_backfill_running") == 0
        assert ("crowd_profile_backfill_partitions_total", frozenset()) in idle
        assert value(idle, "crowd_profile_backfill_partitions_total") == 0

        await load_profiles(client, PROFILES)
        await client.publish_definitions(with_audience())

        async def finished() -> bool:
            samples = await scrape(port)
            total = value(samples, "crowd_profile_backfill_partitions_total")
            done = value(samples, "crowd_profile_backfill_partitions_done")
            return total > 0 and done == total

        await wait_for(finished, "the backfill to finish on /metrics", within_s=120)
        samples = await scrape(port)
        status = await client.backfill_status()

    assert value(samples, "crowd_profile_backfill_running") == 0
    assert value(samples, "crowd_profile_backfill_partitions_total") == status.partitions_total
    assert value(samples, "crowd_profile_backfill_joins_found") == sum(
        1 for n in range(PROFILES) if amount_of(n) > 50
    )
    assert value(samples, "crowd_profile_backfill_joins_found") == status.joins_found
    assert value(samples, "crowd_profile_backfill_profiles_scanned") == status.profiles_scanned
    assert status.profiles_scanned >= PROFILES
