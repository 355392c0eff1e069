"""In-memory profile state and the engine's inputs and outputs.

The storage layer loads a `ProfileState` from Redis, hands it to the engine with an
event (or a visit end), and writes back the state the engine returns, together with
the outcome's audience changes, fired actions and trace entries, in one atomic step.

Attribute values are held as plain Python values chosen per attribute type, so that
the state serialises to compact JSON without type tags (the type comes from the
definitions):

=================  =====================================================================
type               Python value
=================  =====================================================================
number             ``float``
string, visitor id ``str``
boolean            ``bool``
date               ``int`` (epoch milliseconds)
badge              ``True`` (an unassigned badge is absent)
tally              ``dict[str, float]`` (favourite derived via `TallyOrder`)
string set         ``list[str]`` (sorted, unique)
arrays             ``list[str] | list[float] | list[bool]``
timeline           ``list[list]``: ``[time_ms, {attribute id: value}]`` oldest first
funnel             ``dict``: ``{"steps": [[step_id, time_ms, {..}], ...], "completed": bool}``
=================  =====================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from crowd.dispatch.v1 import action_pb2
from crowd.profile.v1 import event_pb2

# The record shape is part of the trace entry format the dispatch service writes too.
from service_common.trace_entries import TraceRecord as TraceRecord

STATE_FORMAT = 1
"""Bumped when the serialised layout changes incompatibly."""


_OPTIONAL_VISIT_FIELDS = ("agent", "agents_used", "entry_url", "exit_url", "referred")
"""Fields left out of the stored visit while empty (their defaults restore them)."""
_OPTIONAL_PROFILE_FIELDS = (
    "lifetime_agents",
    "previous_values",
    "referred_visits",
    "direct_visits",
)
"""Fields left out of the stored profile while empty or zero."""


@dataclass
class VisitState:
    """The open visit of a profile."""

    visit_id: str
    started_ms: int
    last_event_ms: int
    timeout_ms: int
    """Inactivity timeout chosen when the visit started (platform dependent)."""
    event_count: int = 0
    platform: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Visit-scoped attribute values by attribute id."""
    audiences_at_start: list[str] = field(default_factory=list)
    """Audiences the visitor was in when the visit started (for delayed actions)."""
    agent: dict[str, str] = field(default_factory=dict)
    """What the visit's latest user agent (and platform) said: dimension (``browser_type``,
    ``browser_version``, ``os_type``, ``device_type``, ``platform``) -> value."""
    agents_used: dict[str, list[str]] = field(default_factory=dict)
    """Dimension -> every value seen in the visit (sorted, unique)."""
    entry_url: str = ""
    """``current_url`` of the visit's first event that carried one (built-in ``entry_url``)."""
    exit_url: str = ""
    """``current_url`` of the visit's latest event that carried one (built-in ``exit_url``)."""
    referred: bool | None = None
    """Whether the visit's first event came from another site (``None``: visits older than
    this field)."""

    def expires_ms(self, max_visit_length_ms: int) -> int:
        """Return when the visit ends without another event."""
        return min(self.last_event_ms + self.timeout_ms, self.started_ms + max_visit_length_ms)


