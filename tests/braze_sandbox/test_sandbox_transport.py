"""Auth, content type, body size, JSON syntax and routing of the Braze sandbox."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from braze_sandbox import BrazeSandbox
from tests.braze_sandbox.helpers import KEY, TRACK_ONLY_KEY, SandboxFactory, attrs, post, track

VALID = {"attributes": [attrs(plan="gold")]}


async def test_valid_key_with_permission_is_accepted(sandbox, http):
    reply = await track(http, sandbox, **VALID)
    assert reply.status == 201
    assert reply.body == {"message": "success", "attributes_processed": 1}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer wrong-key", f"Basic {KEY}", KEY, f'Bearer "{KEY}"'],
)
async def test_missing_or_invalid_key_is_401(sandbox, http, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = await post(http, sandbox, "/users/track", VALID, key=None, headers=headers)
    assert reply.status == 401
    assert reply.body == {"message": "Invalid API key"}
    assert sandbox.store.users == []


async def test_key_without_permission_is_403_access_denied(sandbox, http):
    reply = await post(http, sandbox, "/users/delete", {"external_ids": ["u1"]}, key=TRACK_ONLY_KEY)
    assert reply.status == 403
    assert reply.body == {"message": "Access Denied"}
    for path in ("/users/identify", "/users/export/ids"):
        assert (await post(http, sandbox, path, {}, key=TRACK_ONLY_KEY)).status == 403
    # The same key works where it has the permission.
    assert (await track(http, sandbox, **VALID)).status == 201


async def test_keys_never_appear_in_responses_logs_or_recordings(sandbox, http, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "super-secret-wrong-key-42"
    await post(http, sandbox, "/users/track", VALID, key=wrong)
    await post(http, sandbox, "/users/track", VALID, key=KEY)
    await post(http, sandbox, "/users/delete", {"external_ids": ["x"]}, key=TRACK_ONLY_KEY)
    recorded = json.dumps([r.to_dict() for r in sandbox.requests])
    for secret in (wrong, KEY, TRACK_ONLY_KEY):
        assert secret not in caplog.text
        assert secret not in recorded
    assert "[REDACTED]" in recorded
    assert caplog.records, "requests should be logged"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_missing_or_wrong_content_type_is_415(sandbox, http, content_type):
    reply = await post(
        http, sandbox, "/users/track", data=json.dumps(VALID).encode(), content_type=content_type
    )
    assert reply.status == 415
    assert reply.body == {"message": "Unsupported Media Type"}
    assert sandbox.get_user("u1") is None


async def test_content_type_with_charset_is_accepted(sandbox, http):
    reply = await post(
        http,
        sandbox,
        "/users/track",
        data=json.dumps(VALID).encode(),
        content_type="application/json; charset=utf-8",
    )
    assert reply.status == 201


async def test_body_over_limit_is_413(make_sandbox: SandboxFactory, http):
    sandbox = await make_sandbox(max_body_bytes=2048)
    small = {"attributes": [attrs(note="x" * 200)]}
    assert (await track(http, sandbox, **small)).status == 201
    big = json.dumps({"attributes": [attrs(note="x" * 3000)]}).encode()
    reply = await post(http, sandbox, "/users/track", data=big)
    assert reply.status == 413
    u1 = sandbox.get_user("u1")
    assert u1 is not None
    assert u1.attributes["note"] == "x" * 200


async def test_default_limit_is_4_mb(sandbox: BrazeSandbox, http: aiohttp.ClientSession):
    padding = b" " * (4 * 1024 * 1024)  # valid JSON whitespace pushes the body over 4 MB
    reply = await post(http, sandbox, "/users/track", data=json.dumps(VALID).encode() + padding)
    assert reply.status == 413
    just_under = json.dumps(VALID).encode() + b" " * (4 * 1024 * 1024 - 200)
    assert (await post(http, sandbox, "/users/track", data=just_under)).status == 201


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"attributes": [],}', b"{'attributes': []}", b'{"a": NaN}', b"\xff\xfe"],
)
async def test_invalid_json_is_400(sandbox, http, raw):
    reply = await post(http, sandbox, "/users/track", data=raw)
    assert reply.status == 400
    assert reply.body == {"message": "Bad syntax."}


async def test_trailing_slash_is_403_and_unknown_path_is_404(sandbox, http):
    reply = await post(http, sandbox, "/users/track/", VALID)
    assert reply.status == 403
    assert reply.body == {"message": "Access Denied"}
    reply = await post(http, sandbox, "/partners/crowd/cohorts/", {})
    assert reply.status == 403
    reply = await post(http, sandbox, "/users/nope", VALID)
    assert reply.status == 404
    assert reply.body == {"message": "Invalid URL."}
    # Misrouted calls are recorded too, so a client with a wrong URL shows up in assertions.
    assert [r.path for r in sandbox.requests] == [
        "/users/track/",
        "/partners/crowd/cohorts/",
        "/users/nope",
    ]


async def test_get_on_api_route_is_405(sandbox, http):
    async with http.get(sandbox.url + "/users/track") as resp:
        assert resp.status == 405


async def test_sandbox_serves_on_the_url_it_reports(make_sandbox: SandboxFactory, http):
    first = await make_sandbox()
    second = await make_sandbox()
    assert first.url != second.url
    assert first.port > 0
    await track(http, first, **VALID)
    assert first.get_user("u1") is not None
    assert second.get_user("u1") is None
    await second.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"http://127.0.0.1:{second.port}/_sandbox/health"):
            pass
