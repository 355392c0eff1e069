"""The end-to-end trace suite of tests/e2e with both services on the real Redis Cluster: ingest
→ audience joined → action in the outbox (on whichever master holds the visitor's partition) →
the forwarder's SubmitActions → the dispatch service's queues (on the cluster too) → the Braze
sandbox, in one trace; and the event-fed delete action."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from braze_sandbox import BrazeSandbox
from crowd.client import CrowdClient
from dispatch_service.worker import WorkerSettings
from tests.cluster.helpers import ClusterServers
from tests.e2e.conftest import Stack
from tests.e2e.test_e2e_trace import (
    test_event_feed_action_continues_the_trace_to_the_delete_request,
    test_one_trace_from_track_event_to_the_braze_request,
)
from tests.profile_api.helpers import ADMIN_KEY, DISPATCH_KEY
from tests.profile_api.servers import write_connectors

__all__ = [
    "test_event_feed_action_continues_the_trace_to_the_delete_request",
    "test_one_trace_from_track_event_to_the_braze_request",
]


@pytest_asyncio.fixture
async def stack(
    cluster_servers: ClusterServers,
    sandbox: BrazeSandbox,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """tests/e2e's stack with both services on the cluster."""
    servers = cluster_servers
    dispatch = await servers.dispatch(
        write_connectors(tmp_path, sandbox.url),
        WorkerSettings(block_ms=50, promote_interval_s=0.05),
    )
    profile = await servers.profile(dispatch_target=dispatch.address, dispatch_api_key=DISPATCH_KEY)
    async with CrowdClient(profile.address, api_key=ADMIN_KEY) as client:
        yield Stack(sandbox, dispatch, profile, client, servers.tracing)
