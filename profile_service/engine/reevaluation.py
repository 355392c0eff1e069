"""Re-evaluating audiences without an event: backfills and time-based re-evaluation.

Two callers change memberships without an event:

- a **backfill** evaluates the audiences a published version added or changed against every
  existing profile; whether its joins (and leaves) fire the audience's JOINED / LEFT actions
  is the audience's ``backfill_fires_actions`` choice;
- **time-based re-evaluation** re-evaluates every audience when a condition that compares a
  date with *now* can flip (`time_dependence`); its transitions fire actions like an event's.

Pure, like the rest of the engine: the state passed in is updated in place and returned as
``Outcome.state``; re-evaluating a profile whose memberships already match changes nothing
(no transition, no action), so a backfill that redoes a profile after a crash is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.audiences import Transitions
from profile_service.engine.context import EvalContext
from profile_service.engine.outcomes import fire_and_record, record_transitions
from profile_service.engine.plan import EnginePlan, plan_for
from profile_service.engine.state import Outcome, ProfileState

__all__ = ["reevaluate_audiences", "reevaluation_key"]


def reevaluation_key(profile_id: str, action_id: str, cause: str) -> str:
    """Idempotency key of an action fired by a re-evaluation: ``cause`` names it stably
    (``backfill:<version>`` or ``time:<due ms>``), so a recomputed commit keeps the key."""
    return f"{profile_id}:{action_id}:{cause}"


def _transitions(
    plan: EnginePlan, c: EvalContext, audience_ids: Collection[str] | None
) -> Transitions:
    memberships = c.state.audiences
    transitions = Transitions()
    for audience in plan.audiences:
        if audience_ids is not None and audience.id not in audience_ids:
            continue
        member = audience.predicate(c)
        if member and audience.id not in memberships:
            memberships[audience.id] = c.now_ms
            transitions.joined.append(audience.id)
        elif not member and audience.id in memberships:
            del memberships[audience.id]
            transitions.left.append(audience.id)
    return transitions


def reevaluate_audiences(
    defs: CompiledDefinitions,
    state: ProfileState,
    now_ms: int,
    *,
    cause: str,
    audience_ids: Collection[str] | None = None,
    fires_actions: Callable[[str], bool] = lambda _audience_id: True,
) -> Outcome:
    """Re-evaluate ``audience_ids`` (default: every audience) at ``now_ms``.

    JOINED / LEFT actions of an audience fire only where ``fires_actions(audience_id)``;
    their idempotency key is `reevaluation_key` with ``cause``. Nothing else of the profile
    changes (no counters, enrichments or visit).
    """
    plan = plan_for(defs)
    c = EvalContext(state, None, now_ms, now_ms, plan.limits, track_favorites=False)
    outcome = Outcome(state=state)
    transitions = _transitions(plan, c, audience_ids)
    record_transitions(plan, transitions, outcome)
    joined = {a for a in transitions.joined if fires_actions(a)}
    left = {a for a in transitions.left if fires_actions(a)}
    if not joined and not left:
        return outcome
    left_names = [plan.audience_name(a) for a in transitions.left]
    for action in plan.actions:
        if action.trigger == pb.TRIGGER_JOINED and action.audience_id in joined:
            reason = f"joined {action.audience_id!r} ({cause})"
        elif action.trigger == pb.TRIGGER_LEFT and action.audience_id in left:
            reason = f"left {action.audience_id!r} ({cause})"
        else:
            continue
        key = reevaluation_key(state.profile_id, action.id, cause)
        fire_and_record(action, c, key, left_names, outcome, reason)
    return outcome
