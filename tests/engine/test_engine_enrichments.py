"""Every enrichment kind, with cases that must and must not change the profile."""

from __future__ import annotations

from pathlib import Path

from crowd.profile.v1 import definitions_pb2 as pb
from tests.engine.helpers import (
    DAY,
    HOUR,
    MINUTE,
    T0,
    Visitor,
    attr,
    attribute,
    cond,
    const,
    enrichment,
    enum_names,
    evt,
    is_event,
    single,
)


def test_every_enrichment_kind_has_a_test_here() -> None:
    kinds = enum_names(pb.EnrichmentKind, "ENRICHMENT_KIND_")
    # This module and its siblings (e.g. test_engine_changes.py).
    tests = sorted(Path(__file__).parent.glob("test_engine_*.py"))
    source = "".join(path.read_text(encoding="utf-8") for path in tests)
    missing = [kind for kind in kinds if f'"{kind}"' not in source]
    assert not missing


# --- numbers --------------------------------------------------------------------------------


def test_increment_by_constant_event_value_and_attribute() -> None:
    defs = single(
        attribute("step", "number", enrichment("set", const(5))),
        attribute("by_const", "number", enrichment("increment", const(2))),
        attribute("by_event", "number", enrichment("increment", evt("amount"))),
        attribute("by_attr", "number", enrichment("increment", attr("step"))),
    )
    v = Visitor(defs)
    v.send("view", T0, amount=1.5)
    v.send("view", T0 + MINUTE, amount="2.5")  # numeric strings count
    assert v.value("by_const") == 4.0
    assert v.value("by_event") == 4.0
    assert v.value("by_attr") == 10.0


def test_increment_without_a_number_does_nothing() -> None:
    defs = single(attribute("total", "number", enrichment("increment", evt("amount"))))
    v = Visitor(defs)
    v.send("view", T0, amount=3.0)
    outcome = v.send("view", T0 + MINUTE)  # no amount
    assert "total" not in outcome.changed_attributes
    for wrong in ("abc", True, ["1"], None):
        v.send("view", T0 + 2 * MINUTE, amount=wrong)
    assert v.value("total") == 3.0


def test_decrement() -> None:
    defs = single(attribute("stock", "number", enrichment("decrement", evt("qty"))))
    v = Visitor(defs)
    v.send("sale", T0, qty=2.0)
    v.send("sale", T0 + MINUTE, qty=-1.0)
    v.send("sale", T0 + 2 * MINUTE, qty="x")
    assert v.value("stock") == -1.0


def test_set_sum_difference_product_ratio() -> None:
    defs = single(
        attribute("sum", "number", enrichment("set_sum", evt("a"), evt("b"))),
        attribute("difference", "number", enrichment("set_difference", evt("a"), evt("b"))),
        attribute("product", "number", enrichment("set_product", evt("a"), evt("b"))),
        attribute("ratio", "number", enrichment("set_ratio", evt("a"), evt("b"))),
    )
    v = Visitor(defs)
    v.send("calc", T0, a=6.0, b=4.0)
    assert (v.value("sum"), v.value("difference"), v.value("product"), v.value("ratio")) == (
        10.0,
        2.0,
        24.0,
        1.5,
    )
    outcome = v.send("calc", T0 + MINUTE, a=1.0, b=0.0)
    assert v.value("ratio") == 1.5  # dividing by zero saves nothing
    assert v.value("product") == 0.0
    assert any("division by zero" in record.message for record in outcome.trace)
    v.send("calc", T0 + 2 * MINUTE, a=1.0)  # b missing: nothing changes
    assert v.value("sum") == 1.0


