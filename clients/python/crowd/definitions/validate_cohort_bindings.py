"""Checks of ``cohort_bindings`` (audiences bound to Braze cohorts, as Treasure Data).

Each binding names a known audience, a connector id and a cohort id (1 to 255 characters, no
control characters, as Braze's cohort import); an optional name (at most 255 characters;
defaults to the id); a known identifier kind and the operand(s) it needs (external_id,
device_id, or alias_name + alias_label), read from attributes (audience transitions have no
event). One cohort of a connector is bound at most once: two audiences feeding one cohort
would add and remove each other's members.
"""

from __future__ import annotations

from crowd.definitions.limits import MAX_CONNECTOR_ID_LENGTH
from crowd.definitions.validate_actions import NO_EVENTS_IN_AUDIENCE_ACTIONS
from crowd.definitions.validation_context import ValidationContext
from crowd.definitions.value_types import STRINGISH
from crowd.profile.v1 import definitions_pb2 as pb

MAX_COHORT_TEXT_LENGTH = 255

_OPERANDS: dict[int, tuple[str, ...]] = {
    pb.COHORT_IDENTIFIER_UNSPECIFIED: ("external_id",),
    pb.COHORT_IDENTIFIER_EXTERNAL_ID: ("external_id",),
    pb.COHORT_IDENTIFIER_DEVICE_ID: ("device_id",),
    pb.COHORT_IDENTIFIER_ALIAS: ("alias_name", "alias_label"),
}


def check_cohort_bindings(ctx: ValidationContext) -> None:
    """Check every cohort binding of the document."""
    bound: dict[tuple[str, str], int] = {}
    for i, binding in enumerate(ctx.definitions.cohort_bindings):
        path = f"cohort_bindings[{i}]"
        if not binding.audience_id:
            ctx.add(f"{path}.audience_id", "the audience id is empty")
        elif binding.audience_id not in ctx.audiences:
            ctx.add(f"{path}.audience_id", f'unknown audience "{binding.audience_id}"')
        if not binding.connector_id:
            ctx.add(f"{path}.connector_id", "the connector id is empty")
        else:
            ctx.check_length(
                binding.connector_id,
                f"{path}.connector_id",
                MAX_CONNECTOR_ID_LENGTH,
                "connector id",
            )
        if _check_text(ctx, binding.cohort_id, f"{path}.cohort_id", "cohort id", required=True):
            key = (binding.connector_id, binding.cohort_id)
            if key in bound:
                ctx.add(
                    f"{path}.cohort_id",
                    f'cohort "{binding.cohort_id}" of connector "{binding.connector_id}" is '
                    f"already bound by cohort_bindings[{bound[key]}]",
                )
            else:
                bound[key] = i
        _check_text(ctx, binding.cohort_name, f"{path}.cohort_name", "cohort name", required=False)
        operands = _OPERANDS.get(binding.identifier)
        if operands is None:
            ctx.add(f"{path}.identifier", f"unknown cohort identifier {binding.identifier}")
            continue
        for name in operands:
            if not binding.HasField(name):  # type: ignore[arg-type]
                ctx.add(f"{path}.{name}", f"the identifier needs {name}")
                continue
            ctx.check_typed_operand(
                getattr(binding, name),
                f"{path}.{name}",
                STRINGISH,
                name,
                no_events=NO_EVENTS_IN_AUDIENCE_ACTIONS,
                constant_allowed=name == "alias_label",
            )


def _check_text(
    ctx: ValidationContext, value: str, path: str, what: str, *, required: bool
) -> bool:
    if not value.strip():
        if required or value:
            ctx.add(path, f"the {what} is blank")
        return False
    if len(value) > MAX_COHORT_TEXT_LENGTH:
        ctx.add(path, f"the {what} has at most {MAX_COHORT_TEXT_LENGTH} characters")
        return False
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        ctx.add(path, f"the {what} contains control characters")
        return False
    return True
