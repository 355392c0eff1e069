"""The identity suites of tests/identity, run again on a real Redis Cluster: two profiles in
two hash slots stitched into one, with crashes between steps, concurrent replicas and cross
stitches, and through the gRPC API with the profile service on the cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio
import redis.asyncio.cluster

from crowd.client import CrowdClient
from profile_service.storage import Layout, ProfileReader, ProfileStore
from service_common.server import ManagedServer
from tests.cluster.helpers import ClusterProfileServers
from tests.identity.helpers import real_store
from tests.identity.test_identity_api import test_two_devices_one_person_through_the_api
from tests.identity.test_identity_stitch import (
    test_a_chain_of_three_devices_becomes_one_profile,
    test_a_guardrail_refuses_and_the_value_stays_with_its_first_holder,
    test_a_stitch_interrupted_before_any_step_is_completed_exactly_once,
    test_cross_stitches_form_no_cycle,
    test_replaying_the_same_events_changes_nothing,
    test_second_device_login_stitches_into_the_first_profile,
    test_the_next_event_of_an_interrupted_stitch_finishes_it_before_it_is_answered,
    test_two_replicas_stitching_at_once_agree_on_one_survivor,
)
from tests.identity.test_identity_stitching import (
    crowd,
    test_an_import_that_carries_a_known_value_stitches,
    test_one_batch_carrying_both_devices_stitches_once,
)
from tests.profile_api.helpers import ADMIN_KEY

__all__ = [
    "crowd",
    "test_a_chain_of_three_devices_becomes_one_profile",
    "test_a_guardrail_refuses_and_the_value_stays_with_its_first_holder",
    "test_a_stitch_interrupted_before_any_step_is_completed_exactly_once",
    "test_an_import_that_carries_a_known_value_stitches",
    "test_cross_stitches_form_no_cycle",
    "test_one_batch_carrying_both_devices_stitches_once",
    "test_replaying_the_same_events_changes_nothing",
    "test_second_device_login_stitches_into_the_first_profile",
    "test_the_next_event_of_an_interrupted_stitch_finishes_it_before_it_is_answered",
    "test_two_devices_one_person_through_the_api",
    "test_two_replicas_stitching_at_once_agree_on_one_survivor",
]


# The fixtures of tests/identity, on the cluster.


@pytest.fixture
def redis_client(redis_cluster_client: redis.asyncio.cluster.RedisCluster) -> redis.asyncio.Redis:
    return redis_cluster_client  # type: ignore[return-value]


@pytest.fixture
def layout() -> Layout:
    return Layout(8)


@pytest_asyncio.fixture
async def store(redis_client: redis.asyncio.Redis, layout: Layout) -> ProfileStore:
    return await real_store(redis_client, layout)


@pytest.fixture
def reader(redis_client: redis.asyncio.Redis, layout: Layout) -> ProfileReader:
    return ProfileReader(redis_client, layout)


@pytest_asyncio.fixture
async def profile_server(cluster_profile_servers: ClusterProfileServers) -> ManagedServer:
    return await cluster_profile_servers.profile()


@pytest_asyncio.fixture
async def client(profile_server: ManagedServer) -> AsyncIterator[CrowdClient]:
    async with CrowdClient(profile_server.address, api_key=ADMIN_KEY) as crowd:
        yield crowd
