"""A master of the cluster dies while people log in on a second device: with
``redis_wait_replicas=1`` every login the profile service acknowledged has stitched its two
profiles into one, and stays stitched after the replica is promoted.

Each pair is a phone that logged in first (it holds the email) and a laptop that logs in with
the same email during the failover; the laptops' profiles and the phones' live on every master,
so the kill lands in the middle of stitches whose two profiles are on different masters.
"""

from __future__ import annotations

import asyncio

from crowd.client import CrowdClient, make_event
from tests.cluster.helpers import (
    ClusterProfileServers,
    RetryingRounds,
    profile_master,
    visitors_on_every_master,
)
from tests.harness import RedisClusterHarness
from tests.identity.defs import identity_definitions
from tests.profile_api.helpers import ADMIN_KEY

PAIRS = 36
KILL_AFTER = 6
"""Logins acknowledged before the kill."""


def _email(number: int) -> str:
    return f"person-{number}@example.com"


class LaptopLogins(RetryingRounds):
    """Round ``n``: laptop ``n`` logs in with person ``n``'s email (one event, a fixed id)."""

    async def attempt_round(self, number: int) -> None:
        laptop = self.visitors[number]
        await self.client.track_events(
            [make_event(laptop, "login", {"email": _email(number)}, event_id=f"{laptop}:login")]
        )


async def test_with_wait_every_acknowledged_stitch_survives_a_master_killed_mid_stitching(
    redis_cluster: RedisClusterHarness, cluster_profile_servers: ClusterProfileServers
) -> None:
    server = await cluster_profile_servers.profile(
        redis_wait_replicas=1, redis_wait_timeout_ms=1000
    )
    phones = visitors_on_every_master(redis_cluster, PAIRS, prefix="phone")
    laptops = visitors_on_every_master(redis_cluster, PAIRS, prefix="laptop")
    async with CrowdClient(server.address, api_key=ADMIN_KEY) as client:
        await client.publish_definitions(identity_definitions())
        await client.track_events(
            [make_event(p, "login", {"email": _email(n)}) for n, p in enumerate(phones)]
        )
        logins = LaptopLogins(client, laptops)

        async def log_in_every_laptop() -> None:
            for number in range(PAIRS):
                await logins.send_round(number)

        running = asyncio.create_task(log_in_every_laptop())
        try:
            await logins.reached(KILL_AFTER)
            victim = profile_master(redis_cluster, laptops[KILL_AFTER + 1])
            index = [m.port for m in redis_cluster.masters()].index(victim.port)
            old = await asyncio.to_thread(redis_cluster.kill_master, index)
            await asyncio.to_thread(redis_cluster.await_failover, old)
            await asyncio.to_thread(redis_cluster.restart_node, old)
            await running
        finally:
            running.cancel()

        assert logins.acknowledged_rounds == PAIRS
        split = []
        for number, (phone, laptop) in enumerate(zip(phones, laptops, strict=True)):
            by_phone, by_laptop, by_email = await asyncio.gather(
                client.get_profile(phone),
                client.get_profile(laptop),
                client.get_profile(attribute_id="email", value=_email(number)),
            )
            ids = {by_phone.profile_id, by_laptop.profile_id, by_email.profile_id}
            if len(ids) != 1 or by_phone.attributes["n"].number_value != 2.0:
                split.append((number, ids, by_phone.attributes["n"].number_value))
        assert split == []
