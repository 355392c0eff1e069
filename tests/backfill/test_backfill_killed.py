"""A profile service process SIGKILLed in the middle of an audience backfill: a restarted
server finishes the job from the stored cursors; every qualifying profile joins and each
join's JOINED action (``backfill_fires_actions``) is in the outbox exactly once.

``python -m profile_service`` runs as a real process on a real Redis, throttled so that the
kill lands mid-job; no dispatch target, so fired actions stay in the outbox to be counted.
The killed process's partition lease expires (30 s) before that partition is taken again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import grpc
import pytest
import redis.asyncio

from crowd.client import CrowdClient
from profile_service.storage.replies import as_text
from service_common.keys import PartitionKeys
from tests.backfill.helpers import (
    ACTION,
    AUDIENCE,
    amount_of,
    base_definitions,
    load_profiles,
    outbox_actions,
    with_audience,
)
from tests.harness import free_port
from tests.profile_api.helpers import ADMIN_KEY, PROFILE_KEYS, wait_for
from tests.profile_api.servers import Servers

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 256
PROFILES = 3_000


async def _start(redis_url: str, log: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    env = {
        **os.environ,
        "CROWD_PROFILE_PORT": str(port),
        "CROWD_PROFILE_REDIS_URL": redis_url,
        "CROWD_PROFILE_API_KEYS": json.dumps(PROFILE_KEYS),
        "CROWD_PROFILE_BACKFILL_PROFILES_PER_SECOND": "400",
        "CROWD_PROFILE_BACKFILL_INTERVAL_SECONDS": "0.05",
        "CROWD_PROFILE_LOG_FORMAT": "text",
        # One process (the default is one worker per core): the kill ends the whole service,
        # and no request lands on a second worker that is still starting.
        "CROWD_PROFILE_WORKERS": "1",
    }
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "profile_service", cwd=REPO, env=env, stdout=out, stderr=out
        )
    return process, f"127.0.0.1:{port}"


async def test_a_backfill_killed_by_sigkill_finishes_after_a_restart_once(
    redis_url: str, redis_client: redis.asyncio.Redis, servers: Servers, tmp_path: Path
) -> None:
    log = tmp_path / "profile.log"
    process, address = await _start(redis_url, log)
    try:
        async with CrowdClient(address, api_key=ADMIN_KEY, timeout=10) as client:

            async def answers() -> bool:
                assert process.returncode is None, log.read_text(errors="replace")
                try:
                    await client.get_definitions()
                except grpc.aio.AioRpcError as exc:
                    return exc.code() is grpc.StatusCode.NOT_FOUND
                return True

            await wait_for(answers, "profile_service to serve")
            await client.publish_definitions(base_definitions())
            await load_profiles(client, PROFILES)
            version = (await client.publish_definitions(with_audience(fires_actions=True))).version

            async def part_way() -> bool:
                status = await client.backfill_status()
                return status.version == version and 0 < status.partitions_done < PARTITIONS

            await wait_for(part_way, "the backfill to be part-way", within_s=60)
        process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGKILL
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    partial = await partitions_done(redis_client)
    assert 0 < partial < PARTITIONS  # killed mid-job: some partitions done, some not

    restarted = await servers.profile(
        backfill_profiles_per_second=1_000_000.0, backfill_interval_seconds=0.05
    )
    async with CrowdClient(restarted.address, api_key=ADMIN_KEY) as client:

        async def finished() -> bool:
            status = await client.backfill_status()
            return status.version == version and status.state == "done"

        # Up to one lease (30 s) for the partition the killed process held.
        await wait_for(finished, "the restarted server to finish the backfill", within_s=120)

    expected = {f"p{n}" for n in range(PROFILES) if amount_of(n) > 50}
    members: set[str] = set()
    for partition in range(PARTITIONS):
        key = PartitionKeys(partition).audience(AUDIENCE)
        members |= {as_text(m) for m in await redis_client.smembers(key)}
    assert members == expected
    fired = Counter(await outbox_actions(redis_client, PARTITIONS))
    assert fired == Counter({f"{p}:{ACTION}:backfill:{version}": 1 for p in expected})


async def partitions_done(client: redis.asyncio.Redis) -> int:
    """Partitions the stored backfill records show done (read straight from Redis)."""
    done = 0
    for partition in range(PARTITIONS):
        if await client.hget(PartitionKeys(partition).backfill, "done") == b"1":
            done += 1
    return done
