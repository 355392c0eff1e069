"""Regex rules use RE2: linear-time matching, and patterns RE2 cannot compile refused with
their path (back-references, look-around), offline as on the server."""

from __future__ import annotations

from typing import Any

import pytest

from crowd.definitions.loader import definitions_from_dict
from crowd.definitions.patterns import compile_pattern, pattern_error, search
from crowd.definitions.validator import validate

CATASTROPHIC = "(a+)+$"
CONDITION_PATH = "attributes[1].enrichments[0].rule.groups[0].conditions[0]"


def regex_document(pattern: str, *, ignore_case: bool = False) -> dict[str, Any]:
    return {
        "attributes": [
            {"id": "nickname", "scope": "visitor", "type": "string"},
            {
                "id": "matched",
                "scope": "visitor",
                "type": "badge",
                "enrichments": [
                    {
                        "id": "assign",
                        "kind": "assign_badge",
                        "when": "any_event",
                        "rule": {
                            "groups": [
                                {
                                    "conditions": [
                                        {
                                            "input": {"attribute": "nickname"},
                                            "operator": "matches_regex",
                                            "value": {"constant": pattern},
                                            "ignore_case": ignore_case,
                                        }
                                    ]
                                }
                            ]
                        },
                    }
                ],
            },
        ]
    }


def test_the_catastrophic_pattern_is_valid_and_matches_a_huge_input_in_linear_time() -> None:
    assert validate(definitions_from_dict(regex_document(CATASTROPHIC))) == []
    pattern = compile_pattern(CATASTROPHIC)
    assert pattern is not None
    # Python's re would backtrack for longer than the test timeout on this input.
    assert search(pattern, "a" * 100_000 + "!") is False
    assert search(pattern, "b" + "a" * 100_000) is True


def test_search_semantics_and_case_folding() -> None:
    pattern = compile_pattern(r"step-\d+$")
    assert pattern is not None
    assert search(pattern, "/checkout/step-12")
    assert not search(pattern, "/checkout/step-12/done")
    folded = compile_pattern("^LUGGAGE", ignore_case=True)
    assert folded is not None and search(folded, "luggage and bags")


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        (r"(a)\1", "back-references"),
        ("foo(?=bar)", "look-ahead"),
        ("(?<!x)foo", "look-behind"),
        ("(unclosed", "missing )"),
    ],
)
def test_patterns_re2_cannot_compile_are_refused_with_their_path(pattern: str, words: str) -> None:
    errors = validate(definitions_from_dict(regex_document(pattern)))
    assert [error.path for error in errors] == [f"{CONDITION_PATH}.value.constant.string_value"]
    assert errors[0].message.startswith("invalid regular expression: ")
    assert words in errors[0].message
    # ... and the engine, given such a pattern anyway (e.g. from event data), matches nothing.
    assert compile_pattern(pattern) is None
    assert pattern_error(pattern) == errors[0].message


def test_ignore_case_patterns_are_checked_too() -> None:
    errors = validate(definitions_from_dict(regex_document(r"(A)\1", ignore_case=True)))
    assert [error.path for error in errors] == [f"{CONDITION_PATH}.value.constant.string_value"]