def test_set_size_of_set_tally_and_array() -> None:
    defs = single(
        attribute("tags", "string_set", enrichment("add_to_set", evt("tag"))),
        attribute("brands", "tally", enrichment("increment_tally", evt("brand"))),
        attribute("pages", "string_array", enrichment("append", evt("page"))),
        attribute("tag_count", "number", enrichment("set_size", attr("tags"))),
        attribute("brand_count", "number", enrichment("set_size", attr("brands"))),
        attribute("page_count", "number", enrichment("set_size", attr("pages"))),
    )
    v = Visitor(defs)
    v.send("view", T0, page="/a")
    assert v.value("tag_count") == 0.0  # an unassigned collection has no entries
    v.send("view", T0 + MINUTE, tag=["x", "y"], brand="nike", page="/b")
    v.send("view", T0 + 2 * MINUTE, tag="x", brand="nike", page="/a")
    assert (v.value("tag_count"), v.value("brand_count"), v.value("page_count")) == (
        2.0,
        1.0,
        3.0,
    )


def test_number_set_from_constant_attribute_and_event() -> None:
    defs = single(
        attribute("a", "number", enrichment("set", const(7))),
        attribute("b", "number", enrichment("set", attr("a"))),
        attribute("c", "number", enrichment("set", evt("value"))),
    )
    v = Visitor(defs)
    v.send("view", T0, value="8")
    assert (v.value("a"), v.value("b"), v.value("c")) == (7.0, 7.0, 8.0)
    v.send("view", T0 + MINUTE, value="eight")  # wrong type: nothing
    assert v.value("c") == 8.0
    v.send("view", T0 + 2 * MINUTE, value=None)  # explicit null: removed
    assert v.value("c") is None


# --- strings --------------------------------------------------------------------------------


def test_string_set_lowercase_and_remove() -> None:
    defs = single(
        attribute(
            "city",
            "string",
            enrichment("set", evt("city"), rule=[[is_event("address")]]),
            enrichment("lowercase"),
            enrichment("remove", rule=[[is_event("forget")]]),
        ),
    )
    v = Visitor(defs)
    v.send("view", T0, city="Ignored")  # rule does not match
    assert v.value("city") is None
    v.send("address", T0 + MINUTE, city="PARIS")
    assert v.value("city") == "paris"
    v.send("address", T0 + 2 * MINUTE, city=12.0)  # numbers convert to strings
    assert v.value("city") == "12"
    v.send("address", T0 + 3 * MINUTE, city=["a"])  # lists do not
    assert v.value("city") == "12"
    outcome = v.send("forget", T0 + 4 * MINUTE)
    assert v.value("city") is None
    assert outcome.changed_attributes == {"city": None}


def test_join_skips_operands_without_value() -> None:
    defs = single(
        attribute("first", "string", enrichment("set", evt("first"))),
        attribute(
            "label",
            "string",
            enrichment("join", attr("first"), evt("last"), const(3), delimiter=" / "),
        ),
    )
    v = Visitor(defs)
    v.send("view", T0, first="Ada", last="Lovelace")
    assert v.value("label") == "Ada / Lovelace / 3"
    v.send("view", T0 + MINUTE, first="Grace")
    assert v.value("label") == "Grace / 3"


# --- booleans and dates -----------------------------------------------------------------------


def test_set_true_false_and_boolean_set() -> None:
    defs = single(
        attribute(
            "subscribed",
            "boolean",
            enrichment("set_true", rule=[[is_event("subscribe")]]),
            enrichment("set_false", rule=[[is_event("unsubscribe")]]),
        ),
        attribute("opt_in", "boolean", enrichment("set", evt("opt_in"))),
    )
    v = Visitor(defs)
    v.send("view", T0, opt_in="TRUE")
    assert v.value("subscribed") is None
    assert v.value("opt_in") is True
    v.send("subscribe", T0 + MINUTE, opt_in="maybe")
    assert v.value("subscribed") is True
    assert v.value("opt_in") is True
    v.send("unsubscribe", T0 + 2 * MINUTE, opt_in=False)
    assert v.value("subscribed") is False
    assert v.value("opt_in") is False


