"""Audiences bound to Braze cohorts (issue 15 D) end to end: joins and leaves sync the cohort
through the dispatch service's cohort path to the sandbox's partner endpoints; the cohort's
name defaults to its id; ResyncCohort refills a cohort wiped in Braze."""

from __future__ import annotations

import json
from typing import Any

import grpc
import grpc.aio
import pytest

from crowd.definitions.loader import definitions_from_dict
from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2_grpc
from crowd.profile.v1 import profile_service_pb2
from profile_service.cohort_link import sync_cohort
from service_common.client import create_channel
from tests.cli.cli_runner import cli_env, run_cli_async
from tests.cohort_binding.conftest import CONNECTOR, PARTNER, BindingStack
from tests.forwarding.documents import document
from tests.profile_api.helpers import ADMIN_KEY, DISPATCH_KEY

COHORT = "td-silver-2026"


def _bound(**binding: Any) -> Any:
    doc = document()
    # Creates the Braze user on every event: cohort import never creates users.
    doc["event_feeds"] = [{"id": "all", "rule": {}}]
    doc["actions"] = [
        {
            "id": "profile_sync",
            "connector_id": CONNECTOR,
            "event_feed": "all",
            "track_user": {
                "identifier": {"external_id": {"attribute": "customer_id"}},
                "attributes": [{"name": "points", "value": {"attribute": "points"}}],
            },
        }
    ]
    doc["cohort_bindings"] = [
        {
            "audience_id": "silver",
            "connector_id": CONNECTOR,
            "cohort_id": COHORT,
            "external_id": {"attribute": "customer_id"},
            **binding,
        }
    ]
    return definitions_from_dict(doc)


async def _user_exists(stack: BindingStack, visitor: str, customer: str) -> None:
    await stack.client.track_event(visitor, "hello", {"customer_id": customer, "points": 1.0})
    await stack.sandbox.wait_until(lambda: stack.sandbox.get_user(customer) is not None, timeout=20)


async def test_join_and_leave_sync_the_bound_cohort_named_by_its_id(
    binding_stack: BindingStack,
) -> None:
    stack, sandbox = binding_stack, binding_stack.sandbox
    await stack.client.publish_definitions(_bound())
    await _user_exists(stack, "b1", "cust-b0001")
    await _user_exists(stack, "b2", "cust-b0002")

    await stack.client.track_event("b1", "score", {"points": 50.0})
    await stack.client.track_event("b2", "score", {"points": 60.0})
    await sandbox.wait_until(
        lambda: sandbox.cohort_members(PARTNER, COHORT) == {"cust-b0001", "cust-b0002"},
        timeout=20,
    )
    cohort = sandbox.cohort(PARTNER, COHORT)
    assert cohort is not None
    assert cohort.name == COHORT  # no name given: Treasure Data's default, the id

    await stack.client.track_event("b1", "score", {"points": 2.0})
    await sandbox.wait_until(
        lambda: sandbox.cohort_members(PARTNER, COHORT) == {"cust-b0002"}, timeout=20
    )


async def test_resync_refills_a_wiped_cohort_and_reports_progress(
    binding_stack: BindingStack,
) -> None:
    stack, sandbox = binding_stack, binding_stack.sandbox
    await stack.client.publish_definitions(_bound(cohort_name="Silver members"))
    customers = [f"cust-r{i:04d}" for i in range(5)]
    for i, customer in enumerate(customers):
        await _user_exists(stack, f"r{i}", customer)
        await stack.client.track_event(f"r{i}", "score", {"points": 50.0 if i < 4 else 3.0})
    members = set(customers[:4])
    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, COHORT) == members, timeout=20)
    assert sandbox.cohort(PARTNER, COHORT).name == "Silver members"  # type: ignore[union-attr]

    assert sandbox.drop_cohort(PARTNER, COHORT)
    assert sandbox.cohort_members(PARTNER, COHORT) == set()

    progress = [
        p
        async for p in stack.client.profiles.ResyncCohort(
            profile_service_pb2.ResyncCohortRequest(audience_id="silver"),
            metadata=stack.client._metadata,
        )
    ]
    last = progress[-1]
    assert last.done
    assert (last.members_scanned, last.members_sent, last.members_skipped) == (4, 4, 0)
    assert list(last.cohort_ids) == [COHORT]
    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, COHORT) == members, timeout=20)


async def test_resync_refuses_unbound_and_unknown_audiences(binding_stack: BindingStack) -> None:
    await binding_stack.client.publish_definitions(_bound())
    for audience, code in (
        ("gold", grpc.StatusCode.FAILED_PRECONDITION),
        ("nope", grpc.StatusCode.NOT_FOUND),
        ("", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in binding_stack.client.profiles.ResyncCohort(
                profile_service_pb2.ResyncCohortRequest(audience_id=audience),
                metadata=binding_stack.client._metadata,
            ):
                pass
        assert refused.value.code() == code


async def test_cli_cohort_resync(binding_stack: BindingStack) -> None:
    stack, sandbox = binding_stack, binding_stack.sandbox
    await stack.client.publish_definitions(_bound())
    await _user_exists(stack, "c1", "cust-c0001")
    await stack.client.track_event("c1", "score", {"points": 50.0})
    await sandbox.wait_until(
        lambda: sandbox.cohort_members(PARTNER, COHORT) == {"cust-c0001"}, timeout=20
    )
    sandbox.drop_cohort(PARTNER, COHORT)

    env = cli_env(CROWD_PROFILE_TARGET=stack.profile.address, CROWD_API_KEY=ADMIN_KEY)
    ran = await run_cli_async("cohort", "resync", "silver", env=env)
    assert ran.code == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["done"] is True
    assert result["members_sent"] == "1"  # int64 in proto JSON
    await sandbox.wait_until(
        lambda: sandbox.cohort_members(PARTNER, COHORT) == {"cust-c0001"}, timeout=20
    )

    refused = await run_cli_async("cohort", "resync", "gold", env=env)
    assert refused.code == 1
    assert "not bound" in refused.stderr


async def test_sync_cohort_without_a_name_is_named_by_its_id(binding_stack: BindingStack) -> None:
    stack, sandbox = binding_stack, binding_stack.sandbox
    await stack.client.publish_definitions(_bound())
    await _user_exists(stack, "n1", "cust-n0001")
    channel = create_channel(stack.dispatch.address, api_key=DISPATCH_KEY)
    try:
        stub = dispatch_service_pb2_grpc.DispatchServiceStub(channel)
        change = action_pb2.CohortChange(user=action_pb2.UserIds(external_id="cust-n0001"))
        response = await sync_cohort(stub, (CONNECTOR, "unnamed-7", ""), [change])
    finally:
        await channel.close()
    assert response.accepted == 1
    await sandbox.wait_until(
        lambda: sandbox.cohort_members(PARTNER, "unnamed-7") == {"cust-n0001"}, timeout=20
    )
    cohort = sandbox.cohort(PARTNER, "unnamed-7")
    assert cohort is not None and cohort.name == "unnamed-7"
