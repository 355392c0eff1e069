"""Per-visitor updates are atomic across replicas (issue 3 §6): two profile servers on one
Redis, 500 concurrent increments through each, to one visitor, end at exactly 1,000."""

from __future__ import annotations

import asyncio

from crowd.client import CrowdClient
from tests.profile_api.helpers import ADMIN_KEY, counter_definitions, wait_for
from tests.profile_api.servers import Servers

PER_REPLICA = 500


async def test_concurrent_increments_on_two_replicas_lose_nothing(servers: Servers) -> None:
    replica_a = await servers.profile()
    replica_b = await servers.profile()
    async with (
        CrowdClient(replica_a.address, api_key=ADMIN_KEY) as client_a,
        CrowdClient(replica_b.address, api_key=ADMIN_KEY) as client_b,
    ):
        version = await client_a.publish_definitions(counter_definitions())

        async def b_has_it() -> bool:
            result = await client_b.track_event("warm-up", "tick")
            return result.definitions_version == version.version

        await wait_for(b_has_it, "replica B to take the definitions", within_s=10)

        calls = [
            client.track_event("hot-visitor", "tick")
            for _ in range(PER_REPLICA)
            for client in (client_a, client_b)
        ]
        results = await asyncio.gather(*calls)

        # Every event saw a distinct count: the updates were applied one after another.
        counts = sorted(
            c.value.number_value
            for r in results
            for c in r.changed_attributes
            if c.attribute_id == "counter"
        )
        assert counts == [float(n) for n in range(1, 2 * PER_REPLICA + 1)]
        assert sum(r.new_visitor for r in results) == 1
        for client in (client_a, client_b):
            profile = await client.get_profile("hot-visitor")
            assert profile.attributes["counter"].number_value == 2 * PER_REPLICA
