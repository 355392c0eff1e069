"""The evaluation context: one event (or visit end) being applied to one profile.

Compiled rules, enrichments and mappings are closures over a `EvalContext`; it gives them
the event, the profile's attribute stores and the clock, and records the value every
attribute had before its first write, which serves both "has changed" and the outcome's
list of changed attributes.

Writers never mutate a stored list or dict in place (they store a new one), so the
recorded original stays intact without copying.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import EngineLimits
from profile_service.engine.identity_values import IdentityRule
from profile_service.engine.state import IdentityNote, NormalizedEvent, ProfileState
from profile_service.engine.values import (
    MISSING,
    tally_favorite,
)

Reader = Callable[["EvalContext"], Any]
"""Reads a value; conditions get ``None`` for "no value", enrichments get `MISSING`."""
Predicate = Callable[["EvalContext"], bool]
Apply = Callable[["EvalContext"], None]

_EMPTY: dict[str, Any] = {}


def favorite_id(tally_id: str) -> str:
    """The id under which a tally's favourite is readable."""
    return f"{tally_id}.favorite"


@dataclass(frozen=True, slots=True)
class AttributeMeta:
    """What the engine needs to know about an attribute on the hot path."""

    id: str
    name: str
    type: int
    visit_scope: bool
    is_badge: bool
    """Badges are reported as assigned/removed, not as changed values."""
    is_tally: bool
    """Tallies have a favourite and recency records."""
    identity: IdentityRule | None = None
    """Visitor-ID attributes: which values may set it (see `identity_values`)."""

    @classmethod
    def of(
        cls,
        attribute_id: str,
        name: str,
        attribute_type: int,
        visit_scope: bool,
        identity: IdentityRule | None = None,
    ) -> AttributeMeta:
        """Build one, deriving the type flags."""
        return cls(
            attribute_id,
            name,
            attribute_type,
            visit_scope,
            is_badge=attribute_type == pb.ATTRIBUTE_TYPE_BADGE,
            is_tally=attribute_type == pb.ATTRIBUTE_TYPE_TALLY,
            identity=identity,
        )


class EvalContext:
    """Everything compiled closures read and write while one event is applied."""

    __slots__ = (
        "data",
        "event",
        "event_time_ms",
        "identity_notes",
        "limits",
        "notes",
        "now_ms",
        "originals",
        "previous_builtins",
        "state",
        "track_favorites",
    )

    def __init__(
        self,
        state: ProfileState,
        event: NormalizedEvent | None,
        now_ms: int,
        event_time_ms: int,
        limits: EngineLimits,
        *,
        previous_builtins: dict[str, Any] | None = None,
        track_favorites: bool = False,
    ) -> None:
        self.state = state
        self.event = event
        self.data: dict[str, Any] = event.data if event is not None else _EMPTY
        self.now_ms = now_ms
        self.event_time_ms = event_time_ms
        """The event's time, or the visit's end time when a visit ends."""
        self.limits = limits
        self.originals: dict[str, Any] = {}
        """Attribute id -> value before its first write (`MISSING` if unassigned)."""
        self.notes: list[str] = []
        """Values an enrichment could not save (for the trace)."""
        self.identity_notes: list[IdentityNote] | None = None
        """Visitor-ID values not set (created on the first: most events have none)."""
        self.previous_builtins = previous_builtins
        self.track_favorites = track_favorites

    # --- reads ---------------------------------------------------------------------------------

    def store_of(self, meta: AttributeMeta) -> dict[str, Any]:
        """The dict holding ``meta``'s value (an empty one for a visit attribute without a
        visit)."""
        if meta.visit_scope:
            visit = self.state.visit
            return visit.attributes if visit is not None else _EMPTY
        return self.state.attributes

    def get(self, meta: AttributeMeta) -> Any:
        """The attribute's current value, `MISSING` if unassigned."""
        return self.store_of(meta).get(meta.id, MISSING)

    # --- writes --------------------------------------------------------------------------------

    def begin(self, meta: AttributeMeta) -> None:
        """Record the attribute's value before its first write in this context."""
        if meta.id not in self.originals:
            self._record_original(meta, self.store_of(meta))

    def _record_original(self, meta: AttributeMeta, store: dict[str, Any]) -> None:
        current = store.get(meta.id, MISSING)
        self.originals[meta.id] = current
        if self.track_favorites and meta.is_tally:
            favorite = (
                tally_favorite(current, self.state.tally_touched.get(meta.id))
                if isinstance(current, dict)
                else None
            )
            self.originals[favorite_id(meta.id)] = MISSING if favorite is None else favorite

    def put(self, meta: AttributeMeta, value: Any) -> None:
        """Store a new value (never a list or dict that is also stored elsewhere)."""
        if meta.visit_scope:
            visit = self.state.visit
            if visit is None:
                return  # no visit to hold it (a delayed action's re-evaluation never writes)
            store = visit.attributes
        else:
            store = self.state.attributes
            # Merge rules NEWER / OLDER compare when each value was last enriched.
            self.state.value_times[meta.id] = self.event_time_ms
        if meta.id not in self.originals:
            self._record_original(meta, store)
        store[meta.id] = value

    def remove(self, meta: AttributeMeta) -> None:
        """Remove the value (and a tally's recency record)."""
        store = self.store_of(meta)
        if meta.id not in store:
            return
        self.begin(meta)
        del store[meta.id]
        if not meta.visit_scope:
            self.state.value_times[meta.id] = self.event_time_ms
        if meta.is_tally:
            self.state.tally_touched.pop(meta.id, None)

    def note(self, message: str) -> None:
        """Record why a value was not saved."""
        self.notes.append(message)

    def note_identity(self, note: IdentityNote) -> None:
        """Record a visitor-ID value that was not set."""
        if self.identity_notes is None:
            self.identity_notes = []
        self.identity_notes.append(note)
