"""/users/track validation: batch caps, identifiers, strings, events, purchases, minor errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.braze_sandbox.helpers import SandboxFactory, attrs, event, post, purchase, track

VALID_DATA = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."


def users(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [attrs(f"u{i}", n=i) for i in range(start, start + n)]


async def test_combined75_accepts_75_in_total_and_rejects_76(make_sandbox: SandboxFactory, http):
    sandbox = await make_sandbox()  # combined75 is the default
    ok = await track(
        http,
        sandbox,
        attributes=users(25),
        events=[event(f"u{i}") for i in range(25)],
        purchases=[purchase(f"u{i}") for i in range(25)],
    )
    assert ok.status == 201
    assert ok.body["attributes_processed"] == 25
    assert ok.body["events_processed"] == 25
    assert ok.body["purchases_processed"] == 25

    over = await track(
        http, sandbox, attributes=users(26, start=100), events=[event(f"u{i}") for i in range(50)]
    )
    assert over.status == 400
    assert over.body["message"] == "Max Input Length Exceeded"
    assert sandbox.get_user("u100") is None, "a fatal error must apply nothing"


async def test_per_array75_allows_225_but_not_76_in_one_array(make_sandbox: SandboxFactory, http):
    sandbox = await make_sandbox(batch_mode="per_array75")
    ok = await track(
        http,
        sandbox,
        attributes=users(75),
        events=[event(f"u{i}") for i in range(75)],
        purchases=[purchase(f"u{i}") for i in range(75)],
    )
    assert ok.status == 201
    over = await track(http, sandbox, events=[event(f"u{i}") for i in range(76)])
    assert over.status == 400
    assert over.body["message"] == "Max Input Length Exceeded"


async def test_combined50_rejects_51(make_sandbox: SandboxFactory, http):
    sandbox = await make_sandbox(batch_mode="combined50")
    assert (await track(http, sandbox, attributes=users(30), events=[event()] * 20)).status == 201
    reply = await track(http, sandbox, attributes=users(30), events=[event()] * 21)
    assert reply.status == 400
    assert reply.body["message"] == "Max Input Length Exceeded"


@pytest.mark.parametrize("body", [{}, {"attributes": []}, {"partner": "x"}, [], "text"])
async def test_no_objects_is_400_valid_data(sandbox, http, body):
    reply = await post(http, sandbox, "/users/track", body)
    assert reply.status == 400
    assert reply.body["message"] == VALID_DATA


async def test_array_field_of_wrong_type_is_400(sandbox, http):
    reply = await track(http, sandbox, attributes={"external_id": "u1"})
    assert reply.status == 400
    assert "'attributes' must be an array" in reply.body["message"]


@pytest.mark.parametrize(
    ("obj", "error"),
    [
        (
            {"plan": "gold"},
            "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required",
        ),
        ({"external_id": "u1", "braze_id": "b1"}, "Only one of"),
        ({"external_id": "u1", "user_alias": {"alias_name": "a", "alias_label": "l"}}, "Only one"),
        ({"user_alias": {"alias_name": "a"}}, "'user_alias' must be an object"),
        ({"user_alias": {"alias_name": "a", "alias_label": ""}}, "'user_alias' must be an object"),
        ({"user_alias": "a:l"}, "'user_alias' must be an object"),
        ({"external_id": 42}, "'external_id' must be a non-empty string"),
        ({"external_id": ""}, "'external_id' must be a non-empty string"),
        ({"external_id": "x" * 988}, "987 bytes"),
        ({"external_id": "undefined"}, "blacklisted"),
        ({"braze_id": ""}, "'braze_id' must be a non-empty string"),
        ({"email": "not-an-email"}, "not a valid email"),
        ({"phone": "call me"}, "not a valid phone"),
        ("just a string", "must be a JSON object"),
    ],
)
async def test_identifier_rules_make_minor_errors(sandbox, http, obj, error):
    reply = await track(http, sandbox, attributes=[attrs("ok", plan="gold"), obj])
    assert reply.status == 201
    assert reply.body["attributes_processed"] == 1
    [err] = reply.body["errors"]
    assert error in err["type"]
    assert err["input_array"] == "attributes"
    assert err["index"] == 1
    assert sandbox.get_user("ok") is not None


async def test_email_or_phone_alone_identify_and_primary_makes_them_attributes(sandbox, http):
    reply = await track(
        http,
        sandbox,
        attributes=[
            {"email": "a@example.com", "plan": "gold"},
            {"phone": "+15555550100", "plan": "silver"},
            attrs("u9", email="u9@example.com", phone="+15555550199"),
        ],
    )
    assert reply.status == 201, reply.body
    assert "errors" not in reply.body
    by_email = sandbox.store.find_by_email("a@example.com")
    assert [u.attributes["plan"] for u in by_email] == ["gold"]
    assert by_email[0].external_id is None
    assert sandbox.store.find_by_phone("+15555550100")[0].attributes["plan"] == "silver"
    u9 = sandbox.get_user("u9")
    assert u9 is not None
    assert (u9.email, u9.phone) == ("u9@example.com", "+15555550199")


async def test_string_values_up_to_255_characters(sandbox, http):
    reply = await track(
        http,
        sandbox,
        attributes=[
            attrs("u1", bio="x" * 255),
            attrs("u2", bio="x" * 256),
            attrs("u3", tags=["ok", "y" * 256]),
            attrs("u4", tags={"add": ["z" * 256]}),
        ],
    )
    assert reply.status == 201
    assert [e["index"] for e in reply.body["errors"]] == [1, 2, 3]
    assert all("255" in e["type"] for e in reply.body["errors"])
    assert sandbox.get_user("u1").attributes["bio"] == "x" * 255
    assert sandbox.get_user("u2") is None


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ({"inc": 2}, True),
        ({"inc": "2"}, False),
        ({"inc": 1.5}, False),
        ({"add": ["a"], "remove": ["b"]}, True),
        ({"add": "a"}, False),
        ({"add": [{"x": 1}]}, False),
        ({"$add": [{"id": 1}]}, True),
        ({"$remove": [{"$identifier_key": "id"}]}, False),
        ({"$update": [{"$identifier_key": "id", "$identifier_value": 1}]}, False),
        ({"$time": "2020-05-28"}, True),
        ({"$time": "yesterday"}, False),
        ({"nested": {"ok": 1}}, True),
        ({"bad key": 1}, False),
        ({"a.b": 1}, False),
        ([1, "two", True], True),
        ([[1]], False),
    ],
)
async def test_attribute_value_shapes(sandbox, http, value, ok):
    reply = await track(http, sandbox, attributes=[attrs("u1", field=value)])
    if ok:
        assert reply.status == 201 and "errors" not in reply.body, reply.body
    else:
        assert reply.status == 400
        assert reply.body["errors"][0]["input_array"] == "attributes"


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("email_subscribe", "opted_in", True),
        ("email_subscribe", "yes", False),
        ("push_subscribe", "unsubscribed", True),
        ("gender", "F", True),
        ("gender", "female", False),
        ("dob", "1980-12-21", True),
        ("dob", "21/12/1980", False),
        ("email", "bad", False),
        ("email", None, True),
    ],
)
async def test_standard_field_values(sandbox, http, field, value, ok):
    reply = await track(http, sandbox, attributes=[attrs("u1", **{field: value})])
    assert (reply.status == 201) is ok, reply.body


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"name": None}, "'name' is required"),
        ({"name": ""}, "'name' is required"),
        ({"time": None}, "'time' is required"),
        ({"time": "2024-05-01"}, "'time' is required"),
        ({"time": "May 1st"}, "'time' is required"),
        ({"time": 1714557600}, "'time' is required"),
        ({"properties": []}, "Invalid 'properties' field"),
        ({"properties": {"time": "x"}}, "Invalid 'properties' field"),
        ({"properties": {"event_name": "x"}}, "Invalid 'properties' field"),
        ({"properties": {"$x": 1}}, "Invalid 'properties' field"),
        ({"properties": {"s": "x" * 256}}, "Invalid 'properties' field"),
        ({"app_id": 5}, "'app_id' must be a string"),
    ],
)
async def test_event_validation(sandbox, http, change, error):
    bad = {k: v for k, v in {**event("u2"), **change}.items() if v is not None}
    reply = await track(http, sandbox, events=[event("u1"), bad])
    assert reply.status == 201
    assert reply.body["events_processed"] == 1
    [err] = reply.body["errors"]
    assert (err["input_array"], err["index"]) == ("events", 1)
    assert error in err["type"]
    assert sandbox.get_user("u2") is None


@pytest.mark.parametrize(
    "time_text",
    [
        "2013-07-16T19:20:30+01:00",
        "2013-07-16T19:20:30.123Z",
        "2013-07-16T19:20:30:123Z",
        "2013-07-16T19:20:30",
        "2013-07-16 19:20:30",
    ],
)
async def test_event_time_formats(sandbox, http, time_text):
    reply = await track(http, sandbox, events=[event("u1", time=time_text)])
    assert reply.status == 201, reply.body


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"product_id": None}, "'product_id' is required"),
        ({"product_id": "p" * 256}, "'product_id' is required"),
        ({"currency": None}, "'currency'"),
        ({"currency": "US"}, "'currency'"),
        ({"currency": "USDX"}, "'currency'"),
        ({"currency": "U5D"}, "'currency'"),
        ({"price": None}, "'price'"),
        ({"price": "9.99"}, "'price'"),
        ({"price": True}, "'price'"),
        ({"quantity": 0}, "'quantity'"),
        ({"quantity": 101}, "'quantity'"),
        ({"quantity": 1.5}, "'quantity'"),
        ({"time": None}, "'time'"),
        ({"properties": {"price": 1}}, "Invalid 'properties' field"),
        ({"properties": {"currency": "EUR"}}, "Invalid 'properties' field"),
    ],
)
async def test_purchase_validation(sandbox, http, change, error):
    bad = {k: v for k, v in {**purchase("u2"), **change}.items() if v is not None}
    reply = await track(http, sandbox, purchases=[purchase("u1", quantity=100), bad])
    assert reply.status == 201
    assert reply.body["purchases_processed"] == 1
    [err] = reply.body["errors"]
    assert error in err["type"]
    assert (err["input_array"], err["index"]) == ("purchases", 1)


async def test_minor_errors_across_arrays_keep_their_indexes_and_rest_is_applied(sandbox, http):
    reply = await track(
        http,
        sandbox,
        attributes=[attrs("a", x=1), {"x": 1}, attrs("b", x=2)],
        events=[{"external_id": "a", "name": "e"}, event("a")],
        purchases=[purchase("b"), purchase("b", currency="dollars")],
    )
    assert reply.status == 201
    assert reply.body["message"] == "success"
    assert (
        reply.body["attributes_processed"],
        reply.body["events_processed"],
        reply.body["purchases_processed"],
    ) == (2, 1, 1)
    located = [(e["input_array"], e["index"]) for e in reply.body["errors"]]
    assert located == [("attributes", 1), ("events", 0), ("purchases", 1)]
    a, b = sandbox.get_user("a"), sandbox.get_user("b")
    assert a is not None and b is not None
    assert len(a.events) == 1 and len(b.purchases) == 1


async def test_all_objects_invalid_is_400_with_errors(sandbox, http):
    reply = await track(http, sandbox, attributes=[{"x": 1}], events=[event("u1", name="")])
    assert reply.status == 400
    assert reply.body["message"] == VALID_DATA
    assert [(e["input_array"], e["index"]) for e in reply.body["errors"]] == [
        ("attributes", 0),
        ("events", 0),
    ]
    assert sandbox.store.users == []


async def test_object_size_cap_is_configurable(make_sandbox: SandboxFactory, http):
    strict = await make_sandbox(max_object_bytes=1024)
    many = {f"k{i}": "v" * 50 for i in range(30)}  # ~2 KB, every value within 255 chars
    reply = await track(http, strict, attributes=[attrs("u1", **many), attrs("u2", k=1)])
    assert reply.status == 201
    assert reply.body["errors"][0]["index"] == 0
    assert "maximum size of 1024 bytes" in reply.body["errors"][0]["type"]

    relaxed = await make_sandbox(max_object_bytes=None)
    assert "errors" not in (await track(http, relaxed, attributes=[attrs("u1", **many)])).body


async def test_default_object_cap_is_100_kb(sandbox, http):
    big = {f"k{i}": "v" * 250 for i in range(420)}  # ~110 KB
    reply = await track(http, sandbox, attributes=[attrs("u1", **big), attrs("u2", k=1)])
    assert reply.status == 201
    assert "102400" in reply.body["errors"][0]["type"]
