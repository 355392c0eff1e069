"""Undecodable and hostile requests (issue 8): every RPC kind answers INVALID_ARGUMENT with a
short, readable status, logs one throttled WARNING per cause, and writes nothing.

Real servers of both services, raw bytes over real gRPC channels (see conftest.py).
"""

from __future__ import annotations

import logging
from typing import Any, cast

import grpc
import pytest

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2
from crowd.profile.v1 import (
    definition_service_pb2,
    event_pb2,
    profile_service_pb2,
    profile_service_pb2_grpc,
)
from service_common.errors import MAX_ECHO_CHARS, MAX_LISTED_VIOLATIONS, decode_error
from tests.hostile.conftest import Hostile
from tests.hostile.helpers import (
    PYTHON_LEAKS,
    Method,
    Outcome,
    all_methods,
    call_raw,
    deeply_nested_definitions,
    method,
    redis_snapshot,
)

pytestmark = pytest.mark.asyncio

# Not protobuf: 0xff starts a varint tag that never ends.
GARBAGE = b"\xff\xff\xff"


def _assert_readable_invalid_argument(outcome: Outcome) -> None:
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, outcome
    assert outcome.details and not any(leak in outcome.details for leak in PYTHON_LEAKS)
    assert outcome.error is not None
    _, info, violations = decode_error(outcome.error)
    assert info is not None and info.domain == "crowd.dev"
    assert violations


def _reason(outcome: Outcome) -> str:
    assert outcome.error is not None
    info = decode_error(outcome.error).error_info
    assert info is not None
    return str(info.reason)


@pytest.mark.parametrize("rpc", all_methods(), ids=lambda rpc: rpc.name)
async def test_undecodable_request_is_invalid_argument_on_every_rpc(
    hostile: Hostile, rpc: Method, caplog: pytest.LogCaptureFixture
) -> None:
    before = await redis_snapshot(hostile.redis)

    outcome = await call_raw(hostile.channel(rpc), rpc, [GARBAGE], hostile.auth(rpc))

    _assert_readable_invalid_argument(outcome)
    assert _reason(outcome) == "REQUEST_UNDECODABLE"
    assert await redis_snapshot(hostile.redis) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_undecodable_message_mid_stream_ends_the_stream_naming_its_position(
    hostile: Hostile,
) -> None:
    rpc = method("StreamEvents")
    first = profile_service_pb2.StreamEventsRequest(sequence=1).SerializeToString()

    outcome = await call_raw(hostile.channel(rpc), rpc, [first, GARBAGE], hostile.auth(rpc))

    assert outcome.responses == 1  # the good batch was answered before the bad one ended it
    _assert_readable_invalid_argument(outcome)
    assert "stream message 1" in outcome.details


async def test_unauthenticated_garbage_is_refused_by_auth_first(hostile: Hostile) -> None:
    rpc = method("TrackEvent")
    outcome = await call_raw(hostile.channel(rpc), rpc, [GARBAGE], ())
    assert outcome.code == grpc.StatusCode.UNAUTHENTICATED


async def test_repeated_bad_requests_log_one_warning_per_cause_without_stack_trace(
    hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    track, records = method("TrackEvent"), method("ImportRecords")
    for _ in range(5):
        await call_raw(hostile.channel(track), track, [GARBAGE], hostile.auth(track))
        await call_raw(hostile.channel(records), records, [GARBAGE], hostile.auth(records))
        await call_raw(
            hostile.channel(track), track, [_track_event(plan=_null(7))], hostile.auth(track)
        )

    assert [r.getMessage() for r in caplog.records] == [
        "refused a request to /crowd.profile.v1.ProfileService/TrackEvent: not valid protobuf",
        "refused a request to /crowd.profile.v1.ProfileService/TrackEvent: undefined enum value",
    ]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records)


def _null(number: int) -> value_pb2.Value:
    """A Value whose null_value holds ``number`` (any int32 goes on the wire)."""
    return value_pb2.Value(null_value=cast(Any, number))


def _track_event(**data: value_pb2.Value) -> bytes:
    event = event_pb2.Event(visitor_id="visitor-1", name="page_view", data=data)
    return profile_service_pb2.TrackEventRequest(event=event).SerializeToString()


async def test_null_value_seven_is_refused_and_nothing_written(hostile: Hostile) -> None:
    rpc = method("TrackEvent")
    before = await redis_snapshot(hostile.redis)

    outcome = await call_raw(
        hostile.channel(rpc),
        rpc,
        [_track_event(plan=_null(7))],
        hostile.auth(rpc),
    )

    _assert_readable_invalid_argument(outcome)
    assert outcome.error is not None
    _, info, violations = decode_error(outcome.error)
    assert info is not None and info.reason == "ENUM_VALUE_UNDEFINED"
    assert [(v.field, v.description) for v in violations] == [
        ("event.data['plan'].null_value", "7 is not a value of google.protobuf.NullValue")
    ]
    assert await redis_snapshot(hostile.redis) == before