@dataclass
class ProfileState:
    """Everything the engine knows about one visitor."""

    profile_id: str
    created_ms: int
    updated_ms: int
    visitor_ids: list[str] = field(default_factory=list)
    """Every anonymous id merged into this profile (profile_id first)."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Visitor-scoped attribute values (badges included, as ``True``) by attribute id."""
    audiences: dict[str, int] = field(default_factory=dict)
    """Audience id -> when the visitor joined (ms)."""
    visit: VisitState | None = None
    visit_count: int = 0
    event_count: int = 0
    tally_touched: dict[str, dict[str, int]] = field(default_factory=dict)
    """Tally attribute id -> key -> sequence number of its last increment (favourite
    tie-break: the most recently incremented key wins)."""
    sequence: int = 0
    """Monotonic counter of changes, used for tally recency."""
    first_visit_ms: int | None = None
    """When the visitor's first visit started (built-in ``first_visit``)."""
    last_visit_ms: int | None = None
    """When the visitor's most recent visit ended (built-in ``last_visit``)."""
    last_visit_id: str = ""
    """Id of the most recently ended visit (names its delayed end-of-visit actions)."""
    last_traceparent: str = ""
    """W3C traceparent of the latest event that carried one: actions fired without an event
    (visit end, delayed actions) continue that event's trace."""
    replaces: list[dict[str, Any]] = field(default_factory=list)
    """Profiles stitched into this one, oldest first; each
    ``{"profile_id", "visitor_ids", "identities" {attribute id: value}, "stitched_ms",
    "attribute_id"}`` (the stitch's cause). Their visitor-ID values keep resolving here."""
    value_times: dict[str, int] = field(default_factory=dict)
    """Visitor attribute id -> when an enrichment last wrote (or removed) it: merge rules
    NEWER and OLDER compare these, not the profiles' update times."""
    time_on_site_ms: int = 0
    """Total duration of the visitor's ended visits (built-in ``total_time_on_site``)."""
    ended_visits: int = 0
    """Visits that have ended (``average_visit_duration`` divides by it)."""
    referred_visits: int = 0
    """Visits whose first event came from another site (built-in ``referred_visits``)."""
    direct_visits: int = 0
    """Visits that were not referred (built-in ``direct_visits``)."""
    lifetime_agents: dict[str, dict[str, float]] = field(default_factory=dict)
    """Dimension (as `VisitState.agent`) -> value -> visits that used it; the most recently
    counted value is last (the favourite's tie-break)."""
    previous_values: dict[str, Any] = field(default_factory=dict)
    """``<attribute id>:<event field>`` -> the field's value when a change-in-number or
    change-in-date enrichment last read it (events are not stored; the next event's change
    is measured against it)."""

    def to_bytes(self) -> bytes:
        """Serialise to compact JSON."""
        # Shallow copies of the instance dicts: the same document as dataclasses.asdict (field
        # order included) without its recursive deep copy, which dominated the cost.
        doc = dict(self.__dict__)
        if self.visit is not None:
            visit = doc["visit"] = dict(self.visit.__dict__)
            for optional in _OPTIONAL_VISIT_FIELDS:
                if not visit[optional] and visit[optional] is not False:
                    del visit[optional]  # unused by most visits: keep them as small
        for optional in _OPTIONAL_PROFILE_FIELDS:
            if not doc[optional]:
                del doc[optional]  # unused by most profiles: keep them as small
        doc["format"] = STATE_FORMAT
        try:
            # orjson writes the same compact UTF-8 JSON as json.dumps, several times faster.
            return orjson.dumps(doc)
        except TypeError:
            # Beyond orjson (an int over 64 bits, a non-string key): the slower, laxer json.
            return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> ProfileState:
        """Parse what `to_bytes` wrote (by either encoder)."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = json.loads(raw)  # e.g. an int over 64 bits, which orjson rejects
        doc.pop("format", None)
        visit = doc.pop("visit", None)
        state = cls(**doc)
        state.visit = VisitState(**visit) if visit is not None else None
        return state


@dataclass(frozen=True)
class NormalizedEvent:
    """A validated event with defaults applied (see `profile_service.api.validation`).

    ``data`` holds plain Python values: ``None``, ``str``, ``float``, ``bool``, ``int``
    epoch milliseconds for timestamps, or lists of those.
    """

    visitor_id: str
    event_id: str
    name: str
    time_ms: int
    data: dict[str, Any]
    trace_id: str = ""
    platform: str = ""
    traceparent: str = ""
    """W3C traceparent of the ingesting RPC, copied onto fired actions."""
    identities: dict[str, str] = field(default_factory=dict)
    """Visitor-ID attribute values known to belong to this visitor (an imported record
    looked up by one); assigned before the enrichments run when still unassigned."""


@dataclass(frozen=True)
class FiredAction:
    """An action the engine fired, ready to be stored in the outbox."""

    action_id: str
    idempotency_key: str
    """Deterministic: profile id, action id and the triggering event id (or visit id)."""
    action: action_pb2.Action
    delay_ms: int = 0
    """Non-zero for delayed end-of-visit actions (re-evaluated when due)."""


@dataclass(frozen=True, slots=True)
class IdentityNote:
    """A visitor-ID value that was not used (``EventResult.identity_notes``)."""

    attribute_id: str
    value: str
    """The value as carried (shortened to 64 characters)."""
    outcome: event_pb2.IdentityOutcome.ValueType
    """An ``IdentityOutcome`` (INVALID, BLOCKED, ALREADY_SET, VALUE_LIMIT, PROFILE_LIMIT)."""
    message: str


@dataclass
class Outcome:
    """What processing one event (or one visit end) did.

    ``state`` is the new state to store (``None`` only if the profile must be deleted).
    """

    state: ProfileState
    new_visitor: bool = False
    visit_started: bool = False
    visit_ended: bool = False
    changed_attributes: dict[str, Any] = field(default_factory=dict)
    """Attribute id -> new value (``None`` when removed); badges excluded."""
    badges_assigned: list[str] = field(default_factory=list)
    badges_removed: list[str] = field(default_factory=list)
    audiences_joined: list[str] = field(default_factory=list)
    audiences_left: list[str] = field(default_factory=list)
    actions: list[FiredAction] = field(default_factory=list)
    trace: list[TraceRecord] = field(default_factory=list)
    traced: bool = True
    """Whether ``trace`` is filled: ``False`` when the caller keeps no trace history for this
    visitor (neither sampled nor followed), so building the records would be wasted work."""
    identity_notes: list[IdentityNote] = field(default_factory=list)
    """Visitor-ID values not set (invalid, blocked, already set) or not stitched."""
