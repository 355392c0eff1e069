"""The profile API suites of tests/profile_api, run again with the profile service on a real
Redis Cluster (``redis_cluster=true``): the same tests, the same assertions.

Ingestion (TrackEvent, TrackEvents, StreamEvents, dedup), reads (GetProfile by id and by
identity, DeleteProfile, ImportRecords, audience size and paginated members, StreamTrace by
visitor and by trace id) and definitions (publish while events flow on two replicas: the
pub/sub watch and the switch) run over keys spread across every master.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from crowd.client import CrowdClient
from service_common.server import ManagedServer
from tests.cluster.helpers import ClusterProfileServers
from tests.profile_api.helpers import ADMIN_KEY, counter_definitions
from tests.profile_api.test_api_concurrency import (
    test_concurrent_increments_on_two_replicas_lose_nothing,
)
from tests.profile_api.test_api_definitions import test_publish_while_events_flow_on_two_replicas
from tests.profile_api.test_api_ingest import (
    test_duplicate_event_ids_are_ignored,
    test_stream_events_acknowledges_each_batch_and_survives_a_bad_one,
    test_track_event_reports_typed_changes_badges_audiences_and_actions,
    test_track_events_answers_each_event_in_order,
)
from tests.profile_api.test_api_reads import (
    test_audience_size_and_paginated_members,
    test_delete_profile_removes_it_everywhere,
    test_get_profile_by_anonymous_id_and_by_customer_id,
    test_import_by_unknown_visitor_id_value_is_found_by_it,
    test_import_records_counts_imported_duplicates_and_violations,
    test_stream_trace_by_trace_id,
    test_stream_trace_replays_history_then_follows_live,
)

__all__ = [
    "test_audience_size_and_paginated_members",
    "test_concurrent_increments_on_two_replicas_lose_nothing",
    "test_delete_profile_removes_it_everywhere",
    "test_duplicate_event_ids_are_ignored",
    "test_get_profile_by_anonymous_id_and_by_customer_id",
    "test_import_by_unknown_visitor_id_value_is_found_by_it",
    "test_import_records_counts_imported_duplicates_and_violations",
    "test_publish_while_events_flow_on_two_replicas",
    "test_stream_events_acknowledges_each_batch_and_survives_a_bad_one",
    "test_stream_trace_by_trace_id",
    "test_stream_trace_replays_history_then_follows_live",
    "test_track_event_reports_typed_changes_badges_audiences_and_actions",
    "test_track_events_answers_each_event_in_order",
]


# The fixtures of tests/profile_api/conftest.py, on the cluster.


@pytest_asyncio.fixture
async def servers(
    cluster_profile_servers: ClusterProfileServers,
) -> ClusterProfileServers:
    return cluster_profile_servers


@pytest_asyncio.fixture
async def profile_server(servers: ClusterProfileServers) -> ManagedServer:
    return await servers.profile()


@pytest_asyncio.fixture
async def client(profile_server: ManagedServer) -> AsyncIterator[CrowdClient]:
    async with CrowdClient(profile_server.address, api_key=ADMIN_KEY) as crowd:
        yield crowd


@pytest_asyncio.fixture
async def counting(client: CrowdClient) -> CrowdClient:
    await client.publish_definitions(counter_definitions())
    return client
