"""Every operator, with inputs that must and must not match.

Each case compiles one condition from a definitions document (as an event feed's rule) and
evaluates it against a profile holding attributes of every type.
"""

from __future__ import annotations

from typing import Any

import pytest

from profile_service.engine.context import EvalContext
from profile_service.engine.plan import plan_for
from profile_service.engine.state import ProfileState, VisitState
from tests.engine.helpers import (
    DAY,
    HOUR,
    T0,
    attr,
    attribute,
    compile_doc,
    cond,
    const,
    enum_names,
    event,
    evt,
)

NOW = T0

ATTRIBUTES = [
    attribute("num", "number"),
    attribute("text", "string"),
    attribute("flag", "boolean"),
    attribute("day", "date"),
    attribute("vip", "badge"),
    attribute("brands", "tally"),
    attribute("tags", "string_set"),
    attribute("names", "string_array"),
    attribute("scores", "number_array"),
    attribute("customer", "visitor_id"),
    attribute("visit_text", "string", scope="visit"),
    attribute("checkout", "funnel"),
    attribute("signup", "funnel"),
]

PROFILE: dict[str, Any] = {
    "num": 12.0,
    "text": "Luggage and bags",
    "flag": True,
    "day": NOW - 2 * DAY,
    "vip": True,
    "brands": {"Nike": 3.0, "adidas": 1.0},
    "tags": ["blue", "green"],
    "names": ["Ann", "bob", "Ann"],
    "scores": [1.0, 2.5],
    "customer": "cust-12345",
    "checkout": {"steps": [["cart", NOW - HOUR, {}]], "completed": False},
    "signup": {"steps": [["form", NOW - DAY, {}], ["confirm", NOW - HOUR, {}]], "completed": True},
}

EVENT_DATA: dict[str, Any] = {
    "amount": "42.5",
    "empty": "",
    "none": None,
    "list": [],
    "yes": "TRUE",
    "no": False,
    "when": "2023-11-13T22:13:20Z",
    "page": "/checkout/step-2",
    "pattern": r"\d{5}$",
}


def evaluate(condition: dict[str, Any], profile: dict[str, Any] | None = None) -> bool:
    defs = compile_doc(
        {
            "attributes": ATTRIBUTES,
            "event_feeds": [{"id": "f", "rule": {"groups": [{"conditions": [condition]}]}}],
        }
    )
    plan = plan_for(defs)
    state = ProfileState(profile_id="p", created_ms=NOW, updated_ms=NOW)
    state.attributes.update(PROFILE if profile is None else profile)
    state.visit = VisitState("v", NOW - HOUR, NOW, 30 * 60_000, attributes={"visit_text": "hi"})
    normalized = event("view", NOW, EVENT_DATA)
    c = EvalContext(state, normalized, NOW, normalized.time_ms, defs.limits)
    predicate = plan.feeds[0].predicate
    assert predicate is not None
    return predicate(c)


def days(amount: int) -> dict[str, Any]:
    return {"amount": amount, "unit": "days"}


