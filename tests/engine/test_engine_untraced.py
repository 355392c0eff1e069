"""``process_event(..., trace=False)`` (a visitor whose trace history nobody keeps) builds no
trace records and changes nothing else: the same states and outcomes as the traced path,
over random journeys of the seed scenario (purchases, VIP, visit ends that assign Cart
Abandoner and fire the Braze action, bad values that are noted)."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from profile_service.engine.processor import process_event
from profile_service.engine.state import Outcome, ProfileState
from tests.engine.helpers import HOUR, MINUTE, T0, event
from tests.engine.test_engine_seed_scenario import seed_defs

_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["page_view", "cart_add", "purchase", "login"]),
        st.sampled_from([MINUTE, 10 * MINUTE, 2 * HOUR]),  # 2 h: the visit has ended
        st.sampled_from([None, 0.5, 120.0, 600.0, "not a number"]),
    ),
    min_size=1,
    max_size=12,
)


def _comparable(outcome: Outcome) -> dict[str, Any]:
    """Everything an outcome says but its trace (the state as stored)."""
    fields = dataclasses.asdict(dataclasses.replace(outcome, trace=[], traced=True))
    fields["state"] = outcome.state.to_bytes()
    return fields


@settings(max_examples=60, deadline=None)
@given(_STEPS)
def test_an_untraced_event_has_the_same_outcome_without_trace_records(
    steps: list[tuple[str, int, Any]],
) -> None:
    defs = seed_defs()
    traced: ProfileState | None = None
    untraced: ProfileState | None = None
    at = T0
    for n, (name, gap, amount) in enumerate(steps):
        at += gap
        data = {"customer_id": "cust-42"} if name == "login" else {}
        if amount is not None:
            data["order_total"] = amount
        ev = event(name, at, data, event_id=f"e{n}")
        with_trace = process_event(defs, traced, ev, at)
        without = process_event(defs, untraced, ev, at, trace=False)
        assert with_trace.trace  # at least EVENT_RECEIVED
        assert without.trace == [] and not without.traced
        assert _comparable(without) == _comparable(with_trace)
        # Each path goes on from its own state, parsed back as the storage layer does.
        traced = ProfileState.from_bytes(with_trace.state.to_bytes())
        untraced = ProfileState.from_bytes(without.state.to_bytes())
