"""Property-based fuzzing of every RPC of both services with malformed and hostile requests.

Each example sends one request to every RPC: random bytes, a truncated or bit-flipped seed, a
seed with an enum set to a number its enum does not define, a huge string or map key, or
nesting beyond protobuf's limit. Properties:

- every answer is OK or a canonical refusal (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
  UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED with a message, UNAVAILABLE), with a
  message that shows no Python internals, and never an ERROR log line;
- a refused request writes nothing: Redis is exactly as before the call;
- afterwards both servers are SERVING, and a known profile and a known queued action are
  unchanged.

``CROWD_FUZZ_EXAMPLES`` sets the number of examples (default 20; each makes 19 calls).
"""

from __future__ import annotations

import logging
import os
from typing import Any, cast

import grpc
import pytest
import pytest_asyncio
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowd.dispatch.v1 import dispatch_service_pb2
from crowd.profile.v1 import event_pb2, profile_service_pb2
from tests.hostile.conftest import Hostile
from tests.hostile.helpers import (
    CANONICAL_CODES,
    PYTHON_LEAKS,
    Method,
    Outcome,
    all_methods,
    call_raw,
    deeply_nested_definitions,
    method,
    nested_groups,
    redis_snapshot,
)
from tests.hostile.seeds import (
    CONNECTOR,
    SEEDS,
    enum_of,
    field_paths,
    is_enum,
    is_string,
    set_at,
)

pytestmark = pytest.mark.asyncio

EXAMPLES = int(os.environ.get("CROWD_FUZZ_EXAMPLES", "20"))
METHODS = all_methods()
KNOWN_VISITOR = "known-visitor-3f9a1c"
KNOWN_ACTION = "known-action-3f9a1c"
# StreamTrace is a live stream that never ends by itself: an accepted one is cut off by this
# deadline (and then counts as accepted). Every other call gets the generous one.
LIVE_STREAM_DEADLINE_S = 0.5
CALL_DEADLINE_S = 60.0
# Over gRPC's default 4 MiB receive limit: RESOURCE_EXHAUSTED before any servicer runs.
HUGE_SIZES = [10_000, 300_000, 5 * 1024 * 1024]


def _descriptor(rpc: Method) -> Descriptor:
    return cast(Descriptor, rpc.request_class.DESCRIPTOR)


def _seed(rpc: Method) -> Message:
    return SEEDS[rpc.name]()


def _undefined(enum: Any) -> st.SearchStrategy[int]:
    return st.integers(-(2**31), 2**31 - 1).filter(lambda n: n not in enum.values_by_number)


@st.composite
def random_bytes(draw: st.DrawFn, rpc: Method) -> bytes:
    return draw(st.binary(max_size=512))


@st.composite
def truncated(draw: st.DrawFn, rpc: Method) -> bytes:
    data = _seed(rpc).SerializeToString()
    return data[: draw(st.integers(0, max(0, len(data) - 1)))]


@st.composite
def bit_flipped(draw: st.DrawFn, rpc: Method) -> bytes:
    data = bytearray(_seed(rpc).SerializeToString())
    if not data:  # an all-defaults seed serialises to nothing: there is no bit to flip
        return draw(random_bytes(rpc))
    for bit in draw(st.lists(st.integers(0, len(data) * 8 - 1), min_size=1, max_size=3)):
        data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


@st.composite
def undefined_enum(draw: st.DrawFn, rpc: Method) -> bytes:
    paths = field_paths(_descriptor(rpc), is_enum)
    if not paths:
        return draw(random_bytes(rpc))
    path = draw(st.sampled_from(paths))
    message = _seed(rpc)
    set_at(message, path, draw(_undefined(enum_of(path))))
    return message.SerializeToString()


@st.composite
def huge(draw: st.DrawFn, rpc: Method) -> bytes:
    size = draw(st.sampled_from(HUGE_SIZES))
    message = _seed(rpc)
    strings = field_paths(_descriptor(rpc), is_string)
    maps = field_paths(_descriptor(rpc), _is_string_keyed_map)
    if not strings and not maps:
        return draw(random_bytes(rpc))
    if maps and (not strings or draw(st.booleans())):
        set_at(message, draw(st.sampled_from(maps)), None, map_key="k" * size)
    else:
        set_at(message, draw(st.sampled_from(strings)), "v" * size)
    return message.SerializeToString()


def _is_string_keyed_map(field: Any) -> bool:
    entry = field.message_type
    return (
        entry is not None
        and entry.GetOptions().map_entry
        and entry.fields_by_name["key"].type == field.TYPE_STRING
    )