MATCH: list[dict[str, Any]] = [
    cond(attr("checkout"), "funnel_started"),
    cond(attr("signup"), "funnel_completed"),
    cond(attr("checkout"), "step_completed", key="cart"),
    cond(attr("checkout"), "step_not_completed", key="pay"),
    # equals / not equals
    cond(attr("text"), "equals", const("Luggage and bags")),
    cond(attr("text"), "equals", const("LUGGAGE AND BAGS"), ignore_case=True),
    cond(attr("num"), "equals", const(12)),
    cond(attr("num"), "equals", const("12")),
    cond(evt("amount"), "equals", const(42.5)),
    cond(attr("flag"), "equals", const(True)),
    cond(attr("flag"), "equals", const("true")),
    cond(attr("day"), "equals", {"constant": {"timestamp_value": "2023-11-12T22:13:20Z"}}),
    cond(attr("customer"), "equals", const("cust-12345")),
    cond(attr("visit_text"), "equals", const("hi")),
    cond(evt("event.name"), "equals", const("view")),
    cond(attr("text"), "not_equals", const("luggage and bags")),
    cond(attr("unknown_is_unassigned"), "not_equals", const("x")),
    cond(evt("missing"), "not_equals", const("x")),
    # contains
    cond(attr("text"), "contains", const("and")),
    cond(attr("text"), "contains", const("BAGS"), ignore_case=True),
    cond(attr("tags"), "contains", const("blue")),
    cond(attr("tags"), "contains", const("BLUE"), ignore_case=True),
    cond(attr("names"), "contains", const("bob")),
    cond(attr("scores"), "contains", const(2.5)),
    cond(attr("brands"), "contains", const("Nike")),
    cond(attr("brands"), "contains", const("nike"), ignore_case=True),
    cond(attr("tags"), "contains", const(["blue", "green"])),
    cond(attr("text"), "not_contains", const("shoes")),
    cond(attr("tags"), "not_contains", const("red")),
    cond(attr("unknown_is_unassigned"), "not_contains", const("x")),
    # contains partial
    cond(attr("tags"), "contains_partial", const("ree")),
    cond(attr("brands"), "contains_partial", const("IDA"), ignore_case=True),
    cond(attr("customer"), "contains_partial", const("123")),
    # starts / ends with
    cond(attr("text"), "starts_with", const("Lug")),
    cond(attr("text"), "starts_with", const("lug"), ignore_case=True),
    cond(attr("text"), "ends_with", const("bags")),
    cond(attr("text"), "ends_with", const("BAGS"), ignore_case=True),
    # regex (search: any part may match)
    cond(attr("text"), "matches_regex", const("and b")),
    cond(attr("text"), "matches_regex", const("^luggage"), ignore_case=True),
    cond(evt("page"), "matches_regex", const(r"/step-\d+$")),
    cond(attr("names"), "matches_regex", const("^b")),
    cond(attr("customer"), "matches_regex", evt("pattern")),
    cond(evt("event.name"), "matches_regex", const("^vi")),
    # numbers
    cond(attr("num"), "less_than", const(13)),
    cond(attr("num"), "less_than_or_equal", const(12)),
    cond(attr("num"), "greater_than", const(11.5)),
    cond(attr("num"), "greater_than_or_equal", const(12)),
    cond(evt("amount"), "greater_than", const(42)),
    cond(attr("num"), "less_than", evt("amount")),
    # dates against now plus an offset, or against another date
    cond(attr("day"), "less_than", None, offset=days(-1)),
    cond(attr("day"), "greater_than", None, offset=days(-3)),
    cond(attr("day"), "less_than"),
    cond(evt("when"), "greater_than", None, offset=days(-2)),
    cond(attr("day"), "less_than", evt("when")),
    cond(evt("event.time"), "greater_than", attr("day")),
    # assigned
    cond(attr("vip"), "is_assigned"),
    cond(evt("empty"), "is_assigned"),
    cond(evt("list"), "is_assigned"),
    cond(attr("num"), "is_assigned"),
    cond(attr("unknown_is_unassigned"), "is_not_assigned"),
    cond(evt("none"), "is_not_assigned"),
    cond(evt("missing"), "is_not_assigned"),
    # is empty (Tealium's operator for "Any" attributes): nothing, null, "" or []; 0 is a value
    cond(evt("empty"), "is_empty"),
    cond(evt("none"), "is_empty"),
    cond(evt("list"), "is_empty"),
    cond(evt("missing"), "is_empty"),
    cond(evt("no"), "is_not_empty"),
    cond(attr("num"), "is_not_empty"),
    cond(attr("tags"), "is_not_empty"),
    # booleans
    cond(attr("flag"), "is_true"),
    cond(evt("yes"), "is_true"),
    cond(evt("no"), "is_false"),
    # occurred within / before
    cond(attr("day"), "occurred_within", None, offset=days(3)),
    cond(attr("day"), "occurred_within", None, offset=days(-3)),
    cond(attr("day"), "occurred_before", None, offset=days(1)),
    cond(evt("when"), "occurred_within", None, offset={"amount": 25, "unit": "hours"}),
    # tally key value
    cond(attr("brands"), "tally_key_value", const(2), key="Nike", key_operator="greater_than"),
    cond(attr("brands"), "tally_key_value", const(3), key="Nike", key_operator="equals"),
    cond(
        attr("brands"),
        "tally_key_value",
        const(1),
        key="ADIDAS",
        key_operator="less_than_or_equal",
        ignore_case=True,
    ),
    cond(attr("brands"), "tally_key_value", None, key="Nike", key_operator="is_assigned"),
    cond(attr("brands"), "tally_key_value", None, key="puma", key_operator="is_not_assigned"),
    # built-ins and favourites read like attributes
    cond(attr("brands.favorite"), "equals", const("Nike")),
    cond(attr("visit_start"), "equals", {"constant": {"timestamp_value": "2023-11-14T21:13:20Z"}}),
]

