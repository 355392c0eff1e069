"""service_common.errors: the error classes, Violations, and their google.rpc.Status form."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]

from service_common import (
    ERROR_DOMAIN,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Violations,
)


def _unpack(status: object, message_type: type) -> list[object]:
    out = []
    for detail in status.details:  # type: ignore[attr-defined]
        if detail.Is(message_type.DESCRIPTOR):  # type: ignore[attr-defined]
            msg = message_type()
            detail.Unpack(msg)
            out.append(msg)
    return out


def test_violations_collects_nests_and_raises_once() -> None:
    inner = Violations()
    inner.add("name", "must not be empty")
    inner.add("", "unknown event type")

    outer = Violations()
    outer.add("visitor_id", "is required")
    outer.extend_prefixed("events[2]", inner)
    outer.extend_prefixed("", [FieldViolation("top", "bad")])

    with pytest.raises(InvalidArgument) as caught:
        outer.raise_if_any(reason="EVENT_INVALID")
    assert caught.value.violations == [
        FieldViolation("visitor_id", "is required"),
        FieldViolation("events[2].name", "must not be empty"),
        FieldViolation("events[2]", "unknown event type"),
        FieldViolation("top", "bad"),
    ]
    assert caught.value.reason == "EVENT_INVALID"
    assert caught.value.message == "invalid request: visitor_id: is required (and 3 more)"
    assert len(outer) == 4 and outer


def test_no_violations_raise_nothing() -> None:
    Violations().raise_if_any()


def test_invalid_argument_status_has_error_info_and_one_bad_request() -> None:
    error = InvalidArgument([FieldViolation("a.b", "too long")], metadata={"maxLength": "10"})
    status = error.to_status()
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.message == "invalid request: a.b: too long"
    [info] = _unpack(status, error_details_pb2.ErrorInfo)
    assert (info.domain, info.reason, dict(info.metadata)) == (  # type: ignore[attr-defined]
        ERROR_DOMAIN,
        "INVALID_ARGUMENT",
        {"maxLength": "10"},
    )
    [bad] = _unpack(status, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [  # type: ignore[attr-defined]
        ("a.b", "too long")
    ]


def test_retry_info_on_resource_exhausted() -> None:
    status = ResourceExhausted(
        "rate limited", reason="RATE_LIMITED", retry_delay=dt.timedelta(seconds=1.5)
    ).to_status()
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    [retry] = _unpack(status, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToTimedelta() == dt.timedelta(seconds=1.5)  # type: ignore[attr-defined]


@pytest.mark.parametrize("reason", ["lower_case", "TRAILING_", "A", "X" * 64, "HAS SPACE"])
def test_reason_must_be_upper_snake(reason: str) -> None:
    with pytest.raises(ValueError, match="UPPER_SNAKE"):
        NotFound("missing", reason=reason)


def test_metadata_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="metadata key"):
        NotFound("missing", metadata={"Visitor": "v1"})
    assert NotFound("missing", metadata={"visitorId": "v1"}).metadata == {"visitorId": "v1"}
