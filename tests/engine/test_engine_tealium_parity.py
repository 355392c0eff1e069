"""The rest of Tealium's enrichments (reference §2): random split string, lowercase of sets
and arrays, tally rolling aggregates, a tally from corresponding arrays, tally keys above a
threshold and one tally key's value as a number."""

from __future__ import annotations

from collections import Counter
from typing import Any

from crowd.definitions.loader import definitions_from_dict
from crowd.definitions.validator import validate
from tests.engine.helpers import (
    MINUTE,
    T0,
    Visitor,
    attr,
    attribute,
    const,
    enrichment,
    evt,
    is_event,
    single,
)

AB = [{"value": "A", "percentage": 20}, {"value": "B", "percentage": 80}]


def test_random_split_draws_each_value_at_its_share_and_the_same_on_replay() -> None:
    defs = single(
        attribute(
            "group",
            "string",
            enrichment(
                "random_split",
                when="new_visitor",
                split_values=AB,
            ),
        )
    )
    counts: Counter[str] = Counter()
    for n in range(2_000):
        v = Visitor(defs, visitor_id=f"visitor-{n}")
        v.send("view", T0)
        counts[v.value("group")] += 1
    assert set(counts) == {"A", "B"}
    assert 300 <= counts["A"] <= 500  # 20 % of 2,000 = 400 (deterministic: a hash, not RNG)

    first = Visitor(defs, visitor_id="replayed")
    first.send("view", T0)
    again = Visitor(defs, visitor_id="replayed")
    again.send("view", T0)  # the same event processed again (e.g. after a failed commit)
    assert first.value("group") == again.value("group")


def test_lowercase_applies_to_sets_and_arrays_of_strings() -> None:
    defs = single(
        attribute(
            "tags",
            "string_set",
            enrichment("store_as_set", evt("tags")),
            enrichment("lowercase"),
        ),
        attribute("path", "string_array", enrichment("set", evt("tags")), enrichment("lowercase")),
    )
    v = Visitor(defs)
    v.send("view", T0, tags=["Shoes", "shoes", "BAGS"])
    assert v.value("tags") == ["bags", "shoes"]  # "Shoes" and "shoes" become one entry
    assert v.value("path") == ["shoes", "shoes", "bags"]


def test_tally_rolling_sum_average_and_max_are_key_wise() -> None:
    def rolling(attribute_id: str, kind: str) -> dict[str, Any]:
        return attribute(attribute_id, "tally", enrichment(kind, attr("baskets"), key="basket"))

    defs = single(
        attribute(
            "basket",
            "tally",
            enrichment("reset", when="any_event"),
            enrichment("increment_tally", evt("items")),
            scope="visit",
        ),
        attribute(
            "baskets",
            "timeline",
            enrichment("update_timeline", capture=["basket"], rule=[[is_event("order")]]),
        ),
        rolling("summed", "set_rolling_sum"),
        rolling("averaged", "set_rolling_average"),
        rolling("largest", "set_rolling_max"),
    )
    v = Visitor(defs)
    v.send("order", T0, items=["shoes", "shoes", "bags"])
    v.send("order", T0 + MINUTE, items=["shoes"])
    assert v.value("summed") == {"bags": 1.0, "shoes": 3.0}
    assert v.value("averaged") == {"bags": 0.5, "shoes": 1.5}
    assert v.value("largest") == {"bags": 1.0, "shoes": 2.0}


def test_set_tally_from_arrays_keys_above_and_set_to_tally_value() -> None:
    defs = single(
        attribute(
            "stock",
            "tally",
            enrichment("set_tally_from_arrays", evt("skus"), evt("counts")),
        ),
        attribute("plenty", "string_set", enrichment("keys_above", attr("stock"), const(2))),
        attribute("shoes", "number", enrichment("set_to_tally_value", attr("stock"), key="shoes")),
    )
    v = Visitor(defs)
    v.send("view", T0, skus=["shoes", "bags", "hats", "shoes"], counts=[2.0, 5.0, 1.0, 4.0])
    assert v.value("stock") == {"shoes": 6.0, "bags": 5.0, "hats": 1.0}  # "shoes" adds up
    assert v.value("plenty") == ["bags", "shoes"]
    assert v.value("shoes") == 6.0
    outcome = v.send("view", T0 + MINUTE, skus=["hats"], counts=[1.0, 2.0])
    assert v.value("stock") == {"shoes": 6.0, "bags": 5.0, "hats": 1.0}  # lengths differ
    assert "not saved: stock: 1 keys but 2 values; not saved" in [r.message for r in outcome.trace]
    v.send("view", T0 + 2 * MINUTE, skus=["bags"], counts=[3.0])
    assert v.value("stock") == {"bags": 3.0}  # replaced, not merged
    assert v.value("shoes") == 6.0  # no "shoes" key: not saved


def _errors(*attributes: dict[str, Any]) -> list[tuple[str, str]]:
    document = definitions_from_dict({"attributes": list(attributes)})
    return [(e.path, e.message) for e in validate(document)]


def test_the_validator_checks_the_new_kinds() -> None:
    path = "attributes[0].enrichments[0]"
    assert _errors(attribute("g", "string", enrichment("random_split", split_values=AB))) == []
    uneven = [{"value": "A", "percentage": 50}, {"value": "A", "percentage": 40}]
    errors = _errors(attribute("g", "string", enrichment("random_split", split_values=uneven)))
    assert (f"{path}.split_values[1].value", '"A" is listed twice') in errors
    assert (f"{path}.split_values", "the percentages add up to 90, not 100") in errors
    missing = _errors(attribute("g", "string", enrichment("random_split")))
    assert [p for p, _ in missing] == [f"{path}.split_values"]
    on_number = _errors(attribute("n", "number", enrichment("random_split", split_values=AB)))
    assert [p for p, _ in on_number] == [f"{path}.kind"]
    no_key = _errors(
        attribute("t", "tally"),
        attribute("n", "number", enrichment("set_to_tally_value", attr("t"))),
    )
    assert [p for p, _ in no_key] == ["attributes[1].enrichments[0].key"]
    assert (
        _errors(
            attribute("t", "tally", enrichment("set_tally_from_arrays", evt("k"), evt("v"))),
            attribute("s", "string_set", enrichment("keys_above", attr("t"), const(3))),
            attribute("x", "string_array", enrichment("lowercase")),
        )
        == []
    )
