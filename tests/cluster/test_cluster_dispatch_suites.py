"""The dispatch store and worker suites of tests/dispatch, run again on a real Redis Cluster.

The tests are imported from their suites unchanged; only the fixtures differ: every Redis
client here is a cluster client built by the services' own factory
(``connect_redis(url, cluster=True)``), on the session's 3-master cluster (healed and flushed
before each test). What they cover on the cluster: intake (idempotency, caps), statuses, dead
letters (listing, paging, requeue), the worker (batching, retries, deltas, claim of a dead
worker's entries, 429 waits, the shared rate limit of two replicas) and the visitor trace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest_asyncio
import redis.asyncio as aioredis
import redis.asyncio.cluster

from braze_sandbox import ALL_PERMISSIONS, BrazeSandbox
from dispatch_service.braze import BrazeConnector, create_session
from dispatch_service.delivery import braze_deliveries
from dispatch_service.queue import ActionStore
from dispatch_service.worker import DispatchWorker, WorkerSettings
from service_common.redis import connect_redis
from tests.dispatch.conftest import PARTITIONS, WorkerFactory, connector_for
from tests.dispatch.helpers import API_KEY, CONNECTOR, OTHER_CONNECTOR

# The suites, re-run here (pytest collects imported tests with this module's fixtures).
from tests.dispatch.test_caps import (  # noqa: F401
    test_cooldown_group_fires_highest_priority_and_records_why_others_did_not,
    test_duplicate_of_a_suppressed_action_returns_its_reason,
    test_group_skips_a_candidate_its_simple_cap_suppresses,
    test_group_waits_its_cooldown_per_visitor,
    test_simple_cap_allows_n_sends_per_sliding_window,
    test_simple_cap_counts_sends_within_one_request,
)
from tests.dispatch.test_intake import (  # noqa: F401
    test_accepted_action_is_stored_and_queued,
    test_actions_of_many_visitors_take_one_outcome_each_in_order,
    test_invalid_request_is_refused_whole_naming_each_field,
    test_same_key_twice_returns_first_outcome_and_queues_once,
    test_store_refuses_a_dataset_of_another_partition_count,
)
from tests.dispatch.test_status import (  # noqa: F401
    test_failed_action_has_reason_and_is_listed,
    test_listing_filters_by_connector,
    test_pages_cover_every_dead_letter_once_newest_first,
    test_retry_all_of_one_connector,
    test_retry_requeues_failed_actions_and_names_the_others,
)
from tests.dispatch.test_visitor_trace import (  # noqa: F401
    test_a_suppressed_action_is_noted_in_the_visitors_trace,
    test_nothing_is_written_without_a_profile_service_on_this_redis,
)
from tests.dispatch.test_worker import (  # noqa: F401
    test_429_wait_is_honoured_before_the_retry,
    test_braze_down_then_up_delivers_everything,
    test_entries_of_a_dead_worker_are_reclaimed_and_delivered,
    test_out_of_attempts_is_dead_lettered,
    test_two_workers_stay_within_the_shared_rate_limit,
    test_unchanged_update_is_skipped,
    test_worker_fills_requests_and_records_delivery,
)
from tests.harness import RedisClusterHarness, running_sandbox


def _cluster_client(cluster: RedisClusterHarness) -> aioredis.Redis:
    # The services' own factory, given one seed node: as a replica connects in production.
    return cast(aioredis.Redis, connect_redis(cluster.url, cluster=True))


@pytest_asyncio.fixture
async def redis_client(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,  # heals and flushes the cluster
) -> AsyncIterator[aioredis.Redis]:
    client = _cluster_client(redis_cluster)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def store(redis_client: aioredis.Redis) -> ActionStore:
    store = ActionStore(redis_client, PARTITIONS, [CONNECTOR, OTHER_CONNECTOR])
    await store.ensure_queues()
    return store


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[BrazeSandbox]:
    async with running_sandbox(api_keys={API_KEY: ALL_PERMISSIONS}) as sandbox:
        yield sandbox


@pytest_asyncio.fixture
async def start_worker(
    redis_cluster: RedisClusterHarness, redis_client: aioredis.Redis, sandbox: BrazeSandbox
) -> AsyncIterator[WorkerFactory]:
    """Workers as replicas run them: each with its own cluster client and HTTP session."""
    running: list[tuple[DispatchWorker, aioredis.Redis, aiohttp.ClientSession]] = []

    async def factory(
        name: str = "worker-1", connector: BrazeConnector | None = None, **settings: Any
    ) -> DispatchWorker:
        client = _cluster_client(redis_cluster)
        session = create_session()
        worker_store = ActionStore(client, PARTITIONS, [CONNECTOR])
        connectors = {CONNECTOR: connector or connector_for(sandbox)}
        deliveries = braze_deliveries(connectors, client, PARTITIONS, session)
        worker = DispatchWorker(
            worker_store, deliveries, consumer_name=name, settings=WorkerSettings(**settings)
        )
        await worker.start()
        running.append((worker, client, session))
        return worker

    yield factory
    for worker, client, session in running:
        await worker.stop(grace=5.0)
        await session.close()
        await client.aclose()