def test_capture_date_and_date_set_from_event_strings() -> None:
    defs = single(
        attribute("seen", "date", enrichment("capture_date")),
        attribute("birthday", "date", enrichment("set", evt("birthday"), date_format="%d.%m.%Y")),
        attribute("since", "date", enrichment("set", evt("since"))),
        attribute(
            "forgotten",
            "date",
            enrichment("capture_date"),
            enrichment("remove", rule=[[is_event("forget")]]),
        ),
        settings={"date_formats": ["%Y/%m/%d"]},
    )
    v = Visitor(defs)
    v.send("view", T0 + 5, now_ms=T0 + 99, birthday="24.12.1990", since="2020-01-02T03:04:05.678Z")
    assert v.value("seen") == T0 + 5  # the event's time, not the processing time
    assert v.value("birthday") == 661_996_800_000
    assert v.value("since") == 1_577_934_245_678
    v.send("view", T0 + MINUTE, birthday="not a date", since=1_600_000_000_000.0)
    assert v.value("birthday") == 661_996_800_000
    assert v.value("since") == 1_600_000_000_000
    v.send("view", T0 + 2 * MINUTE, since="2021/05/06")  # settings.date_formats
    assert v.value("since") == 1_620_259_200_000
    v.send("view", T0 + 3 * MINUTE, since="1600000000000")  # epoch ms as a string
    assert v.value("since") == 1_600_000_000_000
    v.send("forget", T0 + 4 * MINUTE)
    assert v.value("forgotten") is None


# --- badges ---------------------------------------------------------------------------------


def test_assign_and_remove_badge() -> None:
    defs = single(
        attribute(
            "fan",
            "badge",
            enrichment("assign_badge", rule=[[is_event("like")]]),
            enrichment("remove_badge", rule=[[is_event("unlike")]]),
        ),
    )
    v = Visitor(defs)
    outcome = v.send("view", T0)
    assert outcome.badges_assigned == [] and v.value("fan") is None
    outcome = v.send("like", T0 + MINUTE)
    assert outcome.badges_assigned == ["fan"]
    assert outcome.changed_attributes == {}  # badges are reported separately
    outcome = v.send("like", T0 + 2 * MINUTE)
    assert outcome.badges_assigned == []  # already assigned: no change
    outcome = v.send("unlike", T0 + 3 * MINUTE)
    assert outcome.badges_removed == ["fan"]
    assert v.value("fan") is None


# --- tallies --------------------------------------------------------------------------------


def test_increment_tally_by_one_by_amount_and_by_list() -> None:
    defs = single(
        attribute("brands", "tally", enrichment("increment_tally", evt("brand"))),
        attribute("spend", "tally", enrichment("increment_tally", evt("brand"), evt("amount"))),
    )
    v = Visitor(defs)
    v.send("buy", T0, brand="nike", amount=10.0)
    v.send("buy", T0 + MINUTE, brand=["nike", "puma"], amount="2.5")
    v.send("buy", T0 + 2 * MINUTE, brand="", amount=1.0)  # empty key: nothing
    v.send("buy", T0 + 3 * MINUTE, amount=1.0)  # no key: nothing
    v.send("buy", T0 + 4 * MINUTE, brand="adidas", amount="x")  # no amount: nothing
    assert v.value("brands") == {"nike": 2.0, "puma": 1.0, "adidas": 1.0}
    assert v.value("spend") == {"nike": 12.5, "puma": 2.5}


def test_increment_tally_key_and_remove_tally_key() -> None:
    defs = single(
        attribute(
            "searches",
            "tally",
            enrichment("increment_tally_key", key="no_result", rule=[[is_event("empty_search")]]),
            enrichment("increment_tally_key", evt("n"), key="found", rule=[[is_event("search")]]),
            enrichment("remove_tally_key", key="no_result", rule=[[is_event("reset")]]),
        ),
    )
    v = Visitor(defs)
    v.send("empty_search", T0)
    v.send("empty_search", T0 + MINUTE)
    v.send("search", T0 + 2 * MINUTE, n=3.0)
    assert v.value("searches") == {"no_result": 2.0, "found": 3.0}
    v.send("reset", T0 + 3 * MINUTE)
    assert v.value("searches") == {"found": 3.0}
    assert "no_result" not in v.profile.tally_touched["searches"]


