"""POST /users/alias/new: Braze's validation and limits, alias-only users that later
/users/track (by user_alias) and /users/identify find, and the shared identity rate limit."""

from __future__ import annotations

from braze_sandbox import PERM_ALIAS_NEW, BrazeSandbox, EndpointGroup, RateLimit
from braze_sandbox.alias import MSG_ALIAS, MSG_KEYS, MSG_NOT_ARRAY, MSG_TOO_MANY
from braze_sandbox.validation import ERR_BLOCKLISTED
from tests.braze_sandbox.helpers import attrs, post, track


def alias(name: str, label: str = "crowd_visitor", **extra: str) -> dict[str, str]:
    return {"alias_name": name, "alias_label": label, **extra}


async def test_alias_new_creates_alias_only_users_that_track_and_identify_find(sandbox, http):
    reply = await post(
        http, sandbox, "/users/alias/new", {"user_aliases": [alias("anon-1"), alias("anon-2")]}
    )
    assert (reply.status, reply.body) == (201, {"aliases_processed": 2, "message": "success"})
    user = sandbox.get_user_by_alias("anon-1", "crowd_visitor")
    assert user is not None and user.external_id is None
    assert len(sandbox.store) == 2

    # An update-only /users/track by alias (Braze's alias default) now finds the user.
    by_alias = {"user_alias": alias("anon-1")}
    event = {**by_alias, "name": "viewed", "time": "2024-05-01T10:00:00Z"}
    reply = await track(http, sandbox, attributes=[{**by_alias, "plan": "free"}], events=[event])
    assert reply.status == 201 and "errors" not in reply.body
    assert user.attributes == {"plan": "free"}
    assert [e.name for e in user.events] == ["viewed"]

    # /users/identify attaches the external id to the alias-only user.
    body = {"aliases_to_identify": [{"external_id": "cust-1", "user_alias": alias("anon-1")}]}
    reply = await post(http, sandbox, "/users/identify", body)
    assert reply.status == 201
    identified = sandbox.get_user("cust-1")
    assert identified is user and [e.name for e in identified.events] == ["viewed"]


async def test_existing_pairs_unknown_external_ids_and_identified_users(sandbox, http):
    await track(http, sandbox, attributes=[attrs("cust-1", plan="gold")])
    body = {
        "user_aliases": [
            alias("anon-1"),
            alias("anon-1"),  # the pair exists by then: success, nothing changes
            alias("web-7", "web_id", external_id="cust-1"),
            alias("web-8", "web_id", external_id="nobody"),  # no such user: not added
        ]
    }
    reply = await post(http, sandbox, "/users/alias/new", body)
    assert (reply.status, reply.body["aliases_processed"]) == (201, 4)
    assert len(sandbox.store) == 2  # cust-1 and one alias-only user
    assert sandbox.get_user_by_alias("web-7", "web_id") is sandbox.get_user("cust-1")
    assert sandbox.get_user_by_alias("web-8", "web_id") is None
    # A label the user already holds keeps its name (one alias_name per alias_label).
    body = {"user_aliases": [alias("web-9", "web_id", external_id="cust-1")]}
    assert (await post(http, sandbox, "/users/alias/new", body)).status == 201
    assert sandbox.get_user_by_alias("web-9", "web_id") is None


async def test_bad_requests_are_refused_whole(sandbox, http):
    good = alias("anon-1")
    cases = [
        ({}, MSG_NOT_ARRAY),
        ({"user_aliases": []}, MSG_NOT_ARRAY),
        ({"user_aliases": "anon-1"}, MSG_NOT_ARRAY),
        ({"user_aliases": [good, "x"]}, MSG_NOT_ARRAY),
        ({"user_aliases": [alias(f"a{i}") for i in range(51)]}, MSG_TOO_MANY),
        ({"user_aliases": [good, {"alias_name": "b"}]}, MSG_ALIAS),
        ({"user_aliases": [good, alias("")]}, MSG_ALIAS),
        ({"user_aliases": [good, {"alias_name": 5, "alias_label": "l"}]}, MSG_ALIAS),
        ({"user_aliases": [good, {**alias("b"), "braze_id": "x"}]}, MSG_KEYS),
        (
            {"user_aliases": [good, alias("b", external_id="null")]},
            f"'user_aliases': {ERR_BLOCKLISTED}",
        ),
    ]
    for body, message in cases:
        reply = await post(http, sandbox, "/users/alias/new", body)
        assert (reply.status, reply.body["message"]) == (400, message), body
    assert len(sandbox.store) == 0
    reply = await post(
        http, sandbox, "/users/alias/new", {"user_aliases": [alias(f"a{i}") for i in range(50)]}
    )
    assert (reply.status, reply.body["aliases_processed"]) == (201, 50)


async def test_alias_new_needs_its_permission(make_sandbox, http):
    sandbox: BrazeSandbox = await make_sandbox(
        api_keys={
            "no-alias": frozenset({"users.track", "users.identify"}),
            "alias": frozenset({PERM_ALIAS_NEW}),
        }
    )
    body = {"user_aliases": [alias("anon-1")]}
    assert (await post(http, sandbox, "/users/alias/new", body, key="no-alias")).status == 403
    assert (await post(http, sandbox, "/users/alias/new", body, key="alias")).status == 201


async def test_alias_new_shares_the_identity_rate_limit(make_sandbox, http):
    sandbox: BrazeSandbox = await make_sandbox(
        rate_limits={EndpointGroup.IDENTITY: RateLimit(2, 3600.0)},
        window_alignment="first_request",
    )
    body = {"aliases_to_identify": [{"external_id": "c", "user_alias": alias("z")}]}
    assert (await post(http, sandbox, "/users/identify", body)).status == 201
    first = await post(http, sandbox, "/users/alias/new", {"user_aliases": [alias("a")]})
    assert (first.status, first.headers["X-RateLimit-Remaining"]) == (201, "0")
    limited = await post(http, sandbox, "/users/alias/new", {"user_aliases": [alias("b")]})
    assert limited.status == 429 and "X-Ratelimit-Retry-After" in limited.headers
    assert sandbox.get_user_by_alias("b", "crowd_visitor") is None
