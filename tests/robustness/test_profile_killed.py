"""A profile service process SIGKILLed right after committing loses no fired action.

``python -m profile_service`` runs as a real process on a real Redis with a definitions file
whose event-feed action is a Track User, and no reachable dispatch service. Events fire
actions (committed with the profiles into the outbox); the process is killed; a new profile
server (``create_server``) linked to a real dispatch server and the Braze sandbox delivers
every fired action exactly once.

Two cases: the dead process had no dispatch target (nothing read the outbox), or it had one
that did not answer (its forwarder had read entries and held them, pending, when it died: a
surviving forwarder takes them over once idle for its claim time: 30 s by default, a couple
of seconds here through ``outbox_claim_idle_seconds``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import grpc
import pytest

from braze_sandbox import BrazeSandbox
from crowd.client import CrowdClient
from crowd.dispatch.v1 import action_pb2
from dispatch_service.worker import WorkerSettings
from tests.harness import free_port
from tests.profile_api.helpers import ADMIN_KEY, DISPATCH_KEY, PROFILE_KEYS, wait_for
from tests.profile_api.servers import Servers, Tracing, write_connectors
from tests.robustness.helpers import (
    CLOSED_EVENT,
    delivered_events,
    outbox_state,
    write_definitions,
)

REPO = Path(__file__).resolve().parents[2]
VISITORS = 40
DELIVERED = action_pb2.ACTION_STATE_DELIVERED


def customer(i: int) -> str:
    return f"killed-customer-{i:02d}"


async def _start_profile_process(
    redis_url: str, definitions: Path, dispatch_target: str, log: Path
) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    env = {
        **os.environ,
        "CROWD_PROFILE_PORT": str(port),
        "CROWD_PROFILE_REDIS_URL": redis_url,
        "CROWD_PROFILE_API_KEYS": json.dumps(PROFILE_KEYS),
        "CROWD_PROFILE_DISPATCH_TARGET": dispatch_target,
        "CROWD_PROFILE_DISPATCH_API_KEY": DISPATCH_KEY,
        "CROWD_PROFILE_DEFINITIONS_FILE": str(definitions),
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


async def _answers(client: CrowdClient, process: asyncio.subprocess.Process, log: Path) -> bool:
    if process.returncode is not None:
        output = _read(log)
        raise AssertionError(f"profile_service exited ({process.returncode}):\n{output}")
    try:
        await client.get_definitions()
    except grpc.aio.AioRpcError:
        return False
    return True


CLAIM_IDLE_S = 2.0


@pytest.mark.slow
@pytest.mark.parametrize("dead_target", ["none", "unreachable"])
async def test_actions_committed_by_a_killed_profile_process_are_delivered_once(
    dead_target: str, redis_url: str, sandbox: BrazeSandbox, tracing: Tracing, tmp_path: Path
) -> None:
    target = "" if dead_target == "none" else f"127.0.0.1:{free_port()}"
    log = tmp_path / "profile.log"
    process, address = await _start_profile_process(
        redis_url, write_definitions(tmp_path), target, log
    )
    try:
        async with CrowdClient(address, api_key=ADMIN_KEY, timeout=5) as client:
            await wait_for(lambda: _answers(client, process, log), "profile_service to serve")
            fired: list[str] = []
            for i in range(VISITORS):
                result = await client.track_event(
                    f"killed-visitor-{i:02d}", CLOSED_EVENT, {"customer_id": customer(i)}
                )
                fired += [ref.idempotency_key for ref in result.actions_fired]
        assert len(set(fired)) == VISITORS
        if target:
            # Its forwarder holds what it read while the dispatch service does not answer.
            await wait_for(
                lambda: _pending_at_least(redis_url, 1), "the doomed forwarder to read entries"
            )
        process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGKILL
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert (await outbox_state(redis_url))[0] == VISITORS  # all committed, none forwarded

    servers = Servers(redis_url, tracing)
    try:
        dispatch = await servers.dispatch(
            write_connectors(tmp_path, sandbox.url),
            WorkerSettings(block_ms=50, promote_interval_s=0.05),
        )
        await servers.profile(
            dispatch_target=dispatch.address,
            dispatch_api_key=DISPATCH_KEY,
            outbox_claim_idle_seconds=CLAIM_IDLE_S,
        )
        expected = {customer(i) for i in range(VISITORS)}

        async def all_delivered() -> bool:
            return set(delivered_events(sandbox, CLOSED_EVENT)) == expected

        # Entries the dead forwarder held are taken over after the claim time plus up to one
        # claim interval (a third of it).
        within = 25.0
        await wait_for(all_delivered, "every committed action to reach Braze", within_s=within)
        await wait_for(
            lambda: _outbox_empty(redis_url), "the outbox to be emptied", within_s=within
        )
        async with CrowdClient("", dispatch.address, api_key=DISPATCH_KEY) as dispatch_client:
            statuses = [await dispatch_client.get_action(key) for key in fired]
        assert all(s.state == DELIVERED for s in statuses)
        counts = delivered_events(sandbox, CLOSED_EVENT)
        assert {uid: n for uid, n in counts.items() if n != 1} == {}
    finally:
        await servers.close()


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


async def _pending_at_least(redis_url: str, count: int) -> bool:
    return (await outbox_state(redis_url))[1] >= count


async def _outbox_empty(redis_url: str) -> bool:
    return await outbox_state(redis_url) == (0, 0)
