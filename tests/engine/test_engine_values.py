"""Value coercion, typed AttributeValue conversions for the API layer, and the plan cache."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from crowd.profile.v1 import definitions_pb2 as pb
from crowd.profile.v1 import event_pb2
from profile_service.engine import values
from profile_service.engine.plan import plan_for
from profile_service.engine.processor import (
    attribute_value_of,
    from_attribute_value,
    to_attribute_value,
    visit_attribute_values,
    visitor_attribute_values,
)
from tests.engine.helpers import (
    T0,
    Visitor,
    attr,
    attribute,
    cond,
    enrichment,
    evt,
    is_event,
    single,
)

T = pb.AttributeType


def test_scalar_coercion() -> None:
    assert values.to_number("  12.5 ") == 12.5
    assert values.to_number("1e3") == 1000.0
    assert values.to_number(T0) == float(T0)
    assert [values.to_number(v) for v in ("abc", True, None, float("nan"), "inf")] == [None] * 5
    assert values.to_string(12.0) == "12" and values.to_string(0.5) == "0.5"
    assert values.to_string(True) == "true"
    assert values.to_string(0) == "1970-01-01T00:00:00.000Z"
    assert values.to_string(["a"]) is None
    assert [values.to_bool(v) for v in ("True", " false ", "yes", 1, False)] == [
        True,
        False,
        None,
        None,
        False,
    ]


def test_date_coercion() -> None:
    assert values.to_date("2024-02-03") == 1_706_918_400_000
    assert values.to_date("2024-02-03T04:05:06+01:00") == 1_706_929_506_000
    assert values.to_date(1_706_918_400_000.9) == 1_706_918_400_000
    assert values.to_date("1706918400000") == 1_706_918_400_000
    assert values.to_date("03/02/2024", ["%m/%d/%Y", "%d/%m/%Y"]) == 1_709_337_600_000
    assert values.to_date("31/02/2024", ["%d/%m/%Y"]) is None
    assert [values.to_date(v) for v in (True, "soon", None, [1], float("inf"))] == [None] * 5


def test_tally_favorite_tie_breaks() -> None:
    tally = {"b": 2.0, "a": 2.0, "c": 1.0}
    assert values.tally_favorite(tally, {"a": 1, "b": 5}) == "b"
    assert values.tally_favorite(tally, {"a": 7, "b": 5}) == "a"
    assert values.tally_favorite(tally, None) == "a"  # no recency known: alphabetical
    assert values.tally_favorite({}, None) is None


CASES: list[tuple[int, Any]] = [
    (T.ATTRIBUTE_TYPE_NUMBER, 1.5),
    (T.ATTRIBUTE_TYPE_STRING, "x"),
    (T.ATTRIBUTE_TYPE_VISITOR_ID, "cust-1"),
    (T.ATTRIBUTE_TYPE_BOOLEAN, False),
    (T.ATTRIBUTE_TYPE_DATE, T0 + 7),
    (T.ATTRIBUTE_TYPE_BADGE, True),
    (T.ATTRIBUTE_TYPE_TALLY, {"a": 1.0, "b": 2.0}),
    (T.ATTRIBUTE_TYPE_STRING_SET, ["a", "b"]),
    (T.ATTRIBUTE_TYPE_STRING_ARRAY, ["b", "a", "b"]),
    (T.ATTRIBUTE_TYPE_NUMBER_ARRAY, [1.0, 1.0]),
    (T.ATTRIBUTE_TYPE_BOOLEAN_ARRAY, [True, False]),
    (T.ATTRIBUTE_TYPE_TIMELINE, [[T0, {"n": 1.0, "s": "x"}], [T0 + 1, {}]]),
    (T.ATTRIBUTE_TYPE_FUNNEL, {"steps": [["a", T0, {"d": T0}]], "completed": False}),
]


@pytest.mark.parametrize(("attribute_type", "value"), CASES)
def test_attribute_values_round_trip(attribute_type: int, value: Any) -> None:
    typed = to_attribute_value(attribute_type, value)
    assert typed is not None and typed.WhichOneof("kind") is not None
    assert from_attribute_value(typed) == value


def test_attribute_value_details() -> None:
    tally = to_attribute_value(T.ATTRIBUTE_TYPE_TALLY, {"a": 1.0, "b": 1.0}, {"a": 9, "b": 3})
    assert tally is not None and tally.tally_value.favorite == "a"
    assert to_attribute_value(T.ATTRIBUTE_TYPE_NUMBER, None) is None
    assert to_attribute_value(T.ATTRIBUTE_TYPE_NUMBER, "not a number") is None
    assert from_attribute_value(event_pb2.AttributeValue()) is None
    definition = pb.AttributeDefinition(id="d", type=T.ATTRIBUTE_TYPE_DATE)
    date = to_attribute_value(definition, T0)
    assert date is not None and date.date_value.ToMilliseconds() == T0


def test_profile_values_for_the_api() -> None:
    defs = single(
        attribute("brands", "tally", enrichment("increment_tally", evt("brand"))),
        attribute("fan", "badge", enrichment("assign_badge", rule=[[is_event("like")]])),
        attribute("page", "string", enrichment("set", evt("page")), scope="visit"),
    )
    v = Visitor(defs)
    v.send("like", T0, brand="nike", page="/home")
    state = v.profile
    visitor = visitor_attribute_values(defs, state)
    assert set(visitor) == {
        "brands",
        "lifetime_event_count",
        "lifetime_visit_count",
        "first_visit",
        "returning_visitor",
        "total_time_on_site",
        "weeks_since_first_visit",
        "average_visits_per_week",
    }  # badges are listed separately
    assert visitor["brands"].tally_value.favorite == "nike"
    visit = visit_attribute_values(defs, state)
    assert visit["page"].string_value == "/home"
    assert visit["visit_event_count"].number_value == 1.0
    assert set(visit) == {"page", "visit_start", "visit_event_count", "visit_duration", "visit_end"}
    favorite = attribute_value_of(defs, state, "brands.favorite")
    assert favorite is not None and favorite.string_value == "nike"
    fan = attribute_value_of(defs, state, "fan")
    assert fan is not None and fan.badge_value is True
    assert attribute_value_of(defs, state, "nothing") is None
    v.end(T0 + 60 * 60_000)
    assert visit_attribute_values(defs, v.profile) == {}
    last = attribute_value_of(defs, v.profile, "last_visit")
    assert last is not None and last.date_value.ToMilliseconds() == T0 + 30 * 60_000


def test_tealium_preloaded_time_builtins() -> None:
    defs = single(attribute("n", "number"))
    v = Visitor(defs)
    minute, week = 60_000, 7 * 24 * 60 * 60_000
    v.send("view", T0)
    v.send("view", T0 + 10 * minute)
    assert attribute_value_of(defs, v.profile, "average_visit_duration") is None  # none ended
    assert _number(defs, v.profile, "total_time_on_site") == 0.0
    assert _date(defs, v.profile, "visit_end") == T0 + 10 * minute
    v.end(T0 + 60 * minute)  # a 10-minute visit
    v.send("view", T0 + 3 * week)
    v.send("view", T0 + 3 * week + 20 * minute)
    v.end(T0 + 3 * week + 2 * 60 * minute)  # a 20-minute visit
    assert _number(defs, v.profile, "total_time_on_site") == 30.0
    assert _number(defs, v.profile, "average_visit_duration") == 15.0
    assert _number(defs, v.profile, "weeks_since_first_visit") == 3.0
    # 2 visits in 3 weeks and a bit (up to the second visit's end).
    assert 0.6 < _number(defs, v.profile, "average_visits_per_week") < 2 / 3


def test_unbadged_until_a_custom_badge_is_earned() -> None:
    # Tealium's preloaded Unbadged: every new visitor has it; earning a badge removes it.
    defs = single(
        attribute("vip", "badge", enrichment("assign_badge", rule=[[is_event("purchase")]])),
        audiences=[
            {"id": "newcomers", "expression": {"condition": cond(attr("unbadged"), "is_assigned")}}
        ],
    )
    v = Visitor(defs)
    assert v.send("view", T0).audiences_joined == ["newcomers"]
    unbadged = attribute_value_of(defs, v.profile, "unbadged")
    assert unbadged is not None and unbadged.badge_value is True
    assert v.send("purchase", T0 + 60_000).audiences_left == ["newcomers"]
    assert attribute_value_of(defs, v.profile, "unbadged") is None


def _number(defs: Any, state: Any, attribute_id: str) -> float:
    value = attribute_value_of(defs, state, attribute_id)
    assert value is not None
    return value.number_value


def _date(defs: Any, state: Any, attribute_id: str) -> int:
    value = attribute_value_of(defs, state, attribute_id)
    assert value is not None
    return int(value.date_value.ToMilliseconds())


def test_plans_are_cached_per_definitions_object() -> None:
    defs = single(attribute("n", "number"))
    plan = plan_for(defs)
    assert plan_for(defs) is plan
    other = single(attribute("n", "number"))
    assert plan_for(other) is not plan
    from profile_service.engine import plan as plan_module

    other_key = id(other)
    assert other_key in plan_module._PLANS
    del other
    gc.collect()
    # Its entry is gone (other tests' definitions may be collected too: count only ours).
    assert other_key not in plan_module._PLANS or plan_module._PLANS[other_key][0]() is not None
    assert plan_for(defs) is plan


def test_trace_details_convert_every_value_to_a_typed_value() -> None:
    from crowd.common.v1 import value_pb2
    from profile_service.engine.processor import trace_details

    converted = trace_details(
        {"n": 1.0, "d": T0, "s": ["a"], "gone": None, "tally": {"b": 1.0, "a": 2.0}}
    )
    assert converted["n"] == value_pb2.Value(number_value=1.0)
    assert converted["d"].timestamp_value.ToMilliseconds() == T0
    assert list(converted["s"].string_list.values) == ["a"]
    assert converted["gone"].WhichOneof("kind") == "null_value"
    assert converted["tally"].string_value == '{"a":2.0,"b":1.0}'
