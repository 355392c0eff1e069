"""The pure parts of the Collect ingest: the token bucket (injected clock) and the mapping
of parameters onto crowd event fields and data types."""

from __future__ import annotations

import pytest

from profile_service.collect.errors import CollectError
from profile_service.collect.limits import RateLimiter
from profile_service.collect.mapping import to_event


def test_token_bucket_refills_with_the_clock() -> None:
    now = [100.0]
    limiter = RateLimiter(2.0, clock=lambda: now[0])
    assert [limiter.allow("ds") for _ in range(3)] == [True, True, False]
    assert limiter.allow("other")
    now[0] += 0.5  # one token back
    assert [limiter.allow("ds"), limiter.allow("ds")] == [True, False]


def test_reserved_parameters_fill_event_fields() -> None:
    event = to_event(
        {
            "tealium_account": "a",
            "tealium_profile": "main",
            "tealium_event": "purchase",
            "tealium_firstparty_visitor_id": "first",
            "tealium_thirdparty_visitor_id": "third",
            "tealium_timestamp_epoch": "1700000000.5",
            "tealium_trace_id": "trace-1",
            "platform": "web",
        }
    )
    assert (event.name, event.visitor_id, event.trace_id) == ("purchase", "first", "trace-1")
    assert event.time.ToMilliseconds() == 1_700_000_000_500
    assert event.platform == "web"
    assert set(event.data) == {"platform"}


def test_other_parameters_keep_their_json_types() -> None:
    event = to_event(
        {
            "s": "x",
            "n": 2,
            "f": 1.5,
            "b": True,
            "none": None,
            "ss": ["a", "b"],
            "ns": [1, 2.5],
            "bs": [True],
        }
    )
    kinds = {key: value.WhichOneof("kind") for key, value in event.data.items()}
    assert kinds == {
        "s": "string_value",
        "n": "number_value",
        "f": "number_value",
        "b": "bool_value",
        "none": "null_value",
        "ss": "string_list",
        "ns": "number_list",
        "bs": "bool_list",
    }
    assert list(event.data["ns"].number_list.values) == [1.0, 2.5]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"mixed": [1, "a"]}, "mixed: an array must hold only strings, numbers or booleans"),
        ({"tealium_timestamp_epoch": "soon"}, "tealium_timestamp_epoch must be epoch seconds"),
        ({"a.b": 1}, "key contains a period: a.b"),
        ({"bad\r\nkey.x": 1}, "key contains a period: bad??key.x"),
    ],
)
def test_bad_parameters(params: dict[str, object], error: str) -> None:
    with pytest.raises(CollectError) as refused:
        to_event(params)
    assert (refused.value.status, refused.value.message) == (400, error)
