"""The seed scenario of tests/e2e/test_e2e_seed.py with both services on the real Redis Cluster:
events through the profile service, two visits ended by the sweeper (inactivity), the audience
joined, the action through the outbox to the dispatch service, its queues and the Braze sandbox,
exactly once, with the delivery noted in the visitor's trace and one trace from the caller to the
Braze request. The same tests, the same assertions; only the fixture differs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.cluster.helpers import ClusterServers
from tests.e2e.test_e2e_seed import (
    SeedRun,
    recorded_seed_run,
    test_a_further_event_does_not_send_it_again,
    test_braze_request_continues_the_trace_that_carried_the_action,
    test_keys_appear_in_no_span_and_no_log_record,
    test_profile_reaches_the_audience,
    test_seed_braze_request_is_in_a_callers_track_event_trace,
    test_the_visitors_trace_shows_the_delivery,
    test_track_user_arrives_once_with_the_mapped_values,
)
from tests.harness import RedisClusterHarness
from tests.profile_api.servers import Tracing

__all__ = [
    "test_a_further_event_does_not_send_it_again",
    "test_braze_request_continues_the_trace_that_carried_the_action",
    "test_keys_appear_in_no_span_and_no_log_record",
    "test_profile_reaches_the_audience",
    "test_seed_braze_request_is_in_a_callers_track_event_trace",
    "test_the_visitors_trace_shows_the_delivery",
    "test_track_user_arrives_once_with_the_mapped_values",
]


@pytest_asyncio.fixture(scope="module")
async def seed_run(
    redis_cluster: RedisClusterHarness, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SeedRun]:
    await asyncio.to_thread(redis_cluster.heal)
    await asyncio.to_thread(redis_cluster.flushall)
    tracing = Tracing()
    try:
        async with recorded_seed_run(
            ClusterServers(redis_cluster, tracing), tmp_path_factory.mktemp("seed-cluster")
        ) as run:
            yield run
    finally:
        tracing.shutdown()
