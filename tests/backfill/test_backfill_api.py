"""Audience backfill through the public surfaces: real profile servers, real gRPC, real Redis.

A published version that adds an audience fills it from the profiles already stored; by
default without firing its JOINED actions, with ``backfill_fires_actions`` exactly once per
join. Progress shows in GetBackfillStatus and ``crowd backfill status --json``.
"""

from __future__ import annotations

import json
from collections import Counter

import redis.asyncio
import yaml

from crowd.client import CrowdClient
from crowd.definitions.loader import definitions_from_dict
from crowd.profile.v1 import definition_service_pb2
from tests.backfill.helpers import (
    ACTION,
    AUDIENCE,
    amount_of,
    base_definitions,
    load_profiles,
    outbox_actions,
    with_audience,
)
from tests.cli.cli_runner import cli_env, run_cli_async
from tests.profile_api.helpers import ADMIN_KEY, READ_KEY, wait_for
from tests.profile_api.servers import Servers

PARTITIONS = 256  # the default: every partition is scanned
FAST = {"backfill_profiles_per_second": 1_000_000.0, "backfill_interval_seconds": 0.05}


async def _done(
    client: CrowdClient, version: str
) -> definition_service_pb2.GetBackfillStatusResponse:
    async def check() -> bool:
        status = await client.backfill_status()
        return status.version == version and status.state == "done"

    await wait_for(check, f"the backfill of {version} to finish", within_s=120)
    return await client.backfill_status()


async def test_a_new_audience_backfills_ten_thousand_profiles_without_firing_actions(
    servers: Servers, redis_client: redis.asyncio.Redis
) -> None:
    server = await servers.profile(**FAST)
    async with CrowdClient(server.address, api_key=ADMIN_KEY) as client:
        await client.publish_definitions(base_definitions())
        assert (await client.backfill_status()).state == "idle"
        await load_profiles(client, 10_000)
        version = (await client.publish_definitions(with_audience())).version

        status = await _done(client, version)
        expected = {f"p{n}" for n in range(10_000) if amount_of(n) > 50}
        assert list(status.audience_ids) == [AUDIENCE]
        assert status.profiles_scanned >= 10_000
        assert status.joins_found == len(expected)
        assert status.partitions_done == status.partitions_total == PARTITIONS
        assert await client.audience_size(AUDIENCE) == len(expected)
        assert set(await client.audience_members(AUDIENCE)) == expected
        profile = await client.get_profile("p99")
        assert [m.audience_id for m in profile.audiences] == [AUDIENCE]
    # The default: a backfill only fills the membership.
    assert await outbox_actions(redis_client, PARTITIONS) == []

    env = cli_env(CROWD_PROFILE_TARGET=server.address, CROWD_API_KEY=READ_KEY)
    shown = await run_cli_async("backfill", "status", "--json", env=env)
    assert shown.code == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["version"] == version
    assert document["state"] == "done"
    assert document["joins_found"] == len(expected)
    assert len(document["partitions"]) == PARTITIONS


async def test_with_backfill_fires_actions_each_join_fires_joined_exactly_once(
    servers: Servers, redis_client: redis.asyncio.Redis
) -> None:
    server = await servers.profile(**FAST)
    async with CrowdClient(server.address, api_key=ADMIN_KEY) as client:
        await client.publish_definitions(base_definitions())
        await load_profiles(client, 2_000)
        version = (await client.publish_definitions(with_audience(fires_actions=True))).version
        await _done(client, version)
    expected = {f"p{n}" for n in range(2_000) if amount_of(n) > 50}
    fired = Counter(await outbox_actions(redis_client, PARTITIONS))
    assert fired == Counter({f"{p}:{ACTION}:backfill:{version}": 1 for p in expected})


async def test_a_changed_rule_backfills_again_and_members_who_no_longer_qualify_leave(
    servers: Servers,
) -> None:
    server = await servers.profile(**FAST)
    async with CrowdClient(server.address, api_key=ADMIN_KEY) as client:
        await client.publish_definitions(base_definitions())
        await load_profiles(client, 1_000)
        first = (await client.publish_definitions(with_audience())).version
        await _done(client, first)
        second = (await client.publish_definitions(with_audience(threshold=90))).version
        status = await _done(client, second)
        assert list(status.audience_ids) == [AUDIENCE]
        expected = {f"p{n}" for n in range(1_000) if amount_of(n) > 90}
        assert set(await client.audience_members(AUDIENCE)) == expected


def test_the_yaml_loader_accepts_backfill_fires_actions() -> None:
    document = definitions_from_dict(
        yaml.safe_load(
            """
attributes:
  - {id: spend, scope: visitor, type: number}
audiences:
  - id: big
    backfill_fires_actions: true
    expression:
      condition: {input: {attribute: spend}, operator: greater_than, value: {constant: 5}}
"""
        )
    )
    assert document.audiences[0].backfill_fires_actions is True
