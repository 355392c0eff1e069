"""Where a profile's pending delayed actions live, and which a commit cancels.

A delayed end-of-visit action is pending at most once per action and visitor (Tealium's
delayed actions: a later qualifying visit *reschedules* the pending run). Its member in the
partition's delayed sorted set therefore names only the profile and the action, so the
ZADD of a later visit end moves the one entry to the new due time instead of adding a
second one. The idempotency key is derived when the action fires (from the visit that
scheduled it last; see the engine's ``evaluate_delayed``).

A visitor who leaves an audience, and is not back in it when the commit ends, can no longer
satisfy "in audience at end of visit": the commit removes the pending runs of the
audience's actions (ZREM of members that are not pending is harmless).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import CompiledDefinitions

__all__ = ["cancelled_members", "delayed_member"]


def delayed_member(profile_id: str, action_id: str) -> str:
    """The member of a pending delayed action in the partition's delayed sorted set."""
    return json.dumps({"a": action_id, "p": profile_id}, sort_keys=True)


def cancelled_members(
    defs: CompiledDefinitions, profile_id: str, audiences_left: Iterable[str]
) -> list[str]:
    """Members of the end-of-visit actions of ``audiences_left`` (every such action of the
    document, disabled ones included: a run scheduled before it was disabled is pending)."""
    left = set(audiences_left)
    if not left:
        return []
    return [
        delayed_member(profile_id, action.id)
        for action in defs.document.actions
        if action.WhichOneof("source") == "audience"
        and action.audience.audience_id in left
        and action.audience.trigger == pb.TRIGGER_IN_AUDIENCE_AT_VISIT_END
    ]
