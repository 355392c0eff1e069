"""Pieces that keep hostile input harmless: the generic enum check, the caps on error details,
and the log throttle. (End to end, over real servers, in tests/hostile.)"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any, cast

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2
from crowd.profile.v1 import event_pb2, profile_service_pb2
from service_common.enum_check import undefined_enum_values
from service_common.errors import (
    MAX_ECHO_CHARS,
    MAX_LISTED_VIOLATIONS,
    FieldViolation,
    InvalidArgument,
    NotFound,
    compact_violation,
    shorten,
)
from service_common.log_throttle import LogThrottle

# gRPC's default limit on the size of received metadata (the trailer carries the status).
METADATA_LIMIT_BYTES = 16 * 1024


def _null(number: int) -> Any:
    return cast(Any, number)


def test_enum_check_finds_undefined_values_at_any_depth() -> None:
    request = profile_service_pb2.TrackEventsRequest(
        events=[
            event_pb2.Event(data={"ok": value_pb2.Value(null_value=_null(0))}),
            event_pb2.Event(data={"bad": value_pb2.Value(null_value=_null(7))}),
        ]
    )
    assert undefined_enum_values(request) == [
        FieldViolation(
            "events[1].data['bad'].null_value", "7 is not a value of google.protobuf.NullValue"
        )
    ]


def test_enum_check_walks_recursive_struct_and_list_values() -> None:
    inner = struct_pb2.Value(null_value=_null(-3))
    value = struct_pb2.Value(
        struct_value=struct_pb2.Struct(
            fields={"list": struct_pb2.Value(list_value=struct_pb2.ListValue(values=[inner]))}
        )
    )
    [violation] = undefined_enum_values(value)
    assert violation.field == "struct_value.fields['list'].list_value.values[0].null_value"


def test_enum_check_accepts_defined_values_and_reports_every_bad_one() -> None:
    good = dispatch_service_pb2.SubmitActionsRequest(
        actions=[
            action_pb2.Action(
                update_membership=action_pb2.UpdateMembership(mode=action_pb2.MEMBERSHIP_MODE_BOTH)
            )
        ]
    )
    assert undefined_enum_values(good) == []
    bad = dispatch_service_pb2.SubmitActionsRequest(
        actions=[
            action_pb2.Action(update_membership=action_pb2.UpdateMembership(mode=_null(9)))
            for _ in range(3)
        ]
    )
    assert [v.field for v in undefined_enum_values(bad)] == [
        f"actions[{i}].update_membership.mode" for i in range(3)
    ]


def test_shorten_cuts_with_an_ellipsis() -> None:
    assert shorten("abc") == "abc"
    assert shorten("x" * 100) == "x" * MAX_ECHO_CHARS + "…"


def test_compact_violation_cuts_each_echoed_part_on_its_own() -> None:
    violation = FieldViolation(
        "events[3].data['" + "k" * 10_000 + "']", "value '" + "v" * 500 + "' is too long"
    )
    compact = compact_violation(violation)
    assert compact.field == "events[3].data['" + "k" * (MAX_ECHO_CHARS - 1) + "…]"
    assert compact.description == "value '" + "v" * (MAX_ECHO_CHARS - 1) + "… is too long"
    short = FieldViolation("events[3].name", "is required")
    assert compact_violation(short) is short


def _trailer_bytes(error: InvalidArgument | NotFound) -> int:
    """Bytes the status takes in the trailer: grpc-message (percent-encoded) and
    grpc-status-details-bin (base64)."""
    status = error.to_status()
    message = urllib.parse.quote(status.message, safe=" ")
    return len(message) + len(status.SerializeToString()) * 4 // 3 + 64


@pytest.mark.parametrize("char", ["k", "\U0001f600"])  # 1 and 4 bytes in UTF-8
def test_error_details_stay_far_below_the_metadata_limit(char: str) -> None:
    violations = [
        FieldViolation(f"events[{i}].data['{char * 5000}']", char * 5000) for i in range(5000)
    ]
    error = InvalidArgument(violations)
    assert _trailer_bytes(error) < METADATA_LIMIT_BYTES * 3 // 4

    status = error.to_status()
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    status.details[0].Unpack(info)
    status.details[1].Unpack(bad_request)
    assert 0 < len(bad_request.field_violations) <= MAX_LISTED_VIOLATIONS
    assert info.metadata["violationCount"] == "5000"
    assert status.message.endswith("…") or "(and 4999 more)" in status.message
    # The server keeps every violation (for its own use); only what is sent is cut.
    assert len(error.violations) == 5000


def test_at_most_the_first_hundred_violations_are_listed() -> None:
    error = InvalidArgument([FieldViolation(f"f{i}", "is required") for i in range(250)])
    status = error.to_status()
    bad_request = error_details_pb2.BadRequest()
    status.details[1].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == [f"f{i}" for i in range(100)]
    assert status.message == "invalid request: f0: is required (and 249 more)"


def test_messages_and_metadata_echoing_input_are_cut() -> None:
    error = NotFound("no profile " + "x" * 20_000, metadata={"visitorId": "x" * 20_000})
    assert _trailer_bytes(error) < 2048


def test_log_throttle_logs_once_per_cause_per_interval_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    throttle = LogThrottle(logging.getLogger("test.throttle"), 60.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="test.throttle")

    assert throttle.warning("a", "refused %s", "a")
    assert not throttle.warning("a", "refused %s", "a")
    assert not throttle.warning("a", "refused %s", "a")
    assert throttle.warning("b", "refused %s", "b")
    now[0] += 60.0
    assert throttle.warning("a", "refused %s", "a")

    assert [r.getMessage() for r in caplog.records] == [
        "refused a",
        "refused b",
        "refused a (2 more like it since the last such line)",
    ]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records)
