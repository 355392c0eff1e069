"""Rate limiting: headers on every response, 429 with Retry-After, windows, traffic stats."""

from __future__ import annotations

import asyncio
import math

from braze_sandbox import RateLimit
from tests.braze_sandbox.helpers import FakeClock, SandboxFactory, attrs, get, post, track

ONE = {"attributes": [attrs(a=1)]}


async def test_headers_on_every_response(make_sandbox: SandboxFactory, http):
    clock = FakeClock()
    sandbox = await make_sandbox(rate_limits={"track": RateLimit(5, 3)}, clock=clock)
    first = await track(http, sandbox, **ONE)
    second = await post(http, sandbox, "/users/track", ONE, key="wrong")  # 401s count too
    assert second.status == 401
    assert first.headers["X-RateLimit-Limit"] == "5"
    assert first.headers["X-RateLimit-Remaining"] == "4"
    assert second.headers["X-RateLimit-Remaining"] == "3"
    # Default reset style: UTC epoch seconds of the window end.
    assert int(first.headers["X-RateLimit-Reset"]) == math.ceil(clock.now + 3)


async def test_over_the_limit_is_429_with_retry_after(make_sandbox: SandboxFactory, http):
    clock = FakeClock()
    sandbox = await make_sandbox(rate_limits={"track": RateLimit(3, 10)}, clock=clock)
    statuses = [(await track(http, sandbox, **ONE)).status for _ in range(3)]
    assert statuses == [201, 201, 201]
    clock.advance(2.5)
    limited = await track(http, sandbox, **ONE)
    assert limited.status == 429
    assert limited.body == {"message": "Rate Limited"}
    assert limited.headers["X-Ratelimit-Retry-After"] == "8"  # ceil(10 - 2.5)
    assert limited.headers["Retry-After"] == "8"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert sandbox.users["u1"].attributes["a"] == 1

    clock.advance(7.5)  # the window ends: the budget is back
    again = await track(http, sandbox, **ONE)
    assert again.status == 201
    assert again.headers["X-RateLimit-Remaining"] == "2"


async def test_groups_are_limited_separately_and_identity_is_shared(
    make_sandbox: SandboxFactory, http
):
    sandbox = await make_sandbox(
        rate_limits={"track": RateLimit(1, 60), "identity": RateLimit(2, 60)}
    )
    assert (await track(http, sandbox, **ONE)).status == 201
    assert (await track(http, sandbox, **ONE)).status == 429
    # /users/delete and /users/identify share one budget.
    assert (await post(http, sandbox, "/users/delete", {"external_ids": ["x"]})).status == 201
    identify = {
        "aliases_to_identify": [
            {"external_id": "u9", "user_alias": {"alias_name": "a", "alias_label": "l"}}
        ]
    }
    assert (await post(http, sandbox, "/users/identify", identify)).status == 201
    assert (await post(http, sandbox, "/users/identify", identify)).status == 429
    assert (await post(http, sandbox, "/users/export/ids", {"external_ids": ["u1"]})).status == 201


async def test_unlimited_group_sends_no_headers(make_sandbox: SandboxFactory, http):
    sandbox = await make_sandbox(rate_limits={"track": None})
    reply = await track(http, sandbox, **ONE)
    assert reply.status == 201
    assert "X-RateLimit-Limit" not in reply.headers


async def test_reset_header_in_seconds_remaining(make_sandbox: SandboxFactory, http):
    clock = FakeClock()
    sandbox = await make_sandbox(
        rate_limits={"track": RateLimit(10, 60)}, reset_header="seconds", clock=clock
    )
    await track(http, sandbox, **ONE)
    clock.advance(15)
    reply = await track(http, sandbox, **ONE)
    assert reply.headers["X-RateLimit-Reset"] == "45"


async def test_clock_aligned_windows(make_sandbox: SandboxFactory, http):
    clock = FakeClock()
    clock.now = 1_800_000_001.0  # 1 s into a 3 s window that started at 1_800_000_000 (÷3)
    sandbox = await make_sandbox(
        rate_limits={"track": RateLimit(2, 3)}, window_alignment="clock", clock=clock
    )
    reply = await track(http, sandbox, **ONE)
    assert reply.headers["X-RateLimit-Reset"] == "1800000003"
    await track(http, sandbox, **ONE)
    assert (await track(http, sandbox, **ONE)).status == 429
    clock.now = 1_800_000_003.0  # next clock window
    assert (await track(http, sandbox, **ONE)).status == 201


async def test_max_requests_in_window_tracks_bursts(make_sandbox: SandboxFactory, http):
    clock = FakeClock()
    sandbox = await make_sandbox(rate_limits={"track": RateLimit(4, 3)}, clock=clock)
    for _ in range(3):
        await track(http, sandbox, **ONE)
    clock.advance(2.9)
    await track(http, sandbox, **ONE)
    clock.advance(0.2)  # a new fixed window starts at 3.0 s
    for _ in range(3):
        await track(http, sandbox, **ONE)
    assert sandbox.max_requests_in_window("track") == 4
    # Any 3 s interval: the last one of the first window plus the three of the second.
    assert sandbox.max_requests_in_window("track", sliding=True) == 4
    for _ in range(2):
        await track(http, sandbox, **ONE)
    traffic = sandbox.traffic("track")
    assert (traffic.total, traffic.rejected, traffic.max_in_window) == (9, 1, 5)
    assert sandbox.max_requests_in_window("track", sliding=True) == 6
    stats = await get(http, sandbox, "/_sandbox/stats")
    assert stats.body["traffic"]["track"]["max_in_window"] == 5
    assert stats.body["status_counts"] == {"201": 8, "429": 1}


async def test_concurrent_burst_never_exceeds_the_limit(make_sandbox: SandboxFactory, http):
    sandbox = await make_sandbox(rate_limits={"track": RateLimit(10, 60)})
    replies = await asyncio.gather(*(track(http, sandbox, **ONE) for _ in range(25)))
    statuses = sorted(r.status for r in replies)
    assert statuses.count(201) == 10
    assert statuses.count(429) == 15
    assert sandbox.max_requests_in_window("track") == 25
