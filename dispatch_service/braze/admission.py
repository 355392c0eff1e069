"""What intake asks of an action's Braze payload: that it can be delivered.

An action is deliverable when the payload builder turns it into Braze objects without a
violation (every rule of rules.py) and the planner can put those objects into one request
(object size, objects per request, body size). Intake runs exactly that code, so an accepted
action never dead-letters for something it carried from the start.
"""

from __future__ import annotations

from typing import Any

from crowd.dispatch.v1.action_pb2 import Action
from dispatch_service.braze.connector import BatchMode, BrazeConnector, MembershipMode
from dispatch_service.braze.payload import InvalidAction, TrackObjects, Violation, build_objects
from dispatch_service.braze.planner import unfit_reason

__all__ = ["delivery_violations"]


def _default(name: str) -> Any:
    return BrazeConnector.model_fields[name].default


class _DefaultConnector:
    """A connector's defaults, for a caller that names connectors without their settings."""

    membership_default_mode: MembershipMode = _default("membership_default_mode")
    segment_membership_attribute: str = _default("segment_membership_attribute")
    audience_attribute_prefix: str = _default("audience_attribute_prefix")
    batch_mode: BatchMode = _default("batch_mode")


_DEFAULTS = _DefaultConnector()


def delivery_violations(action: Action, connector: BrazeConnector | None) -> list[Violation]:
    """Every reason ``action`` could not be delivered through ``connector``, by field path
    below the action (e.g. ``track_user.attributes[0].set.string_value``); empty if none.

    Args:
        action: The submitted action.
        connector: Its connector's settings; ``None`` checks against the connector defaults.
    """
    settings = connector if connector is not None else _DEFAULTS
    try:
        objects = build_objects(action, settings)
    except InvalidAction as exc:
        return list(exc.violations)
    if isinstance(objects, TrackObjects):
        reason = unfit_reason(objects, settings.batch_mode)
        if reason is not None:
            return [Violation(action.WhichOneof("payload") or "payload", reason)]
    return []
