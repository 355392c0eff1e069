"""Checks of ``audience_forwarding`` (automatic Braze membership forwarding, as mParticle).

Each forwarding needs a well-formed id unique among forwardings, a connector id, a user
identifier mapping (as a Track User's; audience transitions have no event to read), a known
mode, and what it forwards: ``all_audiences`` or a list of known, distinct audience ids (not
both). ``labels`` may only name forwarded audiences and must give valid Braze attribute
names; labels within one forwarding are distinct. Two SegmentMembership forwardings on one
connector would overwrite each other's attribute (mParticle's documented warning), so that is
refused too. Connector ids live in the dispatch service and are not checked here.
"""

from __future__ import annotations

from crowd.definitions.limits import MAX_BRAZE_NAME_LENGTH, MAX_CONNECTOR_ID_LENGTH
from crowd.definitions.validate_actions import NO_EVENTS_IN_AUDIENCE_ACTIONS, check_identifier
from crowd.definitions.validation_context import ValidationContext
from crowd.profile.v1 import definitions_pb2 as pb

_IN_AUDIENCE_PREFIX = "In "
_MAX_LABEL_LENGTH = MAX_BRAZE_NAME_LENGTH - len(_IN_AUDIENCE_PREFIX)
_SEGMENT_MODES = (
    pb.MEMBERSHIP_MODE_UNSPECIFIED,
    pb.MEMBERSHIP_MODE_SEGMENT_MEMBERSHIP,
    pb.MEMBERSHIP_MODE_BOTH,
)


def check_audience_forwarding(ctx: ValidationContext) -> None:
    """Check every audience forwarding of the document."""
    ids: dict[str, int] = {}
    segment_connectors: dict[str, int] = {}
    for i, forwarding in enumerate(ctx.definitions.audience_forwarding):
        path = f"audience_forwarding[{i}]"
        if ctx.check_id_format(forwarding.id, f"{path}.id"):
            if forwarding.id in ids:
                ctx.add(
                    f"{path}.id",
                    f'id "{forwarding.id}" is already used by '
                    f"audience_forwarding[{ids[forwarding.id]}]",
                )
            else:
                ids[forwarding.id] = i
        if not forwarding.connector_id:
            ctx.add(f"{path}.connector_id", "the connector id is empty")
        else:
            ctx.check_length(
                forwarding.connector_id,
                f"{path}.connector_id",
                MAX_CONNECTOR_ID_LENGTH,
                "connector id",
            )
        check_identifier(
            ctx,
            forwarding.identifier,
            forwarding.HasField("identifier"),
            f"{path}.identifier",
            NO_EVENTS_IN_AUDIENCE_ACTIONS,
        )
        if forwarding.mode not in pb.MembershipMode.values():
            ctx.add(f"{path}.mode", f"unknown membership mode {forwarding.mode}")
        elif forwarding.mode in _SEGMENT_MODES and forwarding.connector_id:
            other = segment_connectors.setdefault(forwarding.connector_id, i)
            if other != i:
                ctx.add(
                    f"{path}.mode",
                    f'connector "{forwarding.connector_id}" already gets SegmentMembership from '
                    f"audience_forwarding[{other}]; the two would overwrite each other "
                    "(use IN_AUDIENCE_ATTRIBUTES here)",
                )
        forwarded = _check_audiences(ctx, forwarding, path)
        _check_labels(ctx, forwarding, forwarded, path)


def _check_audiences(
    ctx: ValidationContext, forwarding: pb.AudienceForwarding, path: str
) -> set[str]:
    if forwarding.all_audiences:
        if forwarding.audience_ids:
            ctx.add(f"{path}.audience_ids", "set either all_audiences or audience_ids, not both")
        return set(ctx.audiences)
    if not forwarding.audience_ids:
        ctx.add(path, "the forwarding forwards nothing; list audience_ids or set all_audiences")
    seen: dict[str, int] = {}
    for k, audience_id in enumerate(forwarding.audience_ids):
        item = f"{path}.audience_ids[{k}]"
        if audience_id not in ctx.audiences:
            ctx.add(item, f'unknown audience "{audience_id}"')
        elif audience_id in seen:
            ctx.add(
                item,
                f'audience "{audience_id}" is already listed at audience_ids[{seen[audience_id]}]',
            )
        else:
            seen[audience_id] = k
    return set(seen)


def _check_labels(
    ctx: ValidationContext, forwarding: pb.AudienceForwarding, forwarded: set[str], path: str
) -> None:
    used: dict[str, str] = {}
    for audience_id in forwarded:
        label = forwarding.labels.get(audience_id) or audience_id
        if forwarding.use_names and audience_id not in forwarding.labels:
            label = ctx.audiences[audience_id].name or audience_id
        if label in used:
            ctx.add(
                f"{path}.labels",
                f'audiences "{used[label]}" and "{audience_id}" would both be written as '
                f'"{label}"; give them distinct labels',
            )
        used[label] = audience_id
    for audience_id, label in sorted(forwarding.labels.items()):
        item = f'{path}.labels["{audience_id}"]'
        if audience_id not in forwarded:
            ctx.add(item, f'audience "{audience_id}" is not forwarded by this forwarding')
        elif not label or label != label.strip() or label.startswith("$"):
            ctx.add(item, "a label must be non-empty, without surrounding spaces or a leading $")
        elif len(label) > _MAX_LABEL_LENGTH:
            ctx.add(
                item,
                f"a label has at most {_MAX_LABEL_LENGTH} characters",
            )
