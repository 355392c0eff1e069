"""Fault injection: 5xx rate, down mode, forced 429 windows, latency, forced minor errors."""

from __future__ import annotations

import time

import pytest

from braze_sandbox import FaultSettings
from tests.braze_sandbox.helpers import FakeClock, SandboxFactory, attrs, event, get, post, track

ONE = {"attributes": [attrs(a=1)]}


async def statuses(http, sandbox, n: int) -> list[int]:
    return [(await track(http, sandbox, **ONE)).status for _ in range(n)]


async def test_fail_rate_is_deterministic_per_seed(make_sandbox: SandboxFactory, http):
    first = await make_sandbox(faults=FaultSettings(fail_rate=0.5, seed=7))
    second = await make_sandbox(faults=FaultSettings(fail_rate=0.5, seed=7))
    a = await statuses(http, first, 40)
    b = await statuses(http, second, 40)
    assert a == b
    assert set(a) == {201, 503}
    assert 8 <= a.count(503) <= 32
    first.faults.set(seed=7)  # re-seeding replays the same sequence
    assert await statuses(http, first, 40) == a


async def test_fail_rate_status_and_groups(sandbox, http):
    sandbox.faults.set(fail_rate=1.0, fail_status=500, fail_groups=["identity"])
    assert (await track(http, sandbox, **ONE)).status == 201
    reply = await post(http, sandbox, "/users/delete", {"external_ids": ["u1"]})
    assert reply.status == 500
    assert reply.body == {"message": "Internal Server Error"}
    assert sandbox.get_user("u1") is not None, "an injected failure applies nothing"
    sandbox.faults.set(all_groups=True, fail_status=502)
    assert await statuses(http, sandbox, 2) == [502, 502]
    sandbox.faults.set(fail_rate=0.0)
    assert await statuses(http, sandbox, 1) == [201]


async def test_down_mode_in_process_and_over_http(sandbox, http):
    sandbox.faults.set(down=True)
    reply = await track(http, sandbox, **ONE)
    assert reply.status == 503
    assert reply.body == {"message": "Service Unavailable"}
    assert "X-RateLimit-Limit" in reply.headers
    assert sandbox.get_user("u1") is None
    # The control API keeps working while the API is down.
    async with http.post(sandbox.url + "/_sandbox/faults", json={"down": False}) as resp:
        assert resp.status == 200
        assert (await resp.json())["down"] is False
    assert await statuses(http, sandbox, 1) == [201]
    async with http.post(sandbox.url + "/_sandbox/faults", json={"down": True}) as resp:
        assert resp.status == 200
    assert await statuses(http, sandbox, 1) == [503]


async def test_start_in_down_mode_and_reset_restores_start_settings(
    make_sandbox: SandboxFactory, http
):
    sandbox = await make_sandbox(faults=FaultSettings(down=True))
    assert await statuses(http, sandbox, 1) == [503]
    sandbox.faults.set(down=False)
    assert await statuses(http, sandbox, 1) == [201]
    sandbox.faults.reset()
    assert await statuses(http, sandbox, 1) == [503]


async def test_forced_429_for_a_number_of_requests(sandbox, http):
    sandbox.faults.force_rate_limit(30, requests=2)
    first = await track(http, sandbox, **ONE)
    assert first.status == 429
    assert first.headers["Retry-After"] == "30"
    assert first.headers["X-Ratelimit-Retry-After"] == "30"
    assert await statuses(http, sandbox, 2) == [429, 201]
    assert sandbox.faults.forced_rate_limit is None


async def test_forced_429_for_a_number_of_seconds(make_sandbox: SandboxFactory, http):
    clock = FakeClock()
    sandbox = await make_sandbox(clock=clock)
    sandbox.faults.force_rate_limit(5, seconds=10, groups=["track"])
    assert await statuses(http, sandbox, 3) == [429, 429, 429]
    assert (await post(http, sandbox, "/users/export/ids", {"external_ids": ["u"]})).status == 201
    clock.advance(9.9)
    assert await statuses(http, sandbox, 1) == [429]
    clock.advance(0.1)
    assert await statuses(http, sandbox, 1) == [201]


async def test_forced_429_over_http(sandbox, http):
    body = {"force_rate_limit": {"retry_after": 12, "requests": 1}}
    async with http.post(sandbox.url + "/_sandbox/faults", json=body) as resp:
        assert resp.status == 200
        state = await resp.json()
    assert state["force_rate_limit"]["retry_after"] == 12
    reply = await track(http, sandbox, **ONE)
    assert (reply.status, reply.headers["Retry-After"]) == (429, "12")
    assert await statuses(http, sandbox, 1) == [201]


async def test_added_latency(sandbox, http):
    sandbox.faults.set(latency_ms=80)
    started = time.monotonic()
    assert await statuses(http, sandbox, 1) == [201]
    assert time.monotonic() - started >= 0.08
    assert sandbox.requests[-1].duration_ms >= 80


async def test_forced_minor_errors(sandbox, http):
    sandbox.faults.add_minor_error("u2", "simulated failure", input_array="events", times=1)
    body = {"attributes": [attrs("u2", a=1)], "events": [event("u1"), event("u2")]}
    reply = await track(http, sandbox, **body)
    assert reply.status == 201
    assert reply.body["errors"] == [
        {"type": "simulated failure", "input_array": "events", "index": 1}
    ]
    assert sandbox.get_user("u2").events == []
    # times=1: the next attempt succeeds, as a retried object would.
    again = await track(http, sandbox, **body)
    assert "errors" not in again.body
    assert len(sandbox.get_user("u2").events) == 1


async def test_forced_minor_errors_over_http_and_clear(sandbox, http):
    body = {"minor_errors": [{"external_id": "u1", "type": "boom"}]}
    async with http.post(sandbox.url + "/_sandbox/faults", json=body) as resp:
        assert resp.status == 200
    reply = await track(http, sandbox, **ONE)
    assert reply.status == 400, "the only object failed"
    assert reply.body["errors"][0]["type"] == "boom"
    async with http.post(sandbox.url + "/_sandbox/faults", json={"clear_minor_errors": True}):
        pass
    assert await statuses(http, sandbox, 1) == [201]


@pytest.mark.parametrize(
    "body",
    [
        {"fail_rate": 2},
        {"fail_rate": "high"},
        {"fail_status": 404},
        {"down": "yes"},
        {"unknown": 1},
        {"minor_errors": [{"type": "x"}]},
        {"minor_errors": [{"external_id": "u1", "input_array": "nope"}]},
        {"force_rate_limit": {"retry_after": 5, "requests": 0}},
        [],
        {"down": True, "fail_rate": 0.5, "minor_errors": [{"type": "no external_id"}]},
    ],
)
async def test_bad_fault_requests_are_400(sandbox, http, body):
    async with http.post(sandbox.url + "/_sandbox/faults", json=body) as resp:
        assert resp.status == 400
    faults = await get(http, sandbox, "/_sandbox/faults")
    # Nothing of a rejected body is applied, not even its valid fields.
    assert faults.body["fail_rate"] == 0.0
    assert faults.body["down"] is False
    assert faults.body["minor_errors"] == []


async def test_delete_faults_resets(sandbox, http):
    sandbox.faults.set(down=True, latency_ms=5)
    async with http.delete(sandbox.url + "/_sandbox/faults") as resp:
        assert (await resp.json())["down"] is False
    assert await statuses(http, sandbox, 1) == [201]
