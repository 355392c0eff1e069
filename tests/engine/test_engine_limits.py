"""Limits: over-long strings are not saved, collections are trimmed, timelines keep 100."""

from __future__ import annotations

from crowd.profile.v1 import trace_pb2
from tests.engine.helpers import (
    DAY,
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

K = trace_pb2.TraceEntryKind
LIMITS = {"max_string_length": 10, "max_collection_size": 3}


def test_a_string_longer_than_the_limit_is_not_saved() -> None:
    defs = single(
        attribute("name", "string", enrichment("set", evt("who"))),
        attribute("both", "string", enrichment("join", attr("name"), const("xx"), delimiter="-")),
        settings=LIMITS,
    )
    v = Visitor(defs)
    v.send("view", T0, who="0123456")
    assert (v.value("name"), v.value("both")) == ("0123456", "0123456-xx")  # exactly 10
    outcome = v.send("view", T0 + MINUTE, who="0123456789A")
    assert v.value("name") == "0123456"  # not saved: the old value stays
    assert "name" not in outcome.changed_attributes
    notes = [r for r in outcome.trace if r.message.startswith("not saved")]
    assert notes and "name" in notes[0].message
    v.send("view", T0 + 2 * MINUTE, who="01234567")
    assert v.value("both") == "0123456-xx"  # the joined result (11) is not saved either


def test_collections_are_trimmed_to_the_limit() -> None:
    defs = single(
        attribute("pages", "string_array", enrichment("append", evt("page"))),
        attribute("tags", "string_set", enrichment("add_to_set", evt("tag"))),
        attribute("stored", "string_set", enrichment("store_as_set", evt("all"))),
        attribute("brands", "tally", enrichment("increment_tally", evt("brand"))),
        settings=LIMITS,
    )
    v = Visitor(defs)
    v.send("view", T0, page=["a", "b"], tag=["d", "c"], all=["e", "b", "d", "a", "c"])
    v.send("view", T0 + MINUTE, page=["c", "d"], tag=["b", "a", "too-long-for-a-set"])
    assert v.value("pages") == ["b", "c", "d"]  # the newest items are kept
    assert v.value("tags") == ["b", "c", "d"]  # new members only while there is room
    assert v.value("stored") == ["a", "b", "c"]  # over the limit: alphabetically first
    for i, brand in enumerate(["x", "y", "z", "w", "x"]):
        v.send("buy", T0 + (2 + i) * MINUTE, brand=brand)
    assert v.value("brands") == {"x": 2.0, "y": 1.0, "z": 1.0}  # no new key when full


def test_timeline_keeps_its_newest_100_entries_within_365_days() -> None:
    defs = single(attribute("log", "timeline", enrichment("update_timeline")))
    v = Visitor(defs)
    for i in range(105):
        v.send("view", T0 + i * MINUTE)
    log = v.value("log")
    assert len(log) == 100
    assert log[0][0] == T0 + 5 * MINUTE and log[-1][0] == T0 + 104 * MINUTE
    v.send("view", T0 + 366 * DAY)
    assert v.value("log") == [[T0 + 366 * DAY, {}]]