NO_MATCH: list[dict[str, Any]] = [
    cond(attr("unknown_is_unassigned"), "funnel_started"),
    cond(attr("checkout"), "funnel_completed"),
    cond(attr("checkout"), "step_completed", key="pay"),
    cond(attr("signup"), "step_not_completed", key="confirm"),
    cond(attr("text"), "equals", const("luggage and bags")),
    cond(attr("num"), "equals", const(12.5)),
    cond(attr("num"), "equals", const("twelve")),
    cond(attr("flag"), "equals", const(False)),
    cond(attr("unknown_is_unassigned"), "equals", const("x")),
    cond(evt("none"), "equals", const("x")),
    cond(attr("text"), "not_equals", const("Luggage and bags")),
    cond(attr("text"), "contains", const("BAGS")),
    cond(attr("tags"), "contains", const("blu")),
    cond(attr("tags"), "contains", const("BLUE")),
    cond(attr("brands"), "contains", const("nike")),
    cond(attr("tags"), "contains", const(["blue", "red"])),
    cond(attr("unknown_is_unassigned"), "contains", const("x")),
    cond(attr("tags"), "not_contains", const("blue")),
    cond(attr("tags"), "contains_partial", const("RE")),
    cond(attr("names"), "contains_partial", const("zed")),
    cond(attr("num"), "contains_partial", const("1")),
    cond(attr("text"), "starts_with", const("lug")),
    cond(attr("text"), "ends_with", const("Bags")),
    cond(attr("num"), "starts_with", const("1")),
    cond(attr("text"), "matches_regex", const("^bags")),
    cond(attr("text"), "matches_regex", const("LUGGAGE")),
    cond(attr("text"), "matches_regex", const("([unclosed")),
    cond(attr("text"), "matches_regex", evt("pattern")),
    cond(attr("num"), "less_than", const(12)),
    cond(attr("num"), "greater_than", const(12)),
    cond(attr("num"), "greater_than_or_equal", const(12.01)),
    cond(attr("num"), "less_than_or_equal", const(11.99)),
    cond(attr("text"), "greater_than", const(1)),
    cond(attr("unknown_is_unassigned"), "less_than", const(1)),
    cond(attr("day"), "less_than", None, offset=days(-3)),
    cond(attr("day"), "greater_than", None, offset=days(-1)),
    cond(attr("day"), "greater_than"),
    cond(attr("unknown_is_unassigned"), "is_assigned"),
    cond(evt("none"), "is_assigned"),
    cond(evt("empty"), "is_not_assigned"),
    cond(evt("amount"), "is_empty"),
    cond(evt("no"), "is_empty"),
    cond(attr("brands"), "is_empty"),
    cond(evt("empty"), "is_not_empty"),
    cond(evt("list"), "is_not_empty"),
    cond(evt("missing"), "is_not_empty"),
    cond(attr("vip"), "is_not_assigned"),
    cond(attr("flag"), "is_false"),
    cond(evt("no"), "is_true"),
    cond(attr("text"), "is_true"),
    cond(attr("unknown_is_unassigned"), "is_false"),
    cond(attr("day"), "occurred_within", None, offset=days(2)),
    cond(attr("day"), "occurred_within", None, offset=days(1)),
    cond(attr("day"), "occurred_before", None, offset=days(2)),
    cond(attr("day"), "occurred_before", None, offset=days(3)),
    cond(attr("brands"), "tally_key_value", const(3), key="Nike", key_operator="greater_than"),
    cond(attr("brands"), "tally_key_value", const(0), key="puma", key_operator="greater_than"),
    cond(attr("brands"), "tally_key_value", const(1), key="ADIDAS", key_operator="equals"),
    cond(attr("brands"), "tally_key_value", None, key="puma", key_operator="is_assigned"),
    cond(attr("tags"), "tally_key_value", const(0), key="blue", key_operator="greater_than"),
    cond(attr("brands.favorite"), "equals", const("adidas")),
]


@pytest.mark.parametrize("condition", MATCH, ids=lambda c: f"{c['operator']}:{c['input']}")
def test_condition_matches(condition: dict[str, Any]) -> None:
    assert evaluate(condition) is True


@pytest.mark.parametrize("condition", NO_MATCH, ids=lambda c: f"{c['operator']}:{c['input']}")
def test_condition_does_not_match(condition: dict[str, Any]) -> None:
    assert evaluate(condition) is False


def test_every_operator_is_covered_both_ways() -> None:
    from crowd.profile.v1 import definitions_pb2 as pb

    # has_changed: see test_engine_has_changed.py
    operators = set(enum_names(pb.Operator, "OPERATOR_")) - {"has_changed"}
    assert operators <= {c["operator"] for c in MATCH}
    assert operators <= {c["operator"] for c in NO_MATCH}


def test_date_operators_accept_custom_date_formats() -> None:
    condition = cond(evt("when"), "occurred_within", None, offset=days(3))
    defs = compile_doc(
        {
            "settings": {"date_formats": ["%d/%m/%Y %H:%M"]},
            "event_feeds": [{"id": "f", "rule": {"groups": [{"conditions": [condition]}]}}],
        }
    )
    predicate = plan_for(defs).feeds[0].predicate
    assert predicate is not None
    state = ProfileState(profile_id="p", created_ms=NOW, updated_ms=NOW)
    for when, expected in (("13/11/2023 22:13", True), ("01/11/2023 10:00", False), ("x", False)):
        normalized = event("view", NOW, {"when": when})
        c = EvalContext(state, normalized, NOW, NOW, defs.limits)
        assert predicate(c) is expected, when


def test_a_catastrophic_pattern_returns_on_a_huge_input() -> None:
    # (a+)+$ against "aaa...!" backtracks exponentially in Python's re; RE2 is linear.
    profile = {**PROFILE, "text": "a" * 100_000 + "!"}
    assert evaluate(cond(attr("text"), "matches_regex", const("(a+)+$")), profile) is False
    profile["text"] = "a" * 100_000
    assert evaluate(cond(attr("text"), "matches_regex", const("(a+)+$")), profile) is True


def test_a_pattern_re2_cannot_compile_matches_nothing() -> None:
    profile = {**PROFILE, "text": "aa"}
    assert evaluate(cond(attr("text"), "matches_regex", const(r"(a)\1")), profile) is False