@st.composite
def too_deep(draw: st.DrawFn, rpc: Method) -> bytes:
    depth = draw(st.sampled_from([101, 1_000, 100_000]))
    if rpc.name in ("ValidateDefinitions", "PublishDefinitions", "TryDefinitions"):
        return deeply_nested_definitions(depth)
    return nested_groups(depth)


MUTATIONS = [random_bytes, truncated, bit_flipped, undefined_enum, huge, too_deep]


def hostile_request(rpc: Method) -> st.SearchStrategy[bytes]:
    return st.one_of(*(mutation(rpc) for mutation in MUTATIONS))


def _assert_canonical(rpc: Method, payload: bytes, outcome: Outcome) -> None:
    what = f"{rpc.name} with {payload[:64]!r}… ({len(payload)} bytes) -> {outcome}"
    if rpc.name == "StreamTrace" and outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return  # accepted: the live stream was still open at the deadline
    assert outcome.code in CANONICAL_CODES, what
    if outcome.code != grpc.StatusCode.OK:
        assert outcome.details, what
        assert not any(leak in outcome.details for leak in PYTHON_LEAKS), what
    if outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # Only gRPC's own message size limit (no service has quotas): never a trailer overflow.
        assert "larger than max" in outcome.details, what


async def _known_state(hostile: Hostile) -> tuple[bytes, bytes]:
    get_profile, get_action = method("GetProfile"), method("GetAction")
    lookup = event_pb2.VisitorLookup(visitor_id=KNOWN_VISITOR)
    profile_channel: Any = hostile.channel(get_profile)
    action_channel: Any = hostile.channel(get_action)
    profile: bytes = await profile_channel.unary_unary(get_profile.path)(
        profile_service_pb2.GetProfileRequest(visitor=lookup).SerializeToString(),
        metadata=hostile.auth(get_profile),
    )
    action: bytes = await action_channel.unary_unary(get_action.path)(
        dispatch_service_pb2.GetActionRequest(idempotency_key=KNOWN_ACTION).SerializeToString(),
        metadata=hostile.auth(get_action),
    )
    return profile, action


async def _seed_known_state(hostile: Hostile) -> None:
    track, submit = method("TrackEvent"), method("SubmitActions")
    event = event_pb2.Event(visitor_id=KNOWN_VISITOR, name="signup")
    outcome = await call_raw(
        hostile.channel(track),
        track,
        [profile_service_pb2.TrackEventRequest(event=event).SerializeToString()],
        hostile.auth(track),
    )
    assert outcome.code == grpc.StatusCode.OK, outcome
    action = SEEDS["SubmitActions"]().actions[0]  # type: ignore[attr-defined]
    action.idempotency_key = KNOWN_ACTION
    action.connector_id = CONNECTOR
    request = dispatch_service_pb2.SubmitActionsRequest(actions=[action])
    outcome = await call_raw(
        hostile.channel(submit), submit, [request.SerializeToString()], hostile.auth(submit)
    )
    assert outcome.code == grpc.StatusCode.OK, outcome


async def _assert_serving(hostile: Hostile) -> None:
    for channel in hostile.channels.values():
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest_asyncio.fixture
async def known(hostile: Hostile) -> tuple[bytes, bytes]:
    """A profile and a queued action no fuzzed request aims at, as GetProfile/GetAction show."""
    await _seed_known_state(hostile)
    return await _known_state(hostile)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        # The servers are started once for all examples on purpose: state must carry over.
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(data=st.data())
async def test_hostile_requests_get_canonical_refusals_and_write_nothing(
    hostile: Hostile,
    known: tuple[bytes, bytes],
    caplog: pytest.LogCaptureFixture,
    data: st.DataObject,
) -> None:
    caplog.set_level(logging.WARNING)
    for rpc in METHODS:
        payload = data.draw(hostile_request(rpc), label=rpc.name)
        before = await redis_snapshot(hostile.redis)
        live = rpc.name == "StreamTrace"
        outcome = await call_raw(
            hostile.channel(rpc),
            rpc,
            [payload],
            hostile.auth(rpc),
            deadline_s=LIVE_STREAM_DEADLINE_S if live else CALL_DEADLINE_S,
        )
        _assert_canonical(rpc, payload, outcome)
        if outcome.code != grpc.StatusCode.OK and not live:
            assert await redis_snapshot(hostile.redis) == before, f"{rpc.name} wrote"

    await _assert_serving(hostile)
    assert await _known_state(hostile) == known
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_every_rpc_has_a_seed_to_mutate() -> None:
    # A method without a seed would fail inside hypothesis' data generation, far from the cause.
    assert {rpc.name for rpc in METHODS} - set(SEEDS) == set()
