"""Stitching in the engine: merge rules, the merged profile, audiences and triggers after a
merge, guardrails, chains, determinism; validation of merge rules and identity settings."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crowd.definitions.loader import definitions_from_dict
from crowd.definitions.validator import validate
from crowd.profile.v1 import definitions_pb2 as pb
from crowd.profile.v1 import event_pb2, trace_pb2
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.merge_rules import MergeSpec, Side, merge_values
from profile_service.engine.state import ProfileState
from profile_service.engine.stitching import (
    check_stitch,
    merge_profiles,
    refusal_record,
    survivor_first,
)
from profile_service.engine.values import MISSING
from tests.engine.helpers import (
    T0,
    Visitor,
    attr,
    attribute,
    compile_doc,
    cond,
    const,
    enrichment,
    evt,
)

IO = event_pb2.IdentityOutcome
M = pb.MergeRule
T = pb.AttributeType


def state(pid: str, created: int, **attrs: Any) -> ProfileState:
    times = attrs.pop("_times", {})
    return ProfileState(
        profile_id=pid,
        created_ms=created,
        updated_ms=created,
        visitor_ids=[pid],
        attributes=attrs,
        value_times=times,
    )


def defs_of(*attributes: dict[str, Any], **document: Any) -> CompiledDefinitions:
    return compile_doc({"attributes": list(attributes), **document})


def plain(attribute_id: str, kind: str, rule: str | None = None, **extra: Any) -> dict[str, Any]:
    doc = attribute(attribute_id, kind)
    if rule:
        doc["merge_rule"] = rule
    doc.update(extra)
    return doc


def merge(defs: CompiledDefinitions, a: ProfileState, b: ProfileState, **kw: Any) -> Any:
    survivor, replaced = survivor_first(a, b)
    return merge_profiles(
        defs,
        survivor,
        replaced,
        attribute_id=kw.get("attribute_id", "email"),
        value=kw.get("value", "ann@example.com"),
        event=kw.get("event"),
        stitch_id=kw.get("stitch_id", "s1"),
        now_ms=kw.get("now_ms", T0 + 10_000),
    )


CASES: list[tuple[str, str | None, Any, Any, Any]] = [
    # type, rule, survivor value (older profile, enriched at T0+1), replaced (T0+2), merged
    ("number", None, 1.0, 2.0, 2.0),  # default NEWER
    ("number", "older", 1.0, 2.0, 1.0),
    ("number", "max", 5.0, 2.0, 5.0),
    ("number", "min", 5.0, 2.0, 2.0),
    ("number", "sum", 5.0, 2.0, 7.0),
    ("number", "sum", MISSING, 2.0, 2.0),
    ("date", "max", T0, T0 + 5, T0 + 5),
    ("string", None, "old", "new", "new"),
    ("boolean", None, False, True, True),  # default OR
    ("boolean", "and", True, False, False),
    ("badge", None, True, MISSING, True),
    ("badge", "and", True, MISSING, MISSING),
    ("string_set", None, ["b", "c"], ["a", "b"], ["a", "b", "c"]),
    ("string_array", None, ["x", "y"], ["y", "z"], ["x", "y", "y", "z"]),
    ("tally", None, {"a": 1.0, "b": 2.0}, {"b": 3.0}, {"a": 1.0, "b": 5.0}),
    ("tally", "union_max", {"a": 1.0, "b": 2.0}, {"b": 3.0}, {"a": 1.0, "b": 3.0}),
    ("tally", "union_min", {"a": 1.0, "b": 2.0}, {"b": 3.0}, {"a": 1.0, "b": 2.0}),
]


@pytest.mark.parametrize(("kind", "rule", "old", "new", "expected"), CASES)
def test_every_rule_on_both_orders_of_arrival(
    kind: str, rule: str | None, old: Any, new: Any, expected: Any
) -> None:
    defs = defs_of(plain("x", kind, rule))
    older = state("p-old", T0, _times={"x": T0 + 1})
    newer = state("p-new", T0 + 1, _times={"x": T0 + 2})
    if old is not MISSING:
        older.attributes["x"] = old
    if new is not MISSING:
        newer.attributes["x"] = new
    for a, b in ((older, newer), (newer, older)):  # either profile's event causes the stitch
        merged = merge(defs, a, b).state
        assert merged.profile_id == "p-old"
        assert merged.attributes.get("x", MISSING) == expected


def test_newer_compares_value_times_not_profile_times() -> None:
    defs = defs_of(plain("x", "string"))
    survivor = state("p1", T0, x="recent", _times={"x": T0 + 50})
    replaced = state("p2", T0 + 1, x="stale", _times={"x": T0 + 5})
    replaced.updated_ms = T0 + 100
    assert merge(defs, survivor, replaced).state.attributes["x"] == "recent"


def test_funnel_takes_each_step_earliest_and_completion_from_either() -> None:
    funnel = attribute(
        "f",
        "funnel",
        enrichment("funnel_step", key="view"),
        enrichment("funnel_step", key="buy"),
    )
    defs = defs_of(funnel)
    a = state("p1", T0, f={"steps": [["view", T0 + 9, {}]], "completed": False})
    b = state(
        "p2", T0 + 1, f={"steps": [["view", T0 + 3, {}], ["buy", T0 + 4, {}]], "completed": True}
    )
    merged = merge(defs, a, b).state.attributes["f"]
    assert merged == {"steps": [["view", T0 + 3, {}], ["buy", T0 + 4, {}]], "completed": True}


def test_timeline_keeps_both_in_time_order_newest_within_limit() -> None:
    defs = defs_of(plain("t", "timeline"), settings={"max_collection_size": 3})
    a = state("p1", T0, t=[[T0 + 1, {}], [T0 + 5, {}]])
    b = state("p2", T0 + 1, t=[[T0 + 2, {}], [T0 + 7, {}]])
    assert merge(defs, a, b).state.attributes["t"] == [[T0 + 2, {}], [T0 + 5, {}], [T0 + 7, {}]]


def test_conflicting_secondary_ids_survivor_keeps_its_value_others_stay_in_replaces() -> None:
    defs = defs_of(plain("email", "visitor_id"), plain("phone", "visitor_id"))
    a = state("p1", T0, email="ann@example.com", phone="+15550001", _times={"phone": T0 + 9})
    b = state("p2", T0 + 1, email="ann@example.com", phone="+15550002", _times={"phone": T0})
    merged = merge(defs, b, a).state
    assert merged.attributes["phone"] == "+15550001"
    assert merged.replaces[-1]["identities"] == {"email": "ann@example.com", "phone": "+15550002"}


@given(
    st.dictionaries(
        st.sampled_from(["n", "s", "b", "set", "tally"]),
        st.integers(min_value=0, max_value=5),
        max_size=5,
    )
)
def test_merging_with_an_empty_profile_gives_the_profile(seed: dict[str, int]) -> None:
    defs = defs_of(
        plain("n", "number", "sum"),
        plain("s", "string"),
        plain("b", "boolean", "and"),
        plain("set", "string_set"),
        plain("tally", "tally"),
    )
    values = {
        "n": float(seed.get("n", 0)),
        "s": f"v{seed.get('s', 0)}",
        "b": bool(seed.get("b", 0) % 2),
        "set": sorted({f"k{i}" for i in range(seed.get("set", 0))}),
        "tally": {f"k{i}": float(i + 1) for i in range(seed.get("tally", 0))},
    }
    full = state("p1", T0, **{k: values[k] for k in seed})
    empty = state("p2", T0 + 1)
    merged = merge(defs, full, empty).state
    assert merged.attributes == full.attributes


@given(
    st.floats(-1e6, 1e6),
    st.floats(-1e6, 1e6),
    st.sampled_from([M.MERGE_RULE_MAX, M.MERGE_RULE_MIN, M.MERGE_RULE_SUM]),
)
def test_symmetric_number_rules_commute(x: float, y: float, rule: int) -> None:
    spec = MergeSpec(T.ATTRIBUTE_TYPE_NUMBER, 100)
    a, b = Side(x, T0, True), Side(y, T0 + 1, False)
    assert merge_values(rule, a, b, spec) == merge_values(rule, b, a, spec)


@given(st.lists(st.text(max_size=3), max_size=6), st.lists(st.text(max_size=3), max_size=6))
def test_set_union_commutes(x: list[str], y: list[str]) -> None:
    spec = MergeSpec(T.ATTRIBUTE_TYPE_STRING_SET, 100)
    a, b = Side(sorted(set(x)), T0, True), Side(sorted(set(y)), T0 + 1, False)
    assert merge_values(M.MERGE_RULE_UNION, a, b, spec) == sorted(set(x) | set(y))
    assert merge_values(M.MERGE_RULE_UNION, a, b, spec) == merge_values(
        M.MERGE_RULE_UNION, b, a, spec
    )


def test_profile_fields_merge_and_inputs_are_not_mutated() -> None:
    defs = defs_of(plain("email", "visitor_id"), plain("n", "number", "sum"))
    a = state("p1", T0, email="ann@example.com", n=1.0)
    a.visit_count, a.event_count, a.first_visit_ms, a.last_visit_ms = 2, 5, T0, T0 + 50
    b = state("p2", T0 + 1, n=2.0)
    b.visit_count, b.event_count, b.first_visit_ms, b.last_visit_ms = 1, 3, T0 + 1, T0 + 90
    before = (copy.deepcopy(a), copy.deepcopy(b))
    outcome = merge(defs, a, b)
    assert (a, b) == before
    merged = outcome.state
    assert (merged.visit_count, merged.event_count) == (3, 8)
    assert (merged.first_visit_ms, merged.last_visit_ms, merged.created_ms) == (T0, T0 + 90, T0)
    assert merged.visitor_ids == ["p1", "p2"]
    stitched = [r for r in outcome.trace if r.kind == trace_pb2.TRACE_ENTRY_KIND_VISITOR_STITCHED]
    assert len(stitched) == 1
    assert stitched[0].details["survivor"] == "p1"
    assert stitched[0].details["replaced"] == "p2"
    assert stitched[0].details["rules"] == {"email": "older", "n": "sum"}


def test_chain_of_three_lists_every_replaced_profile_and_id() -> None:
    defs = defs_of(plain("email", "visitor_id"))
    a, b, c = state("a", T0), state("b", T0 + 1), state("c", T0 + 2)
    b.attributes["email"] = "bob@example.com"
    ab = merge(defs, a, b, stitch_id="s1").state
    abc = merge(defs, c, ab, stitch_id="s2").state
    assert abc.profile_id == "a"
    assert [r["profile_id"] for r in abc.replaces] == ["b", "c"]
    assert abc.visitor_ids == ["a", "b", "c"]
    assert abc.replaces[0]["identities"] == {"email": "bob@example.com"}


def test_merge_is_deterministic() -> None:
    defs = defs_of(plain("n", "number"), plain("tally", "tally"))
    a = state("p1", T0, n=1.0, tally={"x": 1.0})
    b = state("p2", T0 + 1, n=2.0, tally={"y": 1.0})
    a.tally_touched = {"tally": {"x": 1}}
    b.tally_touched = {"tally": {"y": 4}}
    first, second = merge(defs, a, b), merge(defs, a, b)
    assert first.state.to_bytes() == second.state.to_bytes()
    assert first.trace == second.trace


AUDIENCE_DOC: dict[str, Any] = {
    "audiences": [
        {
            "id": "big",
            "name": "Big",
            "expression": {"condition": cond(attr("n"), "greater_than_or_equal", const(10))},
        },
        {
            "id": "small",
            "name": "Small",
            "expression": {"condition": cond(attr("n"), "less_than", const(10))},
        },
    ],
    "actions": [
        {
            "id": f"on_{aud}_{trig}",
            "connector_id": "braze",
            "audience": {"audience_id": aud, "trigger": trig},
            "track_user": {"identifier": {"external_id": {"constant": {"string_value": "user-1"}}}},
        }
        for aud in ("big", "small")
        for trig in ("joined", "left")
    ],
}


def test_audiences_after_a_merge_join_leave_and_end_silently() -> None:
    defs = compile_doc({"attributes": [plain("n", "number", "sum")], **AUDIENCE_DOC})
    a = state("p1", T0, n=6.0)
    a.audiences = {"small": T0}
    b = state("p2", T0 + 1, n=6.0)
    b.audiences = {"small": T0 + 1}
    outcome = merge(defs, a, b)
    assert outcome.state.audiences == {"big": T0 + 10_000}
    assert outcome.audiences_joined == ["big"]
    assert outcome.audiences_left == ["small"]  # the survivor was in it
    keys = sorted(x.idempotency_key for x in outcome.actions)
    assert keys == ["p1:on_big_joined:stitch:s1", "p1:on_small_left:stitch:s1"]


def test_membership_of_either_profile_kept_fires_nothing_and_replaced_only_ends_silently() -> None:
    defs = compile_doc({"attributes": [plain("n", "number", "max")], **AUDIENCE_DOC})
    a = state("p1", T0, n=12.0)
    a.audiences = {"big": T0}
    b = state("p2", T0 + 1, n=3.0)
    b.audiences = {"small": T0 + 1}
    outcome = merge(defs, a, b)
    assert outcome.state.audiences == {"big": T0}
    assert (outcome.audiences_joined, outcome.audiences_left, outcome.actions) == ([], [], [])
    # The replaced profile was in "big" already: no second JOINED.
    a2 = state("p1", T0, n=3.0)
    b2 = state("p2", T0 + 1, n=12.0)
    b2.audiences = {"big": T0 + 1}
    again = merge(defs, a2, b2)
    assert again.state.audiences == {"big": T0 + 1}
    assert again.audiences_joined == [] and again.actions == []


GUARDED = {"max_values": 2, "max_profiles": 3}


def test_guardrails() -> None:
    email = plain("email", "visitor_id", identity=GUARDED)
    defs = defs_of(email)
    a = state("a", T0, email="ann@example.com")
    b = state("b", T0 + 1)
    assert check_stitch(defs, a, b, "email", "ann@example.com") is None
    blocked = check_stitch(defs, a, b, "email", "Anonymous")
    assert blocked is not None and blocked.outcome == IO.IDENTITY_OUTCOME_BLOCKED
    record = refusal_record(blocked, "b", "a")
    assert record.kind == trace_pb2.TRACE_ENTRY_KIND_STITCH_REFUSED
    a.replaces = [
        {"profile_id": "x", "visitor_ids": ["x"], "identities": {"email": "x@example.com"}}
    ]
    b.attributes["email"] = "bob@example.com"
    too_many = check_stitch(defs, a, b, "email", "bob@example.com")
    assert too_many is not None and too_many.outcome == IO.IDENTITY_OUTCOME_VALUE_LIMIT
    b.attributes.clear()
    b.replaces = [{"profile_id": "y", "visitor_ids": ["y"], "identities": {}}]
    profiles = check_stitch(defs, a, b, "email", "ann@example.com")
    assert profiles is not None and profiles.outcome == IO.IDENTITY_OUTCOME_PROFILE_LIMIT


def test_recalculate_reruns_the_attribute_enrichments_with_the_event() -> None:
    defs = defs_of(
        attribute("last", "string", enrichment("set", evt("page"))) | {"merge_rule": "recalculate"},
        plain("email", "visitor_id"),
    )
    from tests.engine.helpers import event

    a = state("p1", T0, last="one")
    b = state("p2", T0 + 1, last="two")
    merged = merge(defs, a, b, event=event("view", T0 + 5, {"page": "three"})).state
    assert merged.attributes["last"] == "three"
    assert merge(defs, a, b).state.attributes["last"] == "two"  # no event: NEWER


def test_value_times_follow_a_visitor_through_events() -> None:
    defs = defs_of(attribute("n", "number", enrichment("increment", const(1))))
    v = Visitor(defs)
    v.send("a", T0)
    v.send("b", T0 + 7)
    assert v.profile.value_times == {"n": T0 + 7}


def _errors(attribute_doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (e.path, e.message)
        for e in validate(definitions_from_dict({"attributes": [attribute_doc]}))
    ]


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("string", "sum"),
        ("number", "union"),
        ("tally", "funnel"),
        ("funnel", "timeline"),
        ("string", "union_max"),
        ("visitor_id", "recalculate"),
    ],
)
def test_a_rule_not_fitting_the_type_is_refused(kind: str, rule: str) -> None:
    errors = _errors(plain("x", kind, rule))
    assert [path for path, _ in errors] == ["attributes[0].merge_rule"]


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("tally", "union_min"),
        ("funnel", "funnel"),
        ("timeline", "timeline"),
        ("string", "recalculate"),
        ("badge", "and"),
    ],
)
def test_a_fitting_rule_is_accepted(kind: str, rule: str) -> None:
    assert _errors(plain("x", kind, rule)) == []


def test_identity_settings_validation() -> None:
    assert (
        _errors(plain("x", "visitor_id", identity={"max_values": 3, "blocked_values": ["guest"]}))
        == []
    )
    assert [p for p, _ in _errors(plain("x", "string", identity={"max_values": 3}))] == [
        "attributes[0].identity"
    ]
    paths = [
        p
        for p, _ in _errors(
            plain(
                "x",
                "visitor_id",
                identity={"max_values": -1, "max_profiles": -2, "blocked_values": [""]},
            )
        )
    ]
    assert paths == [
        "attributes[0].identity.max_values",
        "attributes[0].identity.max_profiles",
        "attributes[0].identity.blocked_values[0]",
    ]