def test_tally_favorite_ties_go_to_the_most_recently_incremented_key() -> None:
    defs = single(
        attribute("brands", "tally", enrichment("increment_tally", evt("brand"))),
        attribute("favorite", "string", enrichment("set", attr("brands.favorite"))),
    )
    v = Visitor(defs)
    v.send("buy", T0, brand="zara")
    v.send("buy", T0 + MINUTE, brand="adidas")
    assert v.value("favorite") == "adidas"  # 1:1, adidas is the most recent
    v.send("buy", T0 + 2 * MINUTE, brand="zara")
    assert v.value("favorite") == "zara"  # 2:1
    v.send("buy", T0 + 3 * MINUTE, brand="adidas")
    assert v.value("favorite") == "adidas"  # 2:2, adidas is the most recent
    v.send("buy", T0 + 4 * MINUTE, brand=["zara", "adidas"])
    assert v.value("favorite") == "adidas"  # 3:3, the last of the list is the most recent


# --- sets -----------------------------------------------------------------------------------


def test_add_remove_store_and_reset_a_set() -> None:
    defs = single(
        attribute(
            "tags",
            "string_set",
            enrichment("add_to_set", evt("add"), rule=[[cond(evt("add"), "is_assigned")]]),
            enrichment("remove_from_set", evt("drop")),
            enrichment("store_as_set", evt("replace")),
            enrichment("reset", rule=[[is_event("clear")]]),
        ),
    )
    v = Visitor(defs)
    v.send("tag", T0, add=["b", "a", "b"])
    assert v.value("tags") == ["a", "b"]
    v.send("tag", T0 + MINUTE, add="c", drop="a")
    assert v.value("tags") == ["b", "c"]
    v.send("tag", T0 + 2 * MINUTE, drop=["zz"])
    assert v.value("tags") == ["b", "c"]
    v.send("tag", T0 + 3 * MINUTE, replace=["y", "x", "y"])
    assert v.value("tags") == ["x", "y"]  # overwritten, not appended
    outcome = v.send("clear", T0 + 4 * MINUTE)
    assert v.value("tags") == []  # reset: assigned and empty
    assert outcome.changed_attributes == {"tags": []}


# --- arrays ---------------------------------------------------------------------------------


def test_append_to_arrays_of_each_type_and_reset() -> None:
    defs = single(
        attribute("pages", "string_array", enrichment("append", evt("v"))),
        attribute("prices", "number_array", enrichment("append", evt("v"))),
        attribute("flags", "boolean_array", enrichment("append", evt("v"))),
        attribute(
            "history",
            "string_array",
            enrichment("set", evt("init")),
            enrichment("reset", rule=[[is_event("clear")]]),
        ),
    )
    v = Visitor(defs)
    v.send("x", T0, v="1.5")
    v.send("x", T0 + MINUTE, v=["true", 2.0, "no", False])
    assert v.value("pages") == ["1.5", "true", "2", "no", "false"]
    assert v.value("prices") == [1.5, 2.0]  # non-numeric items are skipped
    assert v.value("flags") == [True, False]  # only true/false items are kept
    v.send("x", T0 + 2 * MINUTE, init=["a", "a"])
    assert v.value("history") == ["a", "a"]  # arrays keep duplicates
    v.send("clear", T0 + 3 * MINUTE)
    assert v.value("history") == []


# --- timelines and funnels ---------------------------------------------------------------------


def test_update_timeline_captures_attributes() -> None:
    defs = single(
        attribute("total", "number", enrichment("increment", evt("amount"))),
        attribute(
            "orders",
            "timeline",
            enrichment("update_timeline", capture=["total", "missing"], rule=[[is_event("order")]]),
        ),
    )
    v = Visitor(defs)
    v.send("view", T0)
    v.send("order", T0 + MINUTE, amount=10.0)
    v.send("order", T0 + 2 * MINUTE, amount=5.0)
    assert v.value("orders") == [[T0 + MINUTE, {"total": 10.0}], [T0 + 2 * MINUTE, {"total": 15.0}]]


