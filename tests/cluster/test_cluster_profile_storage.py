"""The background work of the profile service on a real Redis Cluster: the storage suites of
the visit-end sweeper (visits end by inactivity exactly once with two sweepers; due delayed
actions fire once, are rescheduled and cancelled) and of the outbox forwarder (every action
forwarded exactly once, across failures, two forwarders sharing the outboxes), run again
with cluster clients. Their partitions live on every master, so each sweep, read and claim
covers all of them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio
import redis.asyncio.cluster

from profile_service.storage import Layout, ProfileReader, ProfileStore
from tests.harness import RedisClusterHarness
from tests.storage.conftest import PARTITIONS
from tests.storage.helpers import STAND_IN_ENGINE
from tests.storage.test_storage_delayed_reschedule import (
    test_a_later_qualifying_visit_moves_the_pending_run_instead_of_adding_one,
    test_a_run_moved_by_a_visit_end_in_the_same_sweep_waits_for_its_new_time,
    test_leaving_and_rejoining_within_one_batch_keeps_the_pending_run,
    test_leaving_the_audience_cancels_the_pending_run,
)
from tests.storage.test_storage_outbox import (
    test_a_failing_submit_is_retried_until_the_dispatch_service_accepts,
    test_actions_written_before_the_forwarder_existed_are_forwarded,
    test_committed_actions_reach_submit_exactly_once_and_leave_the_outbox,
    test_two_forwarders_share_the_outboxes_without_duplicates,
)
from tests.storage.test_storage_sweeper import (
    test_a_due_delayed_action_fires_once_if_the_visitor_still_qualifies,
    test_a_visit_ends_by_inactivity_exactly_once_with_two_sweepers_running,
    test_concurrent_sweeps_at_the_same_instant_end_each_visit_once,
)

__all__ = [
    "test_a_due_delayed_action_fires_once_if_the_visitor_still_qualifies",
    "test_a_failing_submit_is_retried_until_the_dispatch_service_accepts",
    "test_a_later_qualifying_visit_moves_the_pending_run_instead_of_adding_one",
    "test_a_run_moved_by_a_visit_end_in_the_same_sweep_waits_for_its_new_time",
    "test_a_visit_ends_by_inactivity_exactly_once_with_two_sweepers_running",
    "test_actions_written_before_the_forwarder_existed_are_forwarded",
    "test_committed_actions_reach_submit_exactly_once_and_leave_the_outbox",
    "test_concurrent_sweeps_at_the_same_instant_end_each_visit_once",
    "test_leaving_and_rejoining_within_one_batch_keeps_the_pending_run",
    "test_leaving_the_audience_cancels_the_pending_run",
    "test_two_forwarders_share_the_outboxes_without_duplicates",
]


# The fixtures of tests/storage, on the cluster.


@pytest.fixture
def client(redis_cluster_client: redis.asyncio.cluster.RedisCluster) -> redis.asyncio.Redis:
    return redis_cluster_client  # type: ignore[return-value]


@pytest.fixture
def layout() -> Layout:
    return Layout(PARTITIONS)


@pytest_asyncio.fixture
async def store(client: redis.asyncio.Redis, layout: Layout) -> ProfileStore:
    profile_store = ProfileStore(client, layout, STAND_IN_ENGINE)
    await profile_store.prepare()
    return profile_store


@pytest.fixture
def reader(client: redis.asyncio.Redis, layout: Layout) -> ProfileReader:
    return ProfileReader(client, layout)


@pytest_asyncio.fixture
async def replicas(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,
    layout: Layout,
) -> AsyncIterator[list[tuple[ProfileStore, redis.asyncio.Redis]]]:
    """Two replicas of the sweeper suite: each its own cluster client and store."""
    clients = [redis_cluster.async_client() for _ in range(2)]
    stores = [ProfileStore(c, layout, STAND_IN_ENGINE) for c in clients]  # type: ignore[arg-type]
    for s in stores:
        await s.prepare()
    try:
        yield list(zip(stores, clients, strict=True))  # type: ignore[arg-type]
    finally:
        for c in clients:
            await c.aclose()


def test_the_partitions_of_these_suites_live_on_every_master(
    redis_cluster: RedisClusterHarness, layout: Layout
) -> None:
    served = {redis_cluster.master_of_key(p.outbox).port for p in layout.all_partitions()}
    assert served == {m.port for m in redis_cluster.masters()}
