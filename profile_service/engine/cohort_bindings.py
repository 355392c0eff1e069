"""Audiences bound to Braze cohorts (``Definitions.cohort_bindings``), as Treasure Data does it.

Like audience forwarding, a binding compiles into two plain `ActionPlan`s (JOINED adds the
visitor to the cohort, LEFT removes it) with the synthetic action id
``cohort:<audience>:<connector>:<cohort>:<joined|left>``, so they travel through the same
outbox with a deterministic idempotency key. Their payload is a ``cohort_membership``, which
the profile service's dispatch link sends with ``SyncCohort`` (the dispatch service's durable
cohort path: last change per user, batches of 1,000 ids, rate limits, retries, dead letters)
instead of ``SubmitActions``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from crowd.dispatch.v1 import action_pb2
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.actions import ActionPlan, Payload, PayloadBuilder
from profile_service.engine.context import EvalContext, Reader
from profile_service.engine.operands import OperandCompiler
from profile_service.engine.values import to_string

COHORT_ACTION_PREFIX = "cohort:"

ChangeBuilder = Callable[[EvalContext, bool], action_pb2.CohortChange | None]


def cohort_action_id(binding: pb.CohortBinding, joined: bool) -> str:
    """The synthetic action id of one bound transition (also in idempotency keys)."""
    parts = (binding.audience_id, binding.connector_id, binding.cohort_id)
    return f"{COHORT_ACTION_PREFIX}{':'.join(parts)}:{'joined' if joined else 'left'}"


def cohort_name(binding: pb.CohortBinding) -> str:
    """The cohort's name in Braze: its id unless a name is given (Treasure Data's rule)."""
    return binding.cohort_name or binding.cohort_id


def _text(read: Reader | None, c: EvalContext) -> str:
    return (to_string(read(c)) or "") if read is not None else ""


def change_builder(binding: pb.CohortBinding, operands: OperandCompiler) -> ChangeBuilder:
    """Builds the cohort change of a profile (``None`` when its identifier has no value)."""
    kind = binding.identifier or pb.COHORT_IDENTIFIER_EXTERNAL_ID
    external_id = operands.optional_reader(binding.external_id)
    device_id = operands.optional_reader(binding.device_id)
    alias_name = operands.optional_reader(binding.alias_name)
    alias_label = operands.optional_reader(binding.alias_label)

    def build(c: EvalContext, remove: bool) -> action_pb2.CohortChange | None:
        if kind == pb.COHORT_IDENTIFIER_DEVICE_ID:
            value = _text(device_id, c)
            return action_pb2.CohortChange(device_id=value, remove=remove) if value else None
        if kind == pb.COHORT_IDENTIFIER_ALIAS:
            name, label = _text(alias_name, c), _text(alias_label, c)
            if not (name and label):
                return None
            alias = action_pb2.UserAlias(alias_name=name, alias_label=label)
            return action_pb2.CohortChange(user=action_pb2.UserIds(user_alias=alias), remove=remove)
        value = _text(external_id, c)
        if not value:
            return None
        return action_pb2.CohortChange(user=action_pb2.UserIds(external_id=value), remove=remove)

    return build


def _builder(binding: pb.CohortBinding, change: ChangeBuilder, joined: bool) -> PayloadBuilder:
    cohort_id, name = binding.cohort_id, cohort_name(binding)

    def build(c: EvalContext, _left: Sequence[str]) -> Payload | str:
        built = change(c, not joined)
        if built is None:
            return "the cohort binding's identifier has no value"
        return "cohort_membership", action_pb2.CohortMembership(
            cohort_id=cohort_id, name=name, change=built
        )

    return build


def compile_cohort_bindings(
    definitions: pb.Definitions, operands: OperandCompiler
) -> tuple[ActionPlan, ...]:
    """The synthetic JOINED/LEFT actions of every cohort binding of the document."""
    plans: list[ActionPlan] = []
    for binding in definitions.cohort_bindings:
        change = change_builder(binding, operands)
        for joined in (True, False):
            plans.append(
                ActionPlan(
                    id=cohort_action_id(binding, joined),
                    connector_id=binding.connector_id,
                    audience_id=binding.audience_id,
                    trigger=pb.TRIGGER_JOINED if joined else pb.TRIGGER_LEFT,
                    feed_id="",
                    delay_ms=0,
                    frequency_cap=None,
                    build=_builder(binding, change, joined),
                )
            )
    return tuple(plans)