def test_funnel_steps_in_order_with_required_and_optional_steps() -> None:
    def step(key: str, required: bool) -> dict[str, object]:
        return enrichment(
            "funnel_step", key=key, required=required, capture=["cart"], rule=[[is_event(key)]]
        )

    defs = single(
        attribute("cart", "number", enrichment("increment", evt("items"))),
        attribute(
            "checkout",
            "funnel",
            step("cart", True),
            step("coupon", False),
            step("shipping", True),
            step("pay", False),  # the last step is always required
            scope="visit",
        ),
    )
    v = Visitor(defs)
    v.send("shipping", T0)  # out of sequence: the required "cart" comes first
    assert v.value("checkout") is None
    v.send("cart", T0 + MINUTE, items=2.0)
    v.send("shipping", T0 + 2 * MINUTE)  # skips the optional coupon step
    v.send("coupon", T0 + 3 * MINUTE)  # no back-fill of a skipped step
    v.send("cart", T0 + 4 * MINUTE)  # already recorded
    funnel = v.value("checkout")
    assert [s[0] for s in funnel["steps"]] == ["cart", "shipping"]
    assert funnel["steps"][0] == ["cart", T0 + MINUTE, {"cart": 2.0}]
    assert funnel["completed"] is False
    v.send("pay", T0 + 5 * MINUTE)
    assert v.value("checkout")["completed"] is True
    v.send("cart", T0 + 6 * MINUTE)  # completed funnels do not change
    assert len(v.value("checkout")["steps"]) == 3


# --- visitor ids -------------------------------------------------------------------------------


def test_visitor_id_is_set_once_and_never_changes() -> None:
    defs = single(attribute("customer_id", "visitor_id", enrichment("set", evt("customer_id"))))
    v = Visitor(defs)
    v.send("view", T0)
    assert v.value("customer_id") is None
    v.send("login", T0 + MINUTE, customer_id="cust-1")
    v.send("login", T0 + 2 * MINUTE, customer_id="cust-2")
    v.send("login", T0 + 3 * MINUTE, customer_id=None)
    assert v.value("customer_id") == "cust-1"


# --- ordering and timing -----------------------------------------------------------------------


def test_rules_see_values_written_earlier_in_the_same_event() -> None:
    # "big" is written first in the document but reads "total": dependency order runs the
    # increment first, so the badge is assigned by the very event that crosses 100.
    defs = single(
        attribute(
            "big",
            "badge",
            enrichment("assign_badge", rule=[[cond(attr("total"), "greater_than", const(100))]]),
        ),
        attribute("total", "number", enrichment("increment", evt("amount"))),
    )
    v = Visitor(defs)
    assert v.send("buy", T0, amount=60.0).badges_assigned == []
    assert v.send("buy", T0 + MINUTE, amount=60.0).badges_assigned == ["big"]


def test_when_new_visitor_new_visit_any_event_and_visit_ended() -> None:
    defs = single(
        attribute("visitor_runs", "number", enrichment("increment", const(1), when="new_visitor")),
        attribute("visit_runs", "number", enrichment("increment", const(1), when="new_visit")),
        attribute("event_runs", "number", enrichment("increment", const(1), when="any_event")),
        attribute("end_runs", "number", enrichment("increment", const(1), when="visit_ended")),
    )
    v = Visitor(defs)
    v.send("a", T0)
    v.send("b", T0 + MINUTE)
    assert [v.value(a) for a in ("visitor_runs", "visit_runs", "event_runs", "end_runs")] == [
        1.0,
        1.0,
        2.0,
        None,
    ]
    v.end(T0 + 40 * MINUTE)
    v.send("c", T0 + 50 * MINUTE)
    assert [v.value(a) for a in ("visitor_runs", "visit_runs", "event_runs", "end_runs")] == [
        1.0,
        2.0,
        3.0,
        1.0,
    ]


