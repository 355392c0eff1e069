"""Effects on the user store: attribute operations, events, purchases, identify, delete, export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from braze_sandbox import BrazeSandbox
from tests.braze_sandbox.helpers import SandboxFactory, attrs, event, get, post, purchase, track

ALIAS = {"alias_name": "anon-1", "alias_label": "crowd_visitor"}


def user(sandbox: BrazeSandbox, external_id: str):
    found = sandbox.get_user(external_id)
    assert found is not None, f"no user {external_id}"
    return found


async def test_set_inc_add_remove_and_null(sandbox, http):
    await track(http, sandbox, attributes=[attrs(plan="gold", visits=1, tags=["a", "b"], x=1)])
    reply = await track(
        http,
        sandbox,
        attributes=[
            attrs(visits={"inc": 4}, tags={"add": ["c", "a"], "remove": ["b"]}, x=None),
            attrs(credits={"inc": -3}),
        ],
    )
    assert reply.status == 201
    attributes = user(sandbox, "u1").attributes
    assert attributes["plan"] == "gold"
    assert attributes["visits"] == 5
    # "If the element already exists, it's moved ... to the end."
    assert attributes["tags"] == ["c", "a"]
    assert "x" not in attributes
    assert attributes["credits"] == -3


async def test_arrays_store_unique_values_and_keep_the_newest(make_sandbox: SandboxFactory, http):
    sandbox = await make_sandbox(max_array_length=3)
    await track(http, sandbox, attributes=[attrs(food=["hotdog", "hotdog", "hotdog", "pizza"])])
    assert user(sandbox, "u1").attributes["food"] == ["hotdog", "pizza"]
    await track(http, sandbox, attributes=[attrs(food={"add": ["taco", "ramen"]})])
    assert user(sandbox, "u1").attributes["food"] == ["pizza", "taco", "ramen"]


async def test_nested_objects_replace_unless_merge_objects(sandbox, http):
    await track(http, sandbox, attributes=[attrs(song={"title": "A", "year": 1960})])
    await track(http, sandbox, attributes=[attrs(song={"year": 1961})])
    assert user(sandbox, "u1").attributes["song"] == {"year": 1961}
    await track(http, sandbox, attributes=[attrs(song={"title": "B"}, _merge_objects=True)])
    assert user(sandbox, "u1").attributes["song"] == {"year": 1961, "title": "B"}


async def test_array_of_objects_operations(sandbox, http):
    pets = [{"id": 1, "type": "dog"}, {"id": 2, "type": "cat"}]
    await track(http, sandbox, attributes=[attrs(pets=pets)])
    await track(
        http,
        sandbox,
        attributes=[
            attrs(
                _merge_objects=True,
                pets={
                    "$add": [{"id": 3, "type": "fish"}],
                    "$remove": [{"$identifier_key": "type", "$identifier_value": "dog"}],
                    "$update": [
                        {
                            "$identifier_key": "id",
                            "$identifier_value": 2,
                            "$new_object": {"name": "Tom"},
                        }
                    ],
                },
            )
        ],
    )
    assert user(sandbox, "u1").attributes["pets"] == [
        {"id": 2, "type": "cat", "name": "Tom"},
        {"id": 3, "type": "fish"},
    ]


async def test_events_and_purchases_are_stored(sandbox, http):
    future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    reply = await track(
        http,
        sandbox,
        events=[event(properties={"level": 3}), event(name="won", time=future)],
        purchases=[purchase(quantity=2, currency="eur", properties={"color": "red"})],
    )
    assert reply.status == 201
    u1 = user(sandbox, "u1")
    assert [e.name for e in u1.events] == ["played", "won"]
    assert u1.events[0].properties == {"level": 3}
    assert u1.events[0].time == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    # "Events with timestamps in the future will default to the current time."
    assert u1.events[1].time <= datetime.now(UTC)
    [bought] = u1.purchases
    assert (bought.product_id, bought.currency, bought.price, bought.quantity) == (
        "sku-1",
        "EUR",
        9.99,
        2,
    )
    # Duplicate events are not de-duplicated.
    await track(http, sandbox, events=[event(properties={"level": 3})])
    assert len(u1.events_named("played")) == 2


async def test_attributes_are_processed_before_events_in_one_request(sandbox, http):
    reply = await track(
        http,
        sandbox,
        events=[event("new", _update_existing_only=True)],
        attributes=[attrs("new", plan="gold")],
    )
    assert reply.status == 201
    assert len(user(sandbox, "new").events) == 1


async def test_update_existing_only(sandbox, http):
    # external_id objects create profiles by default; with the flag they only update.
    await track(http, sandbox, attributes=[attrs("ghost", _update_existing_only=True, a=1)])
    assert sandbox.get_user("ghost") is None
    await track(http, sandbox, attributes=[attrs("real", a=1)])
    await track(http, sandbox, attributes=[attrs("real", _update_existing_only=True, a=2)])
    assert user(sandbox, "real").attributes["a"] == 2
    # Alias objects default to update-only; false creates an alias-only profile.
    reply = await track(http, sandbox, attributes=[{"user_alias": ALIAS, "a": 1}])
    assert reply.status == 201
    assert sandbox.get_user_by_alias("anon-1", "crowd_visitor") is None
    await track(
        http, sandbox, attributes=[{"user_alias": ALIAS, "_update_existing_only": False, "a": 1}]
    )
    created = sandbox.get_user_by_alias("anon-1", "crowd_visitor")
    assert created is not None and created.external_id is None
    await track(http, sandbox, events=[{**event(), "external_id": None, "user_alias": ALIAS}])
    assert len(created.events) == 0, "None external_id plus alias is two primaries -> error"
    await track(
        http,
        sandbox,
        events=[{k: v for k, v in event().items() if k != "external_id"} | {"user_alias": ALIAS}],
    )
    assert len(created.events) == 1
    # A braze_id can address an existing profile but never create one.
    await track(http, sandbox, attributes=[{"braze_id": created.braze_id, "b": 2}])
    await track(http, sandbox, attributes=[{"braze_id": "does-not-exist", "b": 2}])
    assert created.attributes["b"] == 2
    assert len(sandbox.store.users) == 2


async def test_update_existing_only_must_be_boolean(sandbox, http):
    reply = await track(http, sandbox, attributes=[attrs(_update_existing_only="yes", a=1)])
    assert reply.status == 400
    assert "_update_existing_only" in reply.body["errors"][0]["type"]


async def test_identify_moves_alias_profile_to_external_id(sandbox, http):
    await track(
        http,
        sandbox,
        attributes=[{"user_alias": ALIAS, "_update_existing_only": False, "color": "blue"}],
    )
    reply = await post(
        http,
        sandbox,
        "/users/identify",
        {"aliases_to_identify": [{"external_id": "u1", "user_alias": ALIAS}]},
    )
    assert reply.status == 201
    assert reply.body == {"message": "success", "aliases_processed": 1}
    u1 = user(sandbox, "u1")
    assert u1.attributes["color"] == "blue"
    assert u1.aliases == {"crowd_visitor": "anon-1"}


async def test_identify_merges_into_existing_user_per_merge_behavior(sandbox, http):
    anon2 = {"alias_name": "anon-2", "alias_label": "crowd_visitor"}
    await track(
        http,
        sandbox,
        attributes=[
            attrs("u1", color="red"),
            {"user_alias": ALIAS, "_update_existing_only": False, "color": "blue", "size": "L"},
        ],
    )
    await track(
        http,
        sandbox,
        events=[{"user_alias": ALIAS, "name": "seen", "time": "2024-01-01T00:00:00Z"}],
    )
    reply = await post(
        http,
        sandbox,
        "/users/identify",
        {
            "aliases_to_identify": [{"external_id": "u1", "user_alias": ALIAS}],
            "merge_behavior": "merge",
        },
    )
    assert reply.status == 201
    u1 = user(sandbox, "u1")
    assert u1.attributes == {"color": "red", "size": "L"}, "target values win"
    assert [e.name for e in u1.events] == ["seen"]
    assert sandbox.get_user_by_alias("anon-1", "crowd_visitor") is u1
    assert len(sandbox.store.users) == 1, "the alias-only profile is removed"

    # Same label already on the target: "the user profiles are not combined".
    await track(http, sandbox, attributes=[{"user_alias": anon2, "_update_existing_only": False}])
    await post(
        http,
        sandbox,
        "/users/identify",
        {"aliases_to_identify": [{"external_id": "u1", "user_alias": anon2}]},
    )
    assert len(sandbox.store.users) == 2


async def test_identify_without_merge_keeps_only_the_alias(sandbox, http):
    await track(
        http,
        sandbox,
        attributes=[attrs("u1"), {"user_alias": ALIAS, "_update_existing_only": False, "c": 1}],
    )
    await post(
        http,
        sandbox,
        "/users/identify",
        {"aliases_to_identify": [{"external_id": "u1", "user_alias": ALIAS}]},
    )
    u1 = user(sandbox, "u1")
    assert "c" not in u1.attributes
    assert u1.aliases == {"crowd_visitor": "anon-1"}


async def test_identify_by_email(sandbox, http):
    await track(http, sandbox, attributes=[{"email": "e@example.com", "plan": "gold"}])
    reply = await post(
        http,
        sandbox,
        "/users/identify",
        {
            "emails_to_identify": [
                {
                    "external_id": "u7",
                    "email": "e@example.com",
                    "prioritization": ["unidentified", "most_recently_updated"],
                }
            ]
        },
    )
    assert reply.status == 201
    assert user(sandbox, "u7").attributes["plan"] == "gold"


async def test_identify_limits_and_validation(sandbox, http):
    many = [
        {"external_id": f"u{i}", "user_alias": {"alias_name": f"a{i}", "alias_label": "l"}}
        for i in range(51)
    ]
    reply = await post(http, sandbox, "/users/identify", {"aliases_to_identify": many})
    assert reply.status == 400
    assert reply.body == {
        "message": "The max number of external_ids and aliases per request was exceeded"
    }
    assert (
        await post(http, sandbox, "/users/identify", {"aliases_to_identify": many[:50]})
    ).status == 201
    bad = {"aliases_to_identify": [{"external_id": "u1", "user_alias": {"alias_name": "x"}}]}
    assert (await post(http, sandbox, "/users/identify", bad)).status == 400
    assert (await post(http, sandbox, "/users/identify", {})).status == 400


async def test_delete_by_external_id_and_alias(sandbox, http):
    await track(
        http,
        sandbox,
        attributes=[
            attrs("u1"),
            attrs("u2"),
            attrs("u3"),
            {"user_alias": ALIAS, "_update_existing_only": False, "a": 1},
        ],
    )
    reply = await post(http, sandbox, "/users/delete", {"external_ids": ["u1", "u2", "nobody"]})
    assert reply.status == 201
    assert reply.body == {"deleted": 3, "message": "success"}
    assert set(sandbox.users) == {"u3"}
    await post(http, sandbox, "/users/delete", {"user_aliases": [ALIAS]})
    assert sandbox.get_user_by_alias("anon-1", "crowd_visitor") is None
    # A deleted user comes back as a brand-new profile.
    await track(http, sandbox, attributes=[attrs("u1", fresh=True)])
    assert user(sandbox, "u1").attributes == {"fresh": True}


async def test_delete_limits_and_identifier_types(make_sandbox: SandboxFactory, http):
    sandbox = await make_sandbox()
    ids = [f"u{i}" for i in range(51)]
    await track(http, sandbox, attributes=[attrs(i) for i in ids[:40]])
    reply = await post(http, sandbox, "/users/delete", {"external_ids": ids})
    assert reply.status == 400
    assert reply.body == {"message": "The max number of ids per request was exceeded"}
    assert len(sandbox.users) == 40, "a fatal error deletes nothing"
    mixed = {"external_ids": ["u1"], "braze_ids": ["x"]}
    reply = await post(http, sandbox, "/users/delete", mixed)
    assert reply.status == 400
    assert "Only one of external_ids" in reply.body["message"]
    assert sandbox.get_user("u1") is not None

    lenient = await make_sandbox(delete_single_id_type=False)
    await track(http, lenient, attributes=[attrs("u1"), attrs("u2")])
    braze_id = user(lenient, "u2").braze_id
    reply = await post(
        http, lenient, "/users/delete", {"external_ids": ["u1"], "braze_ids": [braze_id]}
    )
    assert reply.status == 201
    assert lenient.users == {}


async def test_delete_by_email_needs_unambiguous_prioritization(sandbox, http):
    await track(
        http,
        sandbox,
        attributes=[attrs("u1", email="same@example.com"), attrs("u2", email="same@example.com")],
    )
    body = {"email_addresses": [{"email": "same@example.com", "prioritization": ["identified"]}]}
    assert (await post(http, sandbox, "/users/delete", body)).status == 201
    assert len(sandbox.users) == 2, "two matches and no tie-breaker: nothing is deleted"
    body["email_addresses"][0]["prioritization"] = ["identified", "most_recently_updated"]
    await post(http, sandbox, "/users/delete", body)
    assert set(sandbox.users) == {"u1"}, "the most recently updated profile goes"
    missing = {"email_addresses": [{"email": "same@example.com"}]}
    assert (await post(http, sandbox, "/users/delete", missing)).status == 400


async def test_export_ids(sandbox, http):
    await track(
        http,
        sandbox,
        attributes=[attrs("u1", first_name="Ada", plan="gold")],
        events=[event("u1"), event("u1")],
        purchases=[purchase("u1")],
    )
    reply = await post(http, sandbox, "/users/export/ids", {"external_ids": ["u1", "nobody"]})
    assert reply.status == 201
    [exported] = reply.body["users"]
    assert exported["external_id"] == "u1"
    assert exported["first_name"] == "Ada"
    assert exported["custom_attributes"] == {"plan": "gold"}
    assert exported["custom_events"][0]["name"] == "played"
    assert exported["custom_events"][0]["count"] == 2
    assert exported["purchases"][0]["name"] == "sku-1"
    assert reply.body["invalid_user_ids"] == ["nobody"]
    limited = await post(
        http,
        sandbox,
        "/users/export/ids",
        {"external_ids": ["u1"], "fields_to_export": ["custom_attributes"]},
    )
    assert limited.body["users"] == [{"custom_attributes": {"plan": "gold"}}]
    too_many = await post(
        http, sandbox, "/users/export/ids", {"external_ids": [f"u{i}" for i in range(51)]}
    )
    assert too_many.status == 400


async def test_data_points_count_keys_events_and_purchases(sandbox, http):
    await track(
        http,
        sandbox,
        attributes=[attrs("u1", a=1, b=2, c={"inc": 1}), attrs("u2", d=None), {"e": 1}],
        events=[event("u1"), event("u2")],
        purchases=[purchase("u1")],
    )
    await track(http, sandbox, attributes=[attrs("ghost", _update_existing_only=True, z=1)])
    points = sandbox.data_points
    assert (points.attributes, points.events, points.purchases) == (4, 2, 1)
    assert points.total == 7
    stats = await get(http, sandbox, "/_sandbox/stats")
    assert stats.body["data_points"]["total"] == 7


async def test_users_readable_over_http(sandbox, http):
    await track(http, sandbox, attributes=[attrs("u1", plan="gold", email="u1@example.com")])
    await track(http, sandbox, attributes=[{"user_alias": ALIAS, "_update_existing_only": False}])
    one = await get(http, sandbox, "/_sandbox/users/u1")
    assert one.status == 200
    assert one.body["custom_attributes"] == {"plan": "gold"}
    assert one.body["email"] == "u1@example.com"
    assert (await get(http, sandbox, "/_sandbox/users/nobody")).status == 404
    by_alias = await get(http, sandbox, "/_sandbox/aliases/crowd_visitor/anon-1")
    assert by_alias.body["user_aliases"] == [ALIAS]
    listing = await get(http, sandbox, "/_sandbox/users")
    assert listing.body["count"] == 2
