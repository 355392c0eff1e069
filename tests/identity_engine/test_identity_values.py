"""Visitor-ID values: validation rules, blocked values, already-set values, notes and trace."""

from __future__ import annotations

from typing import Any

import pytest

from crowd.profile.v1 import event_pb2, trace_pb2
from tests.engine.helpers import T0, Visitor, attribute, enrichment, evt, single

IO = event_pb2.IdentityOutcome


def email_defs(identity: dict[str, Any] | None = None) -> Any:
    email = attribute("email", "visitor_id", enrichment("set", evt("email")))
    if identity is not None:
        email["identity"] = identity
    return single(email)


@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        ("abc12", IO.IDENTITY_OUTCOME_INVALID),  # 5 characters
        ("x" * 256, IO.IDENTITY_OUTCOME_INVALID),  # 256 characters
        ("aaaaaaaa", IO.IDENTITY_OUTCOME_INVALID),  # 1 distinct
        ("abababab", IO.IDENTITY_OUTCOME_INVALID),  # 2 distinct
        ("anonymous", IO.IDENTITY_OUTCOME_BLOCKED),
        ("UNDEFINED", IO.IDENTITY_OUTCOME_BLOCKED),  # case-insensitive
        ("Test@Test.com", IO.IDENTITY_OUTCOME_BLOCKED),
        ("00000000-0000-0000-0000-000000000000", IO.IDENTITY_OUTCOME_BLOCKED),
        ("null", IO.IDENTITY_OUTCOME_BLOCKED),
        ("0", IO.IDENTITY_OUTCOME_BLOCKED),
    ],
)
def test_an_unusable_value_is_not_set_and_is_reported(value: str, outcome: int) -> None:
    v = Visitor(email_defs())
    result = v.send("login", T0, email=value)
    assert v.value("email") is None
    assert [(n.attribute_id, n.outcome) for n in result.identity_notes] == [("email", outcome)]
    assert result.identity_notes[0].value == value[:64]
    kinds = [r.kind for r in result.trace]
    assert trace_pb2.TRACE_ENTRY_KIND_IDENTITY_IGNORED in kinds


@pytest.mark.parametrize("value", ["abcdef", "x" * 253 + "yz", "aab@b.co", "ANONYMOUS1"])
def test_a_valid_value_sets_the_attribute_case_sensitively(value: str) -> None:
    v = Visitor(email_defs())
    result = v.send("login", T0, email=value)
    assert v.value("email") == value
    assert result.identity_notes == []
    assert v.profile.value_times["email"] == T0


def test_a_visitor_id_never_changes_and_a_new_value_is_noted() -> None:
    v = Visitor(email_defs())
    v.send("login", T0, email="ann@example.com")
    same = v.send("login", T0 + 1, email="ann@example.com")
    assert same.identity_notes == []
    other = v.send("login", T0 + 2, email="bob@example.com")
    assert v.value("email") == "ann@example.com"
    assert [n.outcome for n in other.identity_notes] == [IO.IDENTITY_OUTCOME_ALREADY_SET]


def test_custom_blocked_values_extend_the_defaults() -> None:
    v = Visitor(email_defs({"blocked_values": ["Guest@Shop.com"]}))
    assert v.send("a", T0, email="guest@shop.com").identity_notes[0].outcome == (
        IO.IDENTITY_OUTCOME_BLOCKED
    )
    assert v.send("b", T0 + 1, email="anonymous").identity_notes[0].outcome == (
        IO.IDENTITY_OUTCOME_BLOCKED
    )


def test_replacing_the_default_blocked_values() -> None:
    v = Visitor(
        email_defs({"blocked_values": ["guest@shop.com"], "replace_default_blocked_values": True})
    )
    assert v.send("a", T0, email="guest@shop.com").identity_notes[0].outcome == (
        IO.IDENTITY_OUTCOME_BLOCKED
    )
    assert v.send("b", T0 + 1, email="anonymous").identity_notes == []
    assert v.value("email") == "anonymous"
