"""The WHEN_ANY_EVENT steps an event visits (profile_service/engine/step_index.py): a step is
left out only when its rule cannot match the event's name and assigned fields, so every
step left out evaluates to false, over random events, for rules of every shape the index
reads (event name, assigned fields, OR groups, contradictions, ignore_case, no rule)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from profile_service.engine.context import EvalContext
from profile_service.engine.plan import plan_for
from profile_service.engine.state import ProfileState
from tests.engine.helpers import T0, attribute, compile_doc, cond, const, enrichment, event, evt
from tests.engine.helpers import is_event as named

NAMES = ("view", "buy", "View")
FIELDS = ("a", "b", "c")


def _assigned(field: str) -> dict[str, Any]:
    return cond(evt(field), "is_assigned")


RULES: list[list[list[dict[str, Any]]] | None] = [
    None,
    [[named("view")]],
    [[named("view"), _assigned("a")]],
    [[_assigned("a")]],
    [[_assigned("a"), _assigned("b")]],
    [[_assigned("a")], [named("buy")]],
    [[named("view"), named("buy")]],  # never matches
    [[named("view"), named("buy")], [_assigned("c")]],
    [[cond(evt("event.name"), "equals", const("view"), ignore_case=True), _assigned("b")]],
    [[cond(evt("a"), "equals", const("x"))]],
    [[named("buy"), cond(evt("b"), "is_not_assigned")]],
]

DEFS = compile_doc(
    {
        "attributes": [
            attribute(f"n{i}", "number", enrichment("increment", const(1), rule=rule))
            for i, rule in enumerate(RULES)
        ]
    }
)

_EVENTS = st.tuples(
    st.sampled_from(NAMES),
    st.dictionaries(st.sampled_from(FIELDS), st.sampled_from([None, "x", "y", 1.0])),
)


@settings(max_examples=200, deadline=None)
@given(_EVENTS)
def test_every_step_left_out_cannot_match(shape: tuple[str, dict[str, Any]]) -> None:
    name, data = shape
    plan = plan_for(DEFS)
    ev = event(name, T0, data)
    c = EvalContext(ProfileState("p", T0, T0), ev, T0, T0, plan.limits)
    visited = plan.steps_for_event(ev)
    matching = [s for s in plan.any_event.steps if s.rule is None or s.rule(c)]
    assert [s for s in visited if s.rule is None or s.rule(c)] == matching
    assert list(visited) == [s for s in plan.any_event.steps if s in visited]  # order kept
    assert plan.steps_for_event(ev) is visited  # worked out once per name and fields


def test_steps_that_cannot_match_are_left_out() -> None:
    plan = plan_for(DEFS)
    visited = plan.steps_for_event(event("View", T0, {"c": "x"}))
    # No rule; a non-IS_ASSIGNED condition on a field; "c" assigned in the second group.
    assert [s.attribute_id for s in visited] == ["n0", "n7", "n9"]
