"""Conditions against a constant are compiled with the constant converted once (operators.py:
text and boolean EQUALS, orderings against a number): over random inputs they agree with the
general comparison (`values_equal`, `_ordered_pair`) they stand for."""

from __future__ import annotations

import operator as op
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from profile_service.engine.context import EvalContext
from profile_service.engine.operators import _ordered_pair, values_equal
from profile_service.engine.plan import plan_for
from profile_service.engine.state import ProfileState
from tests.engine.helpers import T0, attr, attribute, compile_doc, cond, const, event

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**53), max_value=2**53),  # dates
    st.sampled_from(["true", "FALSE", " true ", "yes", "", "12", "1e3", "2023-11-14", "abc"]),
    st.lists(st.sampled_from(["true", "a"]), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.floats(0, 5), max_size=2),
)
_CONSTANTS = st.one_of(st.booleans(), st.sampled_from([0.0, 12.0, -3.5, "12", "true", "abc"]))
_OPERATORS = {
    "equals": None,
    "not_equals": None,
    "less_than": op.lt,
    "greater_than_or_equal": op.ge,
}


def _predicate_on(operator: str, constant: Any, value: Any) -> bool:
    defs = compile_doc(
        {
            "attributes": [attribute("x", "string")],  # any stored value is read as it is
            "event_feeds": [
                {
                    "id": "f",
                    "rule": {
                        "groups": [{"conditions": [cond(attr("x"), operator, const(constant))]}]
                    },
                }
            ],
        }
    )
    state = ProfileState(profile_id="p", created_ms=T0, updated_ms=T0)
    if value is not None:
        state.attributes["x"] = value
    c = EvalContext(state, event("view", T0), T0, T0, defs.limits)
    predicate = plan_for(defs).feeds[0].predicate
    assert predicate is not None
    return predicate(c)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(_OPERATORS)), _CONSTANTS, _VALUES)
def test_a_condition_against_a_constant_agrees_with_the_general_comparison(
    operator: str, constant: Any, value: Any
) -> None:
    compare = _OPERATORS[operator]
    if compare is None:
        expected = values_equal(value, constant, False)
        if operator == "not_equals":
            expected = not expected
    else:
        pair = _ordered_pair(value, constant, ())
        expected = pair is not None and compare(pair[0], pair[1])
    assert _predicate_on(operator, constant, value) is expected
