"""``--workers N``: several worker processes of one service on one port, under a supervisor.

Both services run as real processes (``python -m profile_service --workers 2 --port 0``,
the same for the dispatch service) on a real Redis, with the Braze sandbox over HTTP. The
tests prove, through public surfaces only (log lines, ``/proc``, health, the API):

* the workers share one port and BOTH handle RPCs from a client with several channels (each
  worker logs its RPC count when it stops), and the background work (outbox forwarders,
  delivery workers) in four processes delivers every fired action exactly once;
* SIGTERM to the supervisor drains every worker and exits 0, leaving no process behind;
* a worker killed by a signal is restarted and the port keeps serving; a worker that exits
  on its own (a failed start) ends the supervisor with its status; a killed supervisor takes
  its workers along.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from braze_sandbox import BrazeSandbox
from crowd.client import CrowdClient
from crowd.dispatch.v1 import action_pb2
from service_common.keys import DISPATCH_META_PARTITIONS, META_PARTITIONS
from tests.profile_api.helpers import ADMIN_KEY, DISPATCH_KEY, PROFILE_KEYS, wait_for
from tests.profile_api.servers import write_connectors
from tests.robustness.helpers import CLOSED_EVENT, delivered_events, write_definitions
from tests.workers.supervised import SupervisedService, alive, health

pytestmark = pytest.mark.slow

EVENTS = 40
CHANNELS = 16  # connections per service: the kernel spreads connections, not calls
DELIVERED = action_pb2.ACTION_STATE_DELIVERED
DISPATCH_KEYS = {DISPATCH_KEY: ["dispatch", "read", "admin"], ADMIN_KEY: ["read"]}


def profile_service(redis_url: str, tmp_path: Path, **env: str) -> SupervisedService:
    return SupervisedService(
        "profile_service",
        {
            "CROWD_PROFILE_REDIS_URL": redis_url,
            "CROWD_PROFILE_API_KEYS": json.dumps(PROFILE_KEYS),
            "CROWD_PROFILE_SHUTDOWN_GRACE_SECONDS": "2",
            **env,
        },
        tmp_path / "profile.log",
    )


def dispatch_service(redis_url: str, tmp_path: Path, **env: str) -> SupervisedService:
    return SupervisedService(
        "dispatch_service",
        {
            "CROWD_DISPATCH_REDIS_URL": redis_url,
            "CROWD_DISPATCH_API_KEYS": json.dumps(DISPATCH_KEYS),
            "CROWD_DISPATCH_SHUTDOWN_GRACE_SECONDS": "2",
            **env,
        },
        tmp_path / "dispatch.log",
    )


def customer(i: int) -> str:
    return f"workers-customer-{i:02d}"


async def test_two_workers_per_service_share_each_port_and_both_handle_rpcs(
    redis_url: str, sandbox: BrazeSandbox, tmp_path: Path
) -> None:
    dispatch = dispatch_service(
        redis_url,
        tmp_path,
        CROWD_DISPATCH_CONNECTORS_FILE=str(write_connectors(tmp_path, sandbox.url)),
    )
    profile = None
    try:
        await dispatch.start()
        dispatch_pids = await dispatch.wait_serving()
        profile = profile_service(
            redis_url,
            tmp_path,
            CROWD_PROFILE_DEFINITIONS_FILE=str(write_definitions(tmp_path)),
            CROWD_PROFILE_DISPATCH_TARGET=dispatch.address,
            CROWD_PROFILE_DISPATCH_API_KEY=DISPATCH_KEY,
        )
        await profile.start()
        profile_pids = await profile.wait_serving()
        assert len(profile_pids) == len(dispatch_pids) == 2

        fired: list[str] = []
        async with CrowdClient(
            profile.address, dispatch.address, api_key=ADMIN_KEY, channels=CHANNELS
        ) as client:
            for i in range(EVENTS):
                result = await client.track_event(
                    f"workers-visitor-{i:02d}", CLOSED_EVENT, {"customer_id": customer(i)}
                )
                fired += [ref.idempotency_key for ref in result.actions_fired]
            assert len(set(fired)) == EVENTS

            async def all_delivered() -> bool:
                for key in fired:
                    if (await client.get_action(key)).state != DELIVERED:
                        return False
                return True

            # Forwarders and delivery workers in four processes: every action once.
            await wait_for(all_delivered, "every fired action to be delivered", 60)
        assert delivered_events(sandbox, CLOSED_EVENT) == {customer(i): 1 for i in range(EVENTS)}

        assert await profile.stop() == 0
        assert await dispatch.stop() == 0
    finally:
        for service in (profile, dispatch):
            if service is not None:
                await service.kill()

    # Every worker is gone, and each one handled some of the RPCs.
    assert not any(alive(pid) for pid in profile_pids | dispatch_pids)
    profile_rpcs = profile.rpcs_by_worker()
    assert set(profile_rpcs) == profile_pids, profile.log_path.read_text()
    assert all(count > 0 for count in profile_rpcs.values()), profile_rpcs
    # Health checks are not counted: exactly the events sent.
    assert sum(profile_rpcs.values()) == EVENTS
    dispatch_rpcs = dispatch.rpcs_by_worker()
    assert set(dispatch_rpcs) == dispatch_pids, dispatch.log_path.read_text()
    assert all(count > 0 for count in dispatch_rpcs.values()), dispatch_rpcs


@pytest.mark.parametrize("service", ["profile", "dispatch"])
async def test_a_killed_worker_is_restarted_and_the_port_keeps_serving(
    service: str, redis_url: str, tmp_path: Path
) -> None:
    make = profile_service if service == "profile" else dispatch_service
    supervised = make(redis_url, tmp_path)
    try:
        await supervised.start()
        first = await supervised.wait_serving()
        victim = min(first)
        address = supervised.address
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> set[int] | None:
            pids = supervised.worker_pids()
            return pids if len(pids) == 2 and victim not in pids else None

        now = await wait_for(replaced, "the killed worker to be replaced", 30)
        assert now is not None and (first - {victim}) < now
        restarted = supervised.messages(f"worker 0 (pid {victim})") + supervised.messages(
            f"worker 1 (pid {victim})"
        )
        assert restarted and "restarting it" in restarted[0]["msg"]
        await supervised.wait_serving()
        assert supervised.address == address

        assert await supervised.stop() == 0
    finally:
        await supervised.kill()
    assert not any(alive(pid) for pid in first | now)


@pytest.mark.parametrize("service", ["profile", "dispatch"])
async def test_a_worker_that_fails_to_start_ends_the_supervisor_with_its_status(
    service: str, redis_url: str, tmp_path: Path
) -> None:
    # The dataset was created with another partition count: every worker's start fails,
    # which a restart would only repeat.
    meta = META_PARTITIONS if service == "profile" else DISPATCH_META_PARTITIONS
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await redis.set(meta, "3")
    finally:
        await redis.aclose()
    make = profile_service if service == "profile" else dispatch_service
    supervised = make(redis_url, tmp_path)
    try:
        await supervised.start()
        assert supervised.process is not None
        status = await supervised.process.wait()
    finally:
        await supervised.kill()
    log = supervised.log_path.read_text()
    assert status == 1, log
    assert "exited with status 1: stopping the other workers" in log
    assert "partition" in log
    assert not supervised.worker_pids()


async def test_a_killed_supervisor_takes_its_workers_along(redis_url: str, tmp_path: Path) -> None:
    supervised = profile_service(redis_url, tmp_path)
    try:
        await supervised.start()
        workers = await supervised.wait_serving()
        address = supervised.address
        assert supervised.process is not None
        supervised.process.kill()
        await supervised.process.wait()

        async def all_gone() -> bool:
            return not any(alive(pid) for pid in workers)

        await wait_for(all_gone, "the workers to die with their supervisor", 30)
        assert await health(address) is None  # nothing listens any more
    finally:
        await supervised.kill()


async def test_a_worker_stopped_with_sigterm_drains_and_is_started_again(
    redis_url: str, tmp_path: Path
) -> None:
    # A rolling restart of one host's workers: SIGTERM one at a time.
    supervised = profile_service(redis_url, tmp_path)
    try:
        await supervised.start()
        first = await supervised.wait_serving()
        victim = min(first)
        os.kill(victim, signal.SIGTERM)

        async def replaced() -> set[int] | None:
            pids = supervised.worker_pids()
            return pids if len(pids) == 2 and victim not in pids else None

        now = await wait_for(replaced, "the stopped worker to be replaced", 30)
        assert now is not None
        assert victim in supervised.rpcs_by_worker()  # it drained: logged "stopped"
        await supervised.wait_serving()
        assert await supervised.stop() == 0
    finally:
        await supervised.kill()
    assert not any(alive(pid) for pid in first | now)
