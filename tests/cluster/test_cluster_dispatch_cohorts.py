"""The cohort sync suites of tests/cohorts, run again on a real Redis Cluster.

The tests are imported unchanged; the fixtures point them at the session's 3-master cluster
(healed and flushed before each test): the dispatch server is configured by its documented
setting ``CROWD_DISPATCH_REDIS_CLUSTER=true`` with one seed node's URL, and every Redis client
is a cluster client built by the services' own factory. Covered on the cluster: SyncCohort
intake to Braze's cohort endpoints (full requests, last change wins, renames, aliases),
retries and 429 waits, dead letters, a dead worker's cohort taken over, two replicas keeping
a cohort's changes in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import redis.asyncio.cluster

from braze_sandbox import BrazeSandbox
from dispatch_service.braze import create_session
from dispatch_service.cohorts import CohortStore, CohortWorker, CohortWorkerSettings, cohort_senders
from dispatch_service.settings import DispatchSettings
from service_common.redis import connect_redis
from tests.cohorts.conftest import PARTITIONS, exporter, sandbox, service  # noqa: F401
from tests.cohorts.helpers import CONNECTOR

# The suites, re-run here (pytest collects imported tests with this module's fixtures).
from tests.cohorts.test_cohort_failures import (  # noqa: F401
    test_401_is_dead_lettered_with_the_reason_and_leaks_nothing,
    test_503_is_retried_until_braze_recovers,
    test_changes_made_during_an_outage_are_sent_as_their_last_state,
)
from tests.cohorts.test_cohort_sync import (  # noqa: F401
    test_2500_adds_take_three_full_requests_and_the_members_appear,
    test_aliases_and_device_ids,
    test_removals_last_change_wins_and_renames,
)
from tests.cohorts.test_cohort_worker import (  # noqa: F401
    WorkerFactory,
    _connector,
    test_a_dead_workers_cohort_is_taken_over,
    test_two_replicas_keep_each_cohorts_changes_in_order,
)
from tests.harness import RedisClusterHarness


@pytest.fixture
def redis_url(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,  # heals and flushes the cluster
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """One seed node of the cluster; the dispatch server learns it is a cluster from its
    documented environment setting."""
    monkeypatch.setenv(DispatchSettings.env_name("redis_cluster"), "true")
    return redis_cluster.url


def _cluster_client(url: str) -> aioredis.Redis:
    return cast(aioredis.Redis, connect_redis(url, cluster=True))


@pytest_asyncio.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = _cluster_client(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def start_worker(sandbox: BrazeSandbox) -> AsyncIterator[WorkerFactory]:  # noqa: F811
    """Cohort workers as replicas run them: each with its own cluster client and session."""
    running: list[tuple[CohortWorker, aioredis.Redis, aiohttp.ClientSession]] = []

    async def factory(redis_url: str, name: str = "worker-1", **settings: Any) -> CohortWorker:
        client = _cluster_client(redis_url)
        session = create_session()
        connectors = {CONNECTOR: _connector(sandbox)}
        store = CohortStore(client, PARTITIONS, connectors)
        senders = cohort_senders(connectors, client, PARTITIONS, session)
        worker = CohortWorker(
            store, senders, consumer_name=name, settings=CohortWorkerSettings(**settings)
        )
        await worker.start()
        running.append((worker, client, session))
        return worker

    yield factory
    for worker, client, session in running:
        await worker.stop(grace=2.0)
        await session.close()
        await client.aclose()