def test_new_visit_enrichments_run_before_any_event_enrichments() -> None:
    # The any-event enrichment is first in the document, yet the visit flag reset on a new
    # visit must not undo what the first event of the visit set.
    defs = single(
        attribute(
            "added",
            "boolean",
            enrichment("set_true", rule=[[is_event("cart_add")]]),
            enrichment("set_false", when="new_visit"),
            scope="visit",
        ),
    )
    v = Visitor(defs)
    v.send("cart_add", T0)
    assert v.value("added") is True


# --- Tealium parity: dates, splits, differences, tally keys -------------------------------------


def test_set_date_difference_in_whole_units_always_positive() -> None:
    defs = single(
        attribute("joined", "date", enrichment("set", evt("joined"))),
        attribute(
            "days_member",
            "number",
            enrichment("set_date_difference", attr("joined"), evt("event.time"), unit="days"),
        ),
        attribute(
            "weeks_ahead",
            "number",
            enrichment("set_date_difference", evt("event.time"), evt("renewal"), unit="weeks"),
        ),
    )
    v = Visitor(defs)
    v.send("view", T0 + 10 * DAY + HOUR, joined=T0, renewal=T0 + 40 * DAY)
    assert v.value("days_member") == 10.0  # 10 days and 1 hour: 10 whole days
    assert v.value("weeks_ahead") == 4.0  # 29 days 23 hours later: 4 whole weeks, positive
    v.send("view", T0 + 11 * DAY, joined="not a date")
    assert v.value("days_member") == 11.0  # the stored date is still read


def test_format_date_with_a_pattern_or_iso_8601() -> None:
    defs = single(
        attribute(
            "day", "string", enrichment("format_date", evt("event.time"), date_format="%d/%m/%Y")
        ),
        attribute("stamp", "string", enrichment("format_date", evt("at"))),
    )
    v = Visitor(defs)
    v.send("view", 1_764_930_600_000, at="2026-12-05T10:30:00Z")  # 2025-12-05 10:30 UTC
    assert v.value("day") == "05/12/2025"
    assert v.value("stamp") == "2026-12-05T10:30:00Z"
    v.send("view", 1_764_930_600_000 + MINUTE, at="soon")
    assert v.value("stamp") == "2026-12-05T10:30:00Z"  # not a date: unchanged


def test_split_into_a_set_or_an_array() -> None:
    defs = single(
        attribute("interests", "string_set", enrichment("split", evt("csv"), delimiter=",")),
        attribute("path", "string_array", enrichment("split", evt("csv"), delimiter=",")),
    )
    v = Visitor(defs)
    v.send("view", T0, csv="shoes, bags,,shoes ,hats")
    assert v.value("interests") == ["bags", "hats", "shoes"]
    assert v.value("path") == ["shoes", "bags", "shoes", "hats"]
    v.send("view", T0 + MINUTE, csv=42)  # not a string: nothing changes
    assert v.value("path") == ["shoes", "bags", "shoes", "hats"]


def test_set_to_difference_of_sets_and_arrays() -> None:
    defs = single(
        attribute(
            "wanted", "string_set", enrichment("set_to_difference", evt("all"), evt("owned"))
        ),
        attribute("left", "number_array", enrichment("set_to_difference", evt("a"), evt("b"))),
    )
    v = Visitor(defs)
    v.send("view", T0, all=["a", "b", "c", "b"], owned=["b"], a=[1, 3, 1, 2, 3], b=[3])
    assert v.value("wanted") == ["a", "c"]
    assert v.value("left") == [1.0, 1.0, 2.0]  # Tealium: duplicates of the first array kept
    v.send("view", T0 + MINUTE, all=["x"])  # no second list: nothing removed
    assert v.value("wanted") == ["x"]


