"""The Braze side of a stitch: one MergeUsers action per connector whose two users differ.

When two profiles become one, each was sent to Braze under the identifier its connector's
user mapping gave it. If the replaced profile's identifier differs from the merged profile's,
Braze holds two users for one person; a MergeUsers action asks the dispatch service to merge
the replaced profile's user into the merged profile's (it sends /users/merge, or
/users/identify for an alias into an external_id, and skips the request when it never sent
the user to merge). Idempotency keys derive from the stitch id, so a repeated stitch step
fires the same actions.
"""

from __future__ import annotations

from crowd.dispatch.v1 import action_pb2
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.actions import user_identifier_builder
from profile_service.engine.context import EvalContext
from profile_service.engine.plan import plan_for
from profile_service.engine.state import FiredAction, ProfileState
from profile_service.engine.value_protos import timestamp_from_ms

__all__ = ["STITCH_MERGE_ACTION_ID", "merge_user_actions", "merge_users_key"]

#: ``action_id`` of the MergeUsers actions (no action definition fires them).
STITCH_MERGE_ACTION_ID = "stitch-merge"


def merge_users_key(stitch_id: str, connector_id: str) -> str:
    """Idempotency key of the MergeUsers action of one stitch on one connector."""
    return f"{stitch_id}:{STITCH_MERGE_ACTION_ID}:{connector_id}"


def _identifier_mappings(defs: CompiledDefinitions) -> dict[str, pb.UserIdentifierMapping]:
    """Connector id -> the user mapping of its first enabled action that names a user
    (track_user preferred over delete_user), in document order."""
    tracks: dict[str, pb.UserIdentifierMapping] = {}
    deletes: dict[str, pb.UserIdentifierMapping] = {}
    for action in defs.actions.values():
        mapping = action.WhichOneof("mapping")
        if mapping == "track_user":
            tracks.setdefault(action.connector_id, action.track_user.identifier)
        elif mapping == "delete_user":
            deletes.setdefault(action.connector_id, action.delete_user.identifier)
    return {**deletes, **tracks}


def merge_user_actions(
    defs: CompiledDefinitions,
    survivor_before: ProfileState,
    replaced: ProfileState,
    merged: ProfileState,
    stitch_id: str,
    now_ms: int,
) -> list[FiredAction]:
    """MergeUsers actions for the connectors where ``replaced`` and ``merged`` are different
    Braze users (both identifiers known), one per connector.

    Args:
        defs: The definitions (their enabled actions name the connectors and user mappings).
        survivor_before: The survivor before the stitch (kept for the caller's symmetry; the
            kept user is the merged profile's, which may have gained an identifier).
        replaced: The profile merged away.
        merged: The survivor after the merge.
        stitch_id: The stitch's id (idempotency keys derive from it).
        now_ms: Processing time (the actions' ``fired_at``).
    """
    del survivor_before
    plan = plan_for(defs)
    fired: list[FiredAction] = []
    for connector_id, mapping in _identifier_mappings(defs).items():
        identify = user_identifier_builder(mapping, plan.operands)
        to_merge = identify(EvalContext(replaced, None, now_ms, now_ms, plan.limits))
        to_keep = identify(EvalContext(merged, None, now_ms, now_ms, plan.limits))
        if to_merge is None or to_keep is None or to_merge == to_keep:
            continue
        key = merge_users_key(stitch_id, connector_id)
        action = action_pb2.Action(
            idempotency_key=key,
            connector_id=connector_id,
            visitor_id=merged.profile_id,
            action_id=STITCH_MERGE_ACTION_ID,
            fired_at=timestamp_from_ms(now_ms),
            merge_users=action_pb2.MergeUsers(user_to_merge=to_merge, user_to_keep=to_keep),
        )
        if merged.last_traceparent:
            action.trace_context.traceparent = merged.last_traceparent
        fired.append(FiredAction(STITCH_MERGE_ACTION_ID, key, action))
    return fired
