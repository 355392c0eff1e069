"""Audience membership: re-evaluation after enrichments, and the transitions it causes."""

from __future__ import annotations

from dataclasses import dataclass, field

from profile_service.engine.context import EvalContext
from profile_service.engine.plan import EnginePlan


@dataclass(slots=True)
class Transitions:
    """Audiences joined and left by one re-evaluation, in document order."""

    joined: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    """Memberships of audiences no longer defined: removed without firing anything."""


def evaluate_audiences(plan: EnginePlan, c: EvalContext) -> Transitions:
    """Re-evaluate every audience against the context's state and update the membership
    (``state.audiences``: id -> when joined)."""
    memberships = c.state.audiences
    transitions = Transitions()
    for audience in plan.audiences:
        member = audience.predicate(c)
        if member:
            if audience.id not in memberships:
                memberships[audience.id] = c.now_ms
                transitions.joined.append(audience.id)
        elif audience.id in memberships:
            del memberships[audience.id]
            transitions.left.append(audience.id)
    for audience_id in [a for a in memberships if a not in plan.audience_by_id]:
        del memberships[audience_id]
        transitions.dropped.append(audience_id)
    return transitions


def is_member(plan: EnginePlan, c: EvalContext, audience_id: str) -> bool:
    """Evaluate one audience now, without changing the stored membership."""
    audience = plan.audience_by_id.get(audience_id)
    return audience is not None and audience.predicate(c)