def test_remove_entries_first_last_or_all() -> None:
    def remover(attribute_id: str, **extra: str) -> dict[str, object]:
        return attribute(
            attribute_id,
            "string_array",
            enrichment("set", evt("items"), when="new_visitor"),
            enrichment("remove_entries", evt("drop"), rule=[[is_event("drop")]], **extra),
        )

    defs = single(
        remover("all"), remover("first", occurrence="first"), remover("last", occurrence="last")
    )
    v = Visitor(defs)
    v.send("view", T0, items=["a", "x", "b", "x", "c", "x"])
    v.send("drop", T0 + MINUTE, drop="x")
    assert v.value("all") == ["a", "b", "c"]
    assert v.value("first") == ["a", "b", "x", "c", "x"]
    assert v.value("last") == ["a", "x", "b", "x", "c"]
    v.send("drop", T0 + 2 * MINUTE, drop="zzz")
    assert v.value("all") == ["a", "b", "c"]


def test_top_keys_of_a_tally() -> None:
    defs = single(
        attribute("brands", "tally", enrichment("increment_tally", evt("brand"))),
        attribute("top_brands", "string_set", enrichment("top_keys", attr("brands"), count=2)),
    )
    v = Visitor(defs)
    for brand in ["nike", "adidas", "puma", "nike", "puma", "asics"]:
        v.send("view", T0 + len(v.outcomes) * MINUTE, brand=brand)
    assert v.value("top_brands") == ["nike", "puma"]
    v.send("view", T0 + DAY, brand="adidas")  # adidas ties puma at 2: alphabetical wins
    assert v.value("top_brands") == ["adidas", "nike"]


def test_increment_tally_by_tally() -> None:
    defs = single(
        attribute(
            "visit_views", "tally", enrichment("increment_tally", evt("category")), scope="visit"
        ),
        attribute(
            "lifetime_views",
            "tally",
            enrichment("increment_tally_by_tally", attr("visit_views"), when="visit_ended"),
        ),
    )
    v = Visitor(defs)
    v.send("view", T0, category="shoes")
    v.send("view", T0 + MINUTE, category="shoes")
    v.send("view", T0 + 2 * MINUTE, category="bags")
    v.end(T0 + HOUR)
    v.send("view", T0 + DAY, category="bags")
    v.end(T0 + DAY + HOUR)
    assert v.value("lifetime_views") == {"shoes": 2.0, "bags": 2.0}


def test_rolling_sum_average_and_max_over_timeline_entries() -> None:
    def rolling(attribute_id: str, kind: str) -> dict[str, object]:
        return attribute(attribute_id, "number", enrichment(kind, attr("orders"), key="total"))

    defs = single(
        attribute("total", "number", enrichment("set", evt("total")), scope="visit"),
        attribute(
            "orders",
            "timeline",
            enrichment("update_timeline", capture=["total"], rule=[[is_event("purchase")]]),
        ),
        rolling("sum", "set_rolling_sum"),
        rolling("mean", "set_rolling_average"),
        rolling("most", "set_rolling_max"),
    )
    v = Visitor(defs)
    v.send("view", T0)
    assert v.value("sum") is None  # no timeline yet
    v.send("purchase", T0 + 30)  # an entry without a total: nothing to average
    assert v.value("sum") == 0.0
    assert v.value("mean") is None and v.value("most") is None
    for n, total in enumerate([10.0, 30.0, 20.0], start=1):
        v.send("purchase", T0 + n * MINUTE, total=total)
    assert (v.value("sum"), v.value("mean"), v.value("most")) == (60.0, 20.0, 30.0)


def test_expire_timeline_entries_at_the_start_of_a_visit() -> None:
    defs = single(
        attribute(
            "logins",
            "timeline",
            enrichment("expire_timeline_entries", when="new_visit", count=7, unit="days"),
            enrichment("update_timeline", rule=[[is_event("login")]]),
        ),
        attribute("recent", "number", enrichment("set_size", attr("logins"))),
    )
    v = Visitor(defs)
    v.send("login", T0)
    v.send("login", T0 + 3 * DAY)
    v.send("login", T0 + 6 * DAY)
    assert v.value("recent") == 3.0
    v.send("view", T0 + 9 * DAY)  # a new visit: the login of day 0 is over 7 days old
    assert v.value("recent") == 2.0
    assert [entry[0] for entry in v.value("logins")] == [T0 + 3 * DAY, T0 + 6 * DAY]
