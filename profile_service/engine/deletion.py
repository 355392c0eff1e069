"""The connector actions a privacy deletion fires: every enabled Delete User action of the
definitions, built once from the deleted person's profile (after a stitch, the one survivor
stands for every profile it replaced, so Braze gets one deletion per connector action).

Their idempotency key includes the deleted profile's version token: a retried deletion of
the same stored profile repeats the same key (the dispatch service deduplicates it), while a
profile created again under the same id and deleted later gets a new one.
"""

from __future__ import annotations

from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.actions import fire
from profile_service.engine.context import EvalContext
from profile_service.engine.plan import plan_for
from profile_service.engine.state import FiredAction, ProfileState

__all__ = ["deletion_actions", "deletion_key"]


def deletion_key(profile_id: str, action_id: str, version: str) -> str:
    """Idempotency key of the Delete User action ``action_id`` for one stored profile."""
    return f"{profile_id}:{action_id}:deleted:{version}"


def deletion_actions(
    defs: CompiledDefinitions, state: ProfileState, version: str, now_ms: int
) -> list[FiredAction]:
    """The Delete User actions to send for ``state``'s person (none without an identifier:
    Braze could not accept them)."""
    plan = plan_for(defs)
    c = EvalContext(state, None, now_ms, now_ms, plan.limits, track_favorites=plan.track_favorites)
    fired: list[FiredAction] = []
    for action in plan.actions:
        definition = defs.actions.get(action.id)
        if definition is None or definition.WhichOneof("mapping") != "delete_user":
            continue
        built = fire(action, c, deletion_key(state.profile_id, action.id, version), [])
        if isinstance(built, FiredAction):
            fired.append(built)
    return fired
