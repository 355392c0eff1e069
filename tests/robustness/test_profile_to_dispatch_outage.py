"""Actions fired while the dispatch service is down wait in the profile service's outbox and
reach Braze exactly once when it comes up on its address.

Real parts only: Redis, the profile server (``create_server``) with a definitions file whose
event-feed action is a Track User, a dispatch server started later on the port the profile
service was told about, and the Braze sandbox over HTTP.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from braze_sandbox import BrazeSandbox
from crowd.client import CrowdClient
from crowd.dispatch.v1 import action_pb2
from dispatch_service.worker import WorkerSettings
from tests.harness import free_port
from tests.profile_api.helpers import ADMIN_KEY, DISPATCH_KEY, wait_for
from tests.profile_api.servers import Servers, Tracing, write_connectors
from tests.robustness.helpers import (
    CLOSED_EVENT,
    delivered_events,
    outbox_state,
    write_definitions,
)

VISITORS = 60


def customer(i: int) -> str:
    return f"outage-customer-{i:02d}"


@pytest.mark.slow
async def test_actions_fired_while_dispatch_is_down_are_delivered_once_it_starts(
    redis_url: str, sandbox: BrazeSandbox, tracing: Tracing, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here until the dispatch server is started on it
    servers = Servers(redis_url, tracing)
    try:
        profile = await servers.profile(
            definitions_file=write_definitions(tmp_path),
            dispatch_target=f"127.0.0.1:{port}",
            dispatch_api_key=DISPATCH_KEY,
        )
        async with CrowdClient(profile.address, api_key=ADMIN_KEY) as client:
            fired: list[str] = []
            for i in range(VISITORS):
                result = await client.track_event(
                    f"outage-visitor-{i:02d}", CLOSED_EVENT, {"customer_id": customer(i)}
                )
                fired += [ref.idempotency_key for ref in result.actions_fired]
            assert len(fired) == len(set(fired)) == VISITORS

        # Every fired action is in the outbox; the forwarder has read some, failed to submit
        # them and keeps them claimed while it retries (the rest waits unread behind them).
        async def forwarder_retrying() -> bool:
            length, pending = await outbox_state(redis_url)
            return length == VISITORS and pending > 0

        await wait_for(forwarder_retrying, "the forwarder to hold actions it cannot submit")
        assert not sandbox.requests

        await servers.dispatch(
            write_connectors(tmp_path, sandbox.url),
            WorkerSettings(block_ms=50, promote_interval_s=0.05),
            port=port,
        )
        expected = {customer(i) for i in range(VISITORS)}

        async def all_delivered() -> bool:
            return set(delivered_events(sandbox, CLOSED_EVENT)) == expected

        await wait_for(all_delivered, "every fired action to reach Braze", within_s=25)
        await wait_for(lambda: _outbox_is(redis_url, 0, 0), "the outbox to be emptied")

        async with CrowdClient("", f"127.0.0.1:{port}", api_key=DISPATCH_KEY) as dispatch:
            statuses = [await dispatch.get_action(key) for key in fired]
        assert all(s.state == action_pb2.ACTION_STATE_DELIVERED for s in statuses)
        counts = delivered_events(sandbox, CLOSED_EVENT)
        assert {uid: n for uid, n in counts.items() if n != 1} == {}
    finally:
        await servers.close()


async def _outbox_is(redis_url: str, length: int, pending: int) -> bool:
    return await outbox_state(redis_url) == (length, pending)
