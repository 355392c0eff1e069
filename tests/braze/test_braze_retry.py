"""Retry timing: full-jitter backoff, the waits Braze's headers name, give-up rules."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from dispatch_service.braze import backoff_delay, next_retry_delay, retry_after_from_headers
from tests.braze.conftest import connector_for

NOW = 1_750_000_000.0


def test_backoff_grows_exponentially_with_full_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (8, 60.0), (30, 60.0)]:
        delays = [backoff_delay(attempt, rng=rng) for _ in range(500)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # jitter spans the whole range
        assert min(delays) < 0.2 * ceiling


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Ratelimit-Retry-After": "7", "Retry-After": "3"}, 7.0),
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"X-RateLimit-Reset": str(int(NOW + 12))}, 12.0),  # epoch seconds
        ({"X-RateLimit-Reset": "12"}, 12.0),  # seconds left
        ({"X-Ratelimit-Retry-After": "999999"}, 3600.0),  # capped
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_from_headers(headers: dict[str, str], expected: float | None) -> None:
    wait = retry_after_from_headers(headers, NOW)
    assert wait == pytest.approx(expected, abs=1.0) if expected is not None else wait is None


def test_next_retry_delay_honours_attempts_age_and_braze_wait() -> None:
    connector = connector_for("http://127.0.0.1:9", max_attempts=3, max_age_s=100)
    assert next_retry_delay(connector, attempts=1, age_s=0, retry_after_s=7.0) == 7.0
    delay = next_retry_delay(connector, attempts=2, age_s=0, retry_after_s=None)
    assert delay is not None and 0 <= delay <= 1.0
    assert next_retry_delay(connector, attempts=3, age_s=0, retry_after_s=None) is None
    assert next_retry_delay(connector, attempts=1, age_s=95, retry_after_s=7.0) is None


def test_outcomes_map_to_action_states() -> None:
    from crowd.dispatch.v1.action_pb2 import (
        ACTION_STATE_ACCEPTED,
        ACTION_STATE_DELIVERED,
        ACTION_STATE_FAILED,
        ACTION_STATE_SKIPPED,
    )
    from dispatch_service.braze import Outcome

    assert Outcome.DELIVERED.action_state == ACTION_STATE_DELIVERED
    assert Outcome.SKIPPED.action_state == ACTION_STATE_SKIPPED
    assert Outcome.FAILED.action_state == ACTION_STATE_FAILED
    assert Outcome.RETRY.action_state == ACTION_STATE_ACCEPTED
    assert [o.final for o in Outcome] == [True, True, False, True]
