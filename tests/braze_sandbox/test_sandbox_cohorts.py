"""Partner cohort import endpoints."""

from __future__ import annotations

from typing import Any

import pytest

from tests.braze_sandbox.helpers import (
    CLIENT_SECRET,
    PARTNER,
    PARTNER_KEY,
    SandboxFactory,
    attrs,
    get,
    post,
    track,
)

COHORTS = f"/partners/{PARTNER}/cohorts"
MEMBERS = f"/partners/{PARTNER}/cohorts/users"
AUTH = {"partner_api_key": PARTNER_KEY, "client_secret": CLIENT_SECRET}


def changes(*items: dict[str, Any], cohort_id: str = "c1") -> dict[str, Any]:
    return {**AUTH, "cohort_id": cohort_id, "cohort_changes": list(items)}


async def partner_post(http, sandbox, path: str, body: Any):
    # Partner endpoints carry their credentials in the body, not in a header.
    return await post(http, sandbox, path, body, key=None)


async def test_create_and_rename_cohort(sandbox, http):
    body = {**AUTH, "cohort_id": "c1", "name": "VIPs", "created_at": "2021-01-21T19:20:30+05:00"}
    reply = await partner_post(http, sandbox, COHORTS, body)
    assert reply.status == 201
    assert reply.body == {"message": "success"}
    await partner_post(http, sandbox, COHORTS, {**body, "name": "Big spenders"})
    cohort = sandbox.cohort(PARTNER, "c1")
    assert cohort is not None and cohort.name == "Big spenders"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cohort_id": ""}, "cohort_id must be a valid string"),
        ({"cohort_id": 7}, "cohort_id must be a valid string"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"created_at": "yesterday"}, "created_at must be a valid time as an ISO-8601 string"),
    ],
)
async def test_cohort_validation_errors(sandbox, http, change, message):
    body = {**AUTH, "cohort_id": "c1", "name": "VIPs", "created_at": "2021-01-21T19:20:30Z"}
    reply = await partner_post(http, sandbox, COHORTS, {**body, **change})
    assert reply.status == 400
    assert reply.body == {"message": message}


@pytest.mark.parametrize(
    ("path", "auth", "message"),
    [
        (MEMBERS, {"client_secret": CLIENT_SECRET}, "Invalid Partner API key"),
        (MEMBERS, {**AUTH, "partner_api_key": "nope"}, "Invalid Partner API key"),
        ("/partners/other/cohorts/users", AUTH, "Invalid Partner API key"),
        (MEMBERS, {"partner_api_key": PARTNER_KEY}, "Invalid client secret"),
        (MEMBERS, {**AUTH, "client_secret": "nope"}, "Invalid client secret"),
    ],
)
async def test_cohort_auth_errors(sandbox, http, path, auth, message):
    body = {**auth, "cohort_id": "c1", "cohort_changes": [{"user_ids": ["u1"]}]}
    reply = await partner_post(http, sandbox, path, body)
    assert reply.status == 401
    assert reply.body == {"message": message}
    for secret in ("nope", CLIENT_SECRET, PARTNER_KEY):
        assert secret not in str(reply.body)


async def test_partner_not_enabled_for_secret(make_sandbox: SandboxFactory, http):
    sandbox = await make_sandbox(
        partners={"crowd": "k1", "other": "k2"},
        client_secrets={"s-crowd": frozenset({"crowd"})},
    )
    ok = {
        "partner_api_key": "k1",
        "client_secret": "s-crowd",
        "cohort_id": "c1",
        "cohort_changes": [{"user_ids": ["u1"]}],
    }
    assert (await partner_post(http, sandbox, MEMBERS, ok)).status == 201
    denied = {**ok, "partner_api_key": "k2"}
    reply = await partner_post(http, sandbox, "/partners/other/cohorts/users", denied)
    assert reply.status == 401
    assert reply.body["message"].startswith("Partner not enabled for client with client secret")
    assert "s-crowd" not in reply.body["message"]


async def test_membership_only_for_existing_users(sandbox, http):
    alias = {"alias_name": "anon-1", "alias_label": "crowd_visitor"}
    await track(
        http,
        sandbox,
        attributes=[
            attrs("u1"),
            attrs("u2"),
            {"user_alias": alias, "_update_existing_only": False},
        ],
    )
    reply = await partner_post(
        http,
        sandbox,
        MEMBERS,
        changes({"user_ids": ["u1", "u2", "ghost"], "aliases": [alias], "device_ids": ["d1"]}),
    )
    assert reply.status == 201
    alias_user = sandbox.get_user_by_alias("anon-1", "crowd_visitor")
    assert alias_user is not None
    assert sandbox.cohort_members(PARTNER, "c1") == {"u1", "u2", alias_user.braze_id}
    assert sandbox.get_user("ghost") is None, "cohort import never creates users"
    assert sandbox.data_points.cohort_assignments == 3

    await partner_post(http, sandbox, MEMBERS, changes({"user_ids": ["u2"], "should_remove": True}))
    assert sandbox.cohort_members(PARTNER, "c1") == {"u1", alias_user.braze_id}
    assert sandbox.get_user("u2").cohorts == set()
    assert sandbox.get_user("u1").cohorts == {(PARTNER, "c1")}
    over_http = await get(http, sandbox, f"/_sandbox/cohorts/{PARTNER}/c1")
    assert {m["external_id"] for m in over_http.body["members"]} == {"u1", None}


async def test_deleted_users_leave_their_cohorts(sandbox, http):
    await track(http, sandbox, attributes=[attrs("u1")])
    await partner_post(http, sandbox, MEMBERS, changes({"user_ids": ["u1"]}))
    assert sandbox.cohort_members(PARTNER, "c1") == {"u1"}
    await post(http, sandbox, "/users/delete", {"external_ids": ["u1"]})
    assert sandbox.cohort_members(PARTNER, "c1") == set()


async def test_1000_ids_per_request(sandbox, http):
    ids = [f"u{i}" for i in range(1000)]
    ok = await partner_post(http, sandbox, MEMBERS, changes({"user_ids": ids}))
    assert ok.status == 201
    reply = await partner_post(
        http, sandbox, MEMBERS, changes({"user_ids": ids[:600]}, {"device_ids": [*ids[600:], "x"]})
    )
    assert reply.status == 400
    assert reply.body == {
        "message": "Only 1,000 user_ids, device_ids, and aliases are allowed per request"
    }


@pytest.mark.parametrize(
    "cohort_changes",
    [
        None,
        [],
        "u1",
        [{"ids": ["u1"]}],
        [{"user_ids": "u1"}],
        [{"user_ids": [1, 2]}],
        [{"user_ids": ["u1"], "should_remove": "yes"}],
        [{"aliases": [{"alias_name": "a"}]}],
    ],
)
async def test_bad_cohort_changes(sandbox, http, cohort_changes):
    body = {**AUTH, "cohort_id": "c1", "cohort_changes": cohort_changes}
    reply = await partner_post(http, sandbox, MEMBERS, body)
    assert reply.status == 400
    assert reply.body["message"].startswith("cohort_changes must be an array of objects")


async def test_partner_credentials_are_redacted_in_recordings(sandbox, http):
    await partner_post(http, sandbox, MEMBERS, changes({"user_ids": ["u1"]}))
    [recorded] = sandbox.requests
    assert recorded.body["partner_api_key"] == "[REDACTED]"
    assert recorded.body["client_secret"] == "[REDACTED]"
    assert recorded.body["cohort_id"] == "c1"
    assert recorded.credential is not None and CLIENT_SECRET not in recorded.credential
