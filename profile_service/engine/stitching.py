"""Identity stitching in the engine: whether two profiles may become one (guardrails) and the
merged profile (merge rules, audiences, triggers, trace), computed purely from the two states.

The storage layer finds stitches (a visitor-ID value already indexed to another profile) and
runs the multi-step protocol of docs/identity.md; it calls these two functions, through
``storage.engine_api.EngineFunctions``.

(Interface first: the merge below is the minimal one; merge rules, audiences and triggers
are being filled in.)
"""

from __future__ import annotations

from dataclasses import dataclass

from crowd.profile.v1 import event_pb2, trace_pb2
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import NormalizedEvent, Outcome, ProfileState, TraceRecord

__all__ = ["StitchRefusal", "check_stitch", "merge_profiles", "survivor_first"]


@dataclass(frozen=True)
class StitchRefusal:
    """Why a stitch may not happen (a guardrail)."""

    attribute_id: str
    value: str
    outcome: event_pb2.IdentityOutcome.ValueType
    message: str


def survivor_first(a: ProfileState, b: ProfileState) -> tuple[ProfileState, ProfileState]:
    """``(survivor, replaced)``: the older profile survives (created first; ties by id), a
    total order, so concurrent stitches of the same profiles never form a cycle."""
    if (a.created_ms, a.profile_id) <= (b.created_ms, b.profile_id):
        return a, b
    return b, a


def check_stitch(
    defs: CompiledDefinitions,
    survivor: ProfileState,
    replaced: ProfileState,
    attribute_id: str,
    value: str,
) -> StitchRefusal | None:
    """The guardrail that refuses stitching ``replaced`` into ``survivor`` through
    ``attribute_id`` = ``value``, or ``None`` if it may happen."""
    return None


def merge_profiles(
    defs: CompiledDefinitions,
    survivor: ProfileState,
    replaced: ProfileState,
    *,
    attribute_id: str,
    value: str,
    event: NormalizedEvent | None,
    stitch_id: str,
    now_ms: int,
) -> Outcome:
    """The survivor after absorbing ``replaced`` (neither input is modified).

    ``outcome.state`` is the merged profile (``profile_id`` = the survivor's, ``replaces``
    extended by ``replaced``), audiences and badges evaluated on it: an audience either
    profile was in and the merged one is in fires no JOINED; memberships of the replaced
    profile end without LEFT. Fired actions' idempotency keys derive from ``stitch_id``.
    ``outcome.trace`` holds the VISITOR_STITCHED record.
    """
    import copy

    merged = copy.deepcopy(survivor)
    for visitor_id in replaced.visitor_ids or [replaced.profile_id]:
        if visitor_id not in merged.visitor_ids:
            merged.visitor_ids.append(visitor_id)
    for key, item in replaced.attributes.items():
        merged.attributes.setdefault(key, item)
    identities = {
        a: replaced.attributes[a]
        for a in defs.visitor_id_attributes
        if isinstance(replaced.attributes.get(a), str)
    }
    merged.replaces = [
        *merged.replaces,
        *replaced.replaces,
        {
            "profile_id": replaced.profile_id,
            "visitor_ids": list(replaced.visitor_ids or [replaced.profile_id]),
            "identities": identities,
            "stitched_ms": now_ms,
            "attribute_id": attribute_id,
        },
    ]
    merged.updated_ms = max(survivor.updated_ms, replaced.updated_ms, now_ms)
    record = TraceRecord(
        trace_pb2.TRACE_ENTRY_KIND_VISITOR_STITCHED,
        f"profile {replaced.profile_id} stitched into {survivor.profile_id} by {attribute_id}",
        {
            "replaced": replaced.profile_id,
            "survivor": survivor.profile_id,
            "attribute_id": attribute_id,
            "stitch_id": stitch_id,
        },
    )
    return Outcome(state=merged, trace=[record])