async def test_defined_null_value_is_still_accepted(hostile: Hostile) -> None:
    rpc = method("TrackEvent")
    outcome = await call_raw(
        hostile.channel(rpc),
        rpc,
        [_track_event(plan=_null(0))],
        hostile.auth(rpc),
    )
    assert outcome.code == grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("name", "request_bytes", "field"),
    [
        (
            "SubmitActions",
            dispatch_service_pb2.SubmitActionsRequest(
                actions=[
                    action_pb2.Action(
                        idempotency_key="k1",
                        connector_id="braze",
                        visitor_id="v1",
                        update_membership=action_pb2.UpdateMembership(mode=42),  # type: ignore[arg-type]
                    )
                ]
            ).SerializeToString(),
            "actions[0].update_membership.mode",
        ),
        (
            "ImportRecords",
            profile_service_pb2.ImportRecordsRequest(
                records=[
                    profile_service_pb2.ImportRecord(
                        name="n",
                        data={"x": _null(3)},
                    )
                ]
            ).SerializeToString(),
            "records[0].data['x'].null_value",
        ),
    ],
)
async def test_undefined_enum_values_are_refused_in_every_service(
    hostile: Hostile, name: str, request_bytes: bytes, field: str
) -> None:
    rpc = method(name)
    before = await redis_snapshot(hostile.redis)
    outcome = await call_raw(hostile.channel(rpc), rpc, [request_bytes], hostile.auth(rpc))
    _assert_readable_invalid_argument(outcome)
    assert outcome.error is not None
    assert [v.field for v in decode_error(outcome.error).violations] == [field]
    assert await redis_snapshot(hostile.redis) == before


async def test_huge_key_gets_a_short_violation_not_resource_exhausted(hostile: Hostile) -> None:
    rpc = method("TrackEvent")
    key = "k" * 10_000

    outcome = await call_raw(
        hostile.channel(rpc),
        rpc,
        [_track_event(**{key: value_pb2.Value(string_value="v")})],
        hostile.auth(rpc),
    )

    _assert_readable_invalid_argument(outcome)
    assert outcome.error is not None
    [violation] = decode_error(outcome.error).violations
    assert violation.field == "event.data['" + "k" * (MAX_ECHO_CHARS - 1) + "…]"
    assert len(outcome.details) < 300


async def test_violations_are_capped_and_counted(hostile: Hostile) -> None:
    rpc = method("TrackEvents")
    # 1,000 events, each with an empty visitor id and name: 2,000 violations.
    request = profile_service_pb2.TrackEventsRequest(events=[event_pb2.Event()] * 1000)

    outcome = await call_raw(
        hostile.channel(rpc), rpc, [request.SerializeToString()], hostile.auth(rpc)
    )

    _assert_readable_invalid_argument(outcome)
    assert outcome.error is not None
    _, info, violations = decode_error(outcome.error)
    assert 0 < len(violations) <= MAX_LISTED_VIOLATIONS
    assert violations[0].field == "events[0].visitor_id"
    assert info is not None and info.metadata["violationCount"] == "2000"
    assert "(and 1999 more)" in outcome.details


@pytest.mark.parametrize("depth", [150, 100_000])
async def test_too_deeply_nested_request_is_invalid_argument(hostile: Hostile, depth: int) -> None:
    rpc = method("ValidateDefinitions")
    outcome = await call_raw(
        hostile.channel(rpc), rpc, [deeply_nested_definitions(depth)], hostile.auth(rpc)
    )
    _assert_readable_invalid_argument(outcome)
    assert _reason(outcome) == "REQUEST_TOO_DEEP"


async def test_nesting_within_the_limit_is_not_a_crash(hostile: Hostile) -> None:
    rpc = method("ValidateDefinitions")
    outcome = await call_raw(
        hostile.channel(rpc), rpc, [deeply_nested_definitions(90)], hostile.auth(rpc)
    )
    assert outcome.code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), outcome


async def test_definitions_enum_out_of_range_is_refused(hostile: Hostile) -> None:
    rpc = method("ValidateDefinitions")
    request = definition_service_pb2.ValidateDefinitionsRequest()
    attribute = request.definitions.attributes.add(id="a")
    attribute.scope = 77  # type: ignore[assignment]
    outcome = await call_raw(
        hostile.channel(rpc), rpc, [request.SerializeToString()], hostile.auth(rpc)
    )
    _assert_readable_invalid_argument(outcome)
    assert outcome.error is not None
    [violation] = decode_error(outcome.error).violations
    assert violation.field == "definitions.attributes[0].scope"
    assert violation.description == "77 is not a value of crowd.profile.v1.AttributeScope"


async def test_stream_events_answers_a_huge_key_with_a_short_violation(hostile: Hostile) -> None:
    rpc = method("StreamEvents")
    event = event_pb2.Event(
        visitor_id="visitor-1", name="page_view", data={"k" * 10_000: value_pb2.Value()}
    )
    request = profile_service_pb2.StreamEventsRequest(sequence=7, events=[event])
    stub = profile_service_pb2_grpc.ProfileServiceStub(hostile.channel(rpc))

    responses = [r async for r in stub.StreamEvents(iter([request]), metadata=hostile.auth(rpc))]

    [response] = responses
    assert response.sequence == 7
    [violation] = response.violations
    assert violation.field == "events[0].data['" + "k" * (MAX_ECHO_CHARS - 1) + "…]"
