"""Request recorder, HTTP inspection routes and the awaitable wait helpers."""

from __future__ import annotations

import asyncio

import pytest

from braze_sandbox import fingerprint
from tests.braze_sandbox.helpers import (
    KEY,
    TRACEPARENT,
    SandboxFactory,
    attrs,
    event,
    get,
    post,
    track,
)


async def test_requests_are_recorded_with_traceparent_and_redacted_auth(sandbox, http):
    body = {"attributes": [attrs(plan="gold")]}
    await post(http, sandbox, "/users/track", body, headers={"traceparent": TRACEPARENT})
    [recorded] = sandbox.requests
    assert recorded.seq == 1
    assert (recorded.method, recorded.path, recorded.group) == ("POST", "/users/track", "track")
    assert recorded.traceparent == TRACEPARENT
    assert recorded.headers["authorization"] == "[REDACTED]"
    assert recorded.credential == fingerprint(KEY)
    assert recorded.body == body
    assert recorded.status == 201
    assert recorded.response == {"message": "success", "attributes_processed": 1}
    assert recorded.body_bytes > 0


async def test_failed_requests_are_recorded_with_their_body(sandbox, http):
    sandbox.faults.set(down=True)
    body = {"events": [event()]}
    await track(http, sandbox, **body)
    [recorded] = sandbox.requests
    assert recorded.status == 503
    assert recorded.body == body, "retries can be compared with the first attempt"


async def test_requests_over_http_with_filters(sandbox, http):
    await post(
        http,
        sandbox,
        "/users/track",
        {"attributes": [attrs()]},
        headers={"traceparent": TRACEPARENT},
    )
    await post(http, sandbox, "/users/delete", {"external_ids": ["u1"]})
    await track(http, sandbox, attributes=[attrs("u2")])
    everything = await get(http, sandbox, "/_sandbox/requests")
    assert everything.body["count"] == 3
    assert everything.body["requests"][0]["traceparent"] == TRACEPARENT
    assert KEY not in str(everything.body)
    only_track = await get(http, sandbox, "/_sandbox/requests?path=/users/track")
    assert [r["seq"] for r in only_track.body["requests"]] == [1, 3]
    since = await get(http, sandbox, "/_sandbox/requests?since=1&group=identity")
    assert [r["path"] for r in since.body["requests"]] == ["/users/delete"]
    last = await get(http, sandbox, "/_sandbox/requests?limit=1")
    assert [r["seq"] for r in last.body["requests"]] == [3]
    assert (await get(http, sandbox, "/_sandbox/requests?since=x")).status == 400
    async with http.delete(sandbox.url + "/_sandbox/requests") as resp:
        assert resp.status == 200
    assert sandbox.requests == []


async def test_control_routes_are_not_recorded_or_limited(sandbox, http):
    for _ in range(3):
        assert (await get(http, sandbox, "/_sandbox/health")).body == {"status": "ok"}
    assert sandbox.requests == []


async def test_wait_for_requests_wakes_on_arrival(sandbox, http):
    waiter = asyncio.create_task(sandbox.wait_for_requests(2, timeout=5, path="/users/track"))
    await asyncio.sleep(0)  # let the waiter start before any request exists
    assert not waiter.done()
    await track(http, sandbox, attributes=[attrs("a")])
    await post(http, sandbox, "/users/delete", {"external_ids": ["zz"]})
    await asyncio.sleep(0)
    assert not waiter.done(), "only one /users/track request so far"
    await track(http, sandbox, attributes=[attrs("b")])
    found = await waiter
    assert [r.body["attributes"][0]["external_id"] for r in found] == ["a", "b"]


async def test_wait_until_predicate_on_the_store(sandbox, http):
    async def client() -> None:
        for i in range(5):
            await track(http, sandbox, events=[event("u1", name=f"e{i}")])

    task = asyncio.create_task(client())
    await sandbox.wait_until(
        lambda: (u := sandbox.get_user("u1")) is not None and len(u.events) == 5, timeout=5
    )
    await task
    assert [e.name for e in sandbox.get_user("u1").events] == [f"e{i}" for i in range(5)]


async def test_wait_until_times_out(sandbox):
    with pytest.raises(TimeoutError, match=r"not met within 0\.05s"):
        await sandbox.wait_until(lambda: sandbox.get_user("never") is not None, timeout=0.05)
    with pytest.raises(TimeoutError):
        await sandbox.wait_for_requests(1, timeout=0.05)


async def test_wait_until_returns_at_once_when_already_true(sandbox, http):
    await track(http, sandbox, attributes=[attrs()])
    await asyncio.wait_for(sandbox.wait_for_requests(1, timeout=5), 1)


async def test_reset_clears_everything(sandbox, http):
    sandbox.faults.set(latency_ms=1)
    await track(http, sandbox, attributes=[attrs()], events=[event()])
    async with http.post(sandbox.url + "/_sandbox/reset") as resp:
        assert resp.status == 200
    assert sandbox.requests == []
    assert sandbox.store.users == []
    assert sandbox.data_points.total == 0
    assert sandbox.traffic("track").total == 0
    assert sandbox.faults.settings.latency_ms == 0
    # The handlers still count data points after the reset (same counter object).
    await track(http, sandbox, events=[event()])
    assert sandbox.data_points.events == 1


async def test_recorder_keeps_the_newest_requests_but_counts_all(
    make_sandbox: SandboxFactory, http
):
    sandbox = await make_sandbox(max_recorded_requests=3, record_bodies=False)
    for i in range(5):
        await track(http, sandbox, attributes=[attrs(f"u{i}")])
    assert [r.seq for r in sandbox.requests] == [3, 4, 5]
    assert all(r.body is None and r.body_bytes > 0 for r in sandbox.requests)
    assert sandbox.recorder.total == 5
    # Waiting counts every request, not just the ones still kept.
    found = await sandbox.wait_for_requests(5, timeout=1, path="/users/track")
    assert len(found) == 3
    assert len(sandbox.users) == 5
