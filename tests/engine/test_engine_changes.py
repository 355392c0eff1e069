"""Tealium's "set number to change in number" and "set number to change in date": the change
of an attribute or event field since the visitor's previous event (reference §2, Number)."""

from __future__ import annotations

from typing import Any

from crowd.definitions.loader import definitions_from_dict
from crowd.definitions.validator import validate
from tests.engine.helpers import (
    DAY,
    HOUR,
    MINUTE,
    T0,
    Visitor,
    attr,
    attribute,
    const,
    enrichment,
    evt,
    single,
)


def test_change_in_number_of_an_attribute_since_the_previous_event() -> None:
    defs = single(
        attribute("subtotal", "number", enrichment("set", evt("order_subtotal"))),
        attribute(
            "subtotal_change", "number", enrichment("set_change_in_number", attr("subtotal"))
        ),
    )
    v = Visitor(defs)
    v.send("cart", T0, order_subtotal=30.0)
    assert v.value("subtotal_change") is None  # nothing to compare with yet
    v.send("cart", T0 + MINUTE, order_subtotal=42.0)
    assert v.value("subtotal_change") == 12.0  # Tealium's example: 30 then 42 gives 12
    v.send("cart", T0 + 2 * MINUTE, order_subtotal=40.0)
    assert v.value("subtotal_change") == -2.0
    v.send("view", T0 + 3 * MINUTE)  # the subtotal did not change
    assert v.value("subtotal_change") == 0.0


def test_change_in_number_of_an_event_field_is_measured_against_its_last_value() -> None:
    defs = single(
        attribute(
            "subtotal_change", "number", enrichment("set_change_in_number", evt("order_subtotal"))
        )
    )
    v = Visitor(defs)
    v.send("cart", T0, order_subtotal=30.0)
    assert v.value("subtotal_change") is None
    v.send("cart", T0 + MINUTE, order_subtotal="42")  # numeric strings count
    assert v.value("subtotal_change") == 12.0
    v.send("view", T0 + 2 * MINUTE)  # no subtotal: nothing changes, 42 is still remembered
    assert v.value("subtotal_change") == 12.0
    v.send("cart", T0 + 3 * MINUTE, order_subtotal=50.0)
    assert v.value("subtotal_change") == 8.0
    v.send("cart", T0 + 4 * MINUTE, order_subtotal="n/a")  # not a number: unchanged
    assert v.value("subtotal_change") == 8.0


def test_change_in_date_in_whole_units_signed() -> None:
    defs = single(
        attribute("last_login", "date", enrichment("set", evt("login"))),
        attribute(
            "days_between_logins",
            "number",
            enrichment("set_change_in_date", attr("last_login"), unit="days"),
        ),
        attribute(
            "hours_between_renewals",
            "number",
            enrichment("set_change_in_date", evt("renewal"), unit="hours"),
        ),
    )
    v = Visitor(defs)
    v.send("login", T0, login=T0, renewal="2023-11-14T00:00:00Z")
    assert v.value("days_between_logins") is None
    assert v.value("hours_between_renewals") is None
    v.send("login", T0 + DAY, login=T0 + 3 * DAY + 5 * HOUR, renewal="2023-11-15T12:30:00Z")
    assert v.value("days_between_logins") == 3.0  # 3 days 5 hours: 3 whole days
    assert v.value("hours_between_renewals") == 36.0
    v.send("login", T0 + 2 * DAY, login=T0 + DAY)  # moved back 2 days 5 hours
    assert v.value("days_between_logins") == -2.0
    assert v.value("hours_between_renewals") == 36.0  # no renewal in this event


def test_change_enrichments_at_visit_end_see_the_change_of_the_visit_end() -> None:
    defs = single(
        attribute("closed", "number", enrichment("increment", const(1), when="visit_ended")),
        attribute(
            "closed_change",
            "number",
            enrichment("set_change_in_number", attr("closed"), when="visit_ended"),
        ),
    )
    v = Visitor(defs)
    v.send("view", T0)
    v.end(T0 + HOUR)
    assert v.value("closed_change") is None  # "closed" had no value before this visit end
    v.send("view", T0 + 2 * HOUR)
    v.end(T0 + 3 * HOUR)
    assert v.value("closed_change") == 1.0


def _errors(enrichment_doc: dict[str, Any]) -> list[tuple[str, str]]:
    document = {
        "attributes": [
            {"id": "seen", "scope": "visitor", "type": "date"},
            {"id": "label", "scope": "visitor", "type": "string"},
            {"id": "n", "scope": "visitor", "type": "number", "enrichments": [enrichment_doc]},
        ]
    }
    return [(e.path, e.message) for e in validate(definitions_from_dict(document))]


def test_the_validator_checks_change_operands_and_units() -> None:
    path = "attributes[2].enrichments[0]"
    assert _errors(enrichment("set_change_in_number", evt("total"))) == []
    assert _errors(enrichment("set_change_in_date", attr("seen"), unit="hours")) == []
    constant = _errors(enrichment("set_change_in_number", const(3)))
    assert [p for p, _ in constant] == [f"{path}.operands[0]"]
    wrong_type = _errors(enrichment("set_change_in_number", attr("label")))
    assert [p for p, _ in wrong_type] == [f"{path}.operands[0]"]
    assert "a number" in wrong_type[0][1]
    no_unit = _errors(enrichment("set_change_in_date", attr("seen")))
    assert [p for p, _ in no_unit] == [f"{path}.unit"]
    unused = _errors(enrichment("set_change_in_number", attr("seen"), unit="days"))
    assert f"{path}.unit" in [p for p, _ in unused]
