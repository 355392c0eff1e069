"""HAS_CHANGED: the input differs from its value before the current event."""

from __future__ import annotations

from tests.engine.helpers import (
    HOUR,
    MINUTE,
    T0,
    Visitor,
    attr,
    attribute,
    cond,
    const,
    enrichment,
    evt,
    is_event,
    single,
)


def changed(operand: dict[str, object]) -> list[list[dict[str, object]]]:
    return [[cond(operand, "has_changed")]]


def test_attribute_has_changed_since_the_previous_event() -> None:
    defs = single(
        attribute("city", "string", enrichment("set", evt("city"))),
        attribute("moves", "number", enrichment("increment", const(1), rule=changed(attr("city")))),
    )
    v = Visitor(defs)
    v.send("view", T0, city="Paris")  # unassigned -> Paris
    v.send("view", T0 + MINUTE, city="Paris")
    v.send("view", T0 + 2 * MINUTE)
    assert v.value("moves") == 1.0
    v.send("view", T0 + 3 * MINUTE, city="Rome")
    assert v.value("moves") == 2.0


def test_a_value_written_back_to_its_original_has_not_changed() -> None:
    defs = single(
        attribute(
            "n",
            "number",
            enrichment("increment", const(1)),
            enrichment("decrement", const(1)),
        ),
        attribute("flips", "number", enrichment("increment", const(1), rule=changed(attr("n")))),
    )
    v = Visitor(defs)
    v.send("view", T0)  # unassigned -> 0: changed
    v.send("view", T0 + MINUTE)  # 0 -> 1 -> 0: unchanged
    assert v.value("flips") == 1.0
    assert "n" not in v.outcomes[-1].changed_attributes


def test_builtins_and_favourites_have_changed() -> None:
    defs = single(
        attribute("brands", "tally", enrichment("increment_tally", evt("brand"))),
        attribute(
            "visits_seen",
            "number",
            enrichment("increment", const(1), rule=changed(attr("lifetime_visit_count"))),
        ),
        attribute(
            "favorite_switches",
            "number",
            enrichment("increment", const(1), rule=changed(attr("brands.favorite"))),
        ),
    )
    v = Visitor(defs)
    v.send("buy", T0, brand="a")  # favourite: none -> a
    v.send("buy", T0 + MINUTE, brand="a")
    v.send("buy", T0 + 2 * MINUTE, brand="b")
    v.send("buy", T0 + 3 * MINUTE, brand="b")  # 2:2, b most recent -> b
    v.send("buy", T0 + 2 * HOUR, brand="b")  # a new visit
    assert v.value("visits_seen") == 2.0
    assert v.value("favorite_switches") == 2.0


def test_event_fields_never_change_and_audiences_see_changes_of_the_event() -> None:
    defs = single(
        attribute("plan", "string", enrichment("set", evt("plan"))),
        attribute("never", "number", enrichment("increment", const(1), rule=changed(evt("plan")))),
        audiences=[
            {
                "id": "plan_changed",
                "name": "Plan changed",
                "expression": {"condition": cond(attr("plan"), "has_changed")},
            }
        ],
    )
    v = Visitor(defs)
    assert v.send("signup", T0, plan="free").audiences_joined == ["plan_changed"]
    assert v.send("view", T0 + MINUTE).audiences_left == ["plan_changed"]
    assert v.send("upgrade", T0 + 2 * MINUTE, plan="pro").audiences_joined == ["plan_changed"]
    assert v.value("never") is None


def test_has_changed_at_visit_end_compares_with_the_value_before_the_visit_end() -> None:
    defs = single(
        attribute("closed", "number", enrichment("increment", const(1), when="visit_ended")),
        attribute(
            "seen_close",
            "boolean",
            enrichment("set_true", when="visit_ended", rule=changed(attr("closed"))),
            enrichment("set_false", rule=[[is_event("view")]]),
        ),
    )
    v = Visitor(defs)
    v.send("view", T0)
    v.end(T0 + HOUR)
    assert v.value("seen_close") is True
