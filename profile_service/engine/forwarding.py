"""Automatic audience forwarding (``Definitions.audience_forwarding``), as mParticle does it.

A forwarding is compiled into plain `ActionPlan`s, two per forwarded audience (JOINED and
LEFT), so the processor fires them exactly like user-written joined/left actions: same
outbox, same trace, and a deterministic idempotency key (``event_key`` of the profile, the
synthetic action id ``forwarding:<forwarding>:<audience>:<joined|left>`` and the event or
visit). Nothing else in the engine knows about forwarding.

What one fired forwarding action writes (Braze Track User for the mapped identifier):

- ``SegmentMembership`` (SEGMENT_MEMBERSHIP, the default, or BOTH): SET to the labels of
  every forwarded audience the visitor is in now, in document order. Labels are audience
  ids as mParticle sends them; ``use_names`` uses names, ``labels`` overrides per id.
- ``In <label>`` (IN_AUDIENCE_ATTRIBUTES or BOTH): true for the audience joined, false for
  the audience left.
"""

from __future__ import annotations

from collections.abc import Sequence

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.actions import (
    IN_AUDIENCE_PREFIX,
    SEGMENT_MEMBERSHIP_ATTRIBUTE,
    ActionPlan,
    Payload,
    PayloadBuilder,
    user_identifier_builder,
)
from profile_service.engine.context import EvalContext
from profile_service.engine.operands import OperandCompiler

FORWARDING_ACTION_PREFIX = "forwarding:"


def forwarding_action_id(forwarding_id: str, audience_id: str, joined: bool) -> str:
    """The synthetic action id of one forwarded transition (also in idempotency keys)."""
    return (
        f"{FORWARDING_ACTION_PREFIX}{forwarding_id}:{audience_id}:{'joined' if joined else 'left'}"
    )


def forwarded_audience_ids(
    forwarding: pb.AudienceForwarding, audience_ids: Sequence[str]
) -> list[str]:
    """The defined audiences a forwarding covers, in document order."""
    if forwarding.all_audiences:
        return list(audience_ids)
    wanted = set(forwarding.audience_ids)
    return [audience_id for audience_id in audience_ids if audience_id in wanted]


def audience_labels(
    forwarding: pb.AudienceForwarding, audience_names: dict[str, str]
) -> dict[str, str]:
    """Label written to Braze for each forwarded audience id, in document order."""
    labels: dict[str, str] = {}
    for audience_id in forwarded_audience_ids(forwarding, list(audience_names)):
        label = audience_id
        if forwarding.use_names:
            label = audience_names[audience_id] or audience_id
        labels[audience_id] = forwarding.labels.get(audience_id) or label
    return labels


def _builder(
    forwarding: pb.AudienceForwarding,
    operands: OperandCompiler,
    labels: dict[str, str],
    audience_id: str,
    joined: bool,
) -> PayloadBuilder:
    identify = user_identifier_builder(forwarding.identifier, operands)
    mode = forwarding.mode or pb.MEMBERSHIP_MODE_SEGMENT_MEMBERSHIP
    segment = mode in (pb.MEMBERSHIP_MODE_SEGMENT_MEMBERSHIP, pb.MEMBERSHIP_MODE_BOTH)
    per_audience = mode in (pb.MEMBERSHIP_MODE_IN_AUDIENCE_ATTRIBUTES, pb.MEMBERSHIP_MODE_BOTH)
    update_existing_only = forwarding.update_existing_only

    def build(c: EvalContext, _left: Sequence[str]) -> Payload | str:
        user = identify(c)
        if user is None:
            return "no user identifier has a value"
        track = action_pb2.TrackUser(user=user, update_existing_only=update_existing_only)
        if segment:
            current = [label for aid, label in labels.items() if aid in c.state.audiences]
            track.attributes.add(
                name=SEGMENT_MEMBERSHIP_ATTRIBUTE,
                set=value_pb2.Value(string_list=value_pb2.StringList(values=current)),
            )
        if per_audience:
            track.attributes.add(
                name=IN_AUDIENCE_PREFIX + labels[audience_id],
                set=value_pb2.Value(bool_value=joined),
            )
        return "track_user", track

    return build


def compile_forwardings(
    definitions: pb.Definitions, operands: OperandCompiler, audience_names: dict[str, str]
) -> tuple[ActionPlan, ...]:
    """The synthetic JOINED/LEFT actions of every forwarding of the document."""
    plans: list[ActionPlan] = []
    for forwarding in definitions.audience_forwarding:
        labels = audience_labels(forwarding, audience_names)
        for audience_id in labels:
            for joined in (True, False):
                plans.append(
                    ActionPlan(
                        id=forwarding_action_id(forwarding.id, audience_id, joined),
                        connector_id=forwarding.connector_id,
                        audience_id=audience_id,
                        trigger=pb.TRIGGER_JOINED if joined else pb.TRIGGER_LEFT,
                        feed_id="",
                        delay_ms=0,
                        frequency_cap=None,
                        build=_builder(forwarding, operands, labels, audience_id, joined),
                    )
                )
    return tuple(plans)
