"""SyncCohort input validation over real gRPC: INVALID_ARGUMENT naming every bad field, and
nothing written for an invalid stream."""

from __future__ import annotations

import grpc
import pytest
import redis.asyncio as aioredis

from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2
from dispatch_service.cohorts.intake import MAX_CHANGES_PER_STREAM
from service_common.errors import decode_error
from tests.cohorts.conftest import Service
from tests.cohorts.helpers import (
    NO_PARTNER_CONNECTOR,
    PARTNER,
    add,
    cohort_message,
    create_users,
    partner_requests,
    stream,
)


async def _refused(service: Service, requests: list[dispatch_service_pb2.SyncCohortRequest]):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.stub.SyncCohort(iter(requests))
    code, info, violations = decode_error(caught.value)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert info is not None and info.reason == "INVALID_ARGUMENT"
    return {v.field: v.description for v in violations}


async def _cohort_keys(redis: aioredis.Redis) -> list[bytes]:
    """Cohort keys holding data: every key but the (empty) queue streams."""
    found = []
    async for key in redis.scan_iter(match="crowd:v1:cohort:*"):
        if key.endswith(b":queue") and await redis.xlen(key) == 0:
            continue
        found.append(key)
    return found


async def test_every_bad_field_is_named_and_nothing_is_written(
    service: Service, redis_client: aioredis.Redis
):
    alias_without_label = action_pb2.UserIds(user_alias=action_pb2.UserAlias(alias_name="n"))
    fields = await _refused(
        service,
        stream(
            cohort_message("", name=" ", connector="nope"),
            [add("fine"), action_pb2.CohortChange(remove=True)],
            [
                action_pb2.CohortChange(user=alias_without_label),
                action_pb2.CohortChange(user=action_pb2.UserIds(braze_id="b-1")),
                action_pb2.CohortChange(user=action_pb2.UserIds(external_id="x" * 1000)),
            ],
        ),
    )
    assert set(fields) == {
        "requests[0].cohort.connector_id",
        "requests[0].cohort.cohort_id",
        "requests[0].cohort.name",
        "requests[1].changes[1].user",
        "requests[2].changes[0].user.user_alias.alias_label",
        "requests[2].changes[1].user",
        "requests[2].changes[2].user.external_id",
    }
    assert "braze_id" in fields["requests[2].changes[1].user"]
    assert await _cohort_keys(redis_client) == []


async def test_one_bad_change_refuses_the_whole_stream(
    service: Service, redis_client: aioredis.Redis
):
    sandbox = service.sandbox
    await create_users(sandbox, ["u1", "u2"])
    good = [add(f"u{i}") for i in range(10)]
    fields = await _refused(
        service, stream(cohort_message("refused"), good, [add("u2"), action_pb2.CohortChange()])
    )
    assert list(fields) == ["requests[2].changes[1].user"]
    assert await _cohort_keys(redis_client) == []

    # A valid stream afterwards is delivered; the refused cohort never reached Braze.
    await service.stub.SyncCohort(iter(stream(cohort_message("accepted"), [add("u1")])))
    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, "accepted") == {"u1"}, 10)
    assert sandbox.cohort(PARTNER, "refused") is None
    assert all(
        r.body["cohort_id"] != "refused"
        for path in (f"/partners/{PARTNER}/cohorts", f"/partners/{PARTNER}/cohorts/users")
        for r in partner_requests(sandbox, path)
    )


@pytest.mark.parametrize(
    ("requests", "field"),
    [
        ([], "requests"),
        ([dispatch_service_pb2.SyncCohortRequest(changes=[add("u1")])], "requests[0].cohort"),
        ([cohort_message("c", connector=NO_PARTNER_CONNECTOR)], "requests[0].cohort.connector_id"),
        ([cohort_message("c" * 256)], "requests[0].cohort.cohort_id"),
        ([cohort_message("c", name="tab\there")], "requests[0].cohort.name"),
    ],
)
async def test_cohort_message_violations(
    service: Service, redis_client: aioredis.Redis, requests, field
):
    fields = await _refused(service, requests)
    assert list(fields) == [field]
    assert await _cohort_keys(redis_client) == []


async def test_a_stream_above_the_change_limit_is_refused(
    service: Service, redis_client: aioredis.Redis
):
    batch = [add(f"u{i}") for i in range(10_000)]
    messages = [cohort_message("huge")] + [
        dispatch_service_pb2.SyncCohortRequest(changes=batch)
        for _ in range(MAX_CHANGES_PER_STREAM // len(batch) + 1)
    ]
    fields = await _refused(service, messages)
    assert list(fields) == [f"requests[{len(messages) - 1}].changes"]
    assert await _cohort_keys(redis_client) == []
