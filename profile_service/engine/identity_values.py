"""Which values may set a visitor-ID attribute, and the notes for those that may not.

A value sets a visitor-ID attribute only while the attribute is empty, and only if it is a
valid visitor ID as Tealium defines one (6 to 255 characters, at least 3 distinct ones,
compared case-sensitively) that is not blocked. Blocked values are compared
case-insensitively against the attribute's ``IdentitySettings.blocked_values`` plus (unless
``replace_default_blocked_values``) `DEFAULT_BLOCKED_VALUES`: placeholders that many sites
send for "no one", which would otherwise stitch every anonymous visitor into one person.

The checks run only when an enrichment writes a visitor-ID attribute (rare next to other
writes), so nothing here costs anything on the other attributes' hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from crowd.profile.v1 import definitions_pb2 as pb
from crowd.profile.v1 import event_pb2, trace_pb2
from profile_service.engine.state import IdentityNote, TraceRecord

__all__ = [
    "DEFAULT_BLOCKED_VALUES",
    "DEFAULT_IDENTITY_RULE",
    "MAX_ID_LENGTH",
    "MIN_DISTINCT_CHARACTERS",
    "MIN_ID_LENGTH",
    "IdentityRule",
    "identity_note",
    "identity_record",
    "identity_rule",
    "refusal_of",
]

MIN_ID_LENGTH = 6
MAX_ID_LENGTH = 255
MIN_DISTINCT_CHARACTERS = 3
ECHOED_CHARACTERS = 64
"""At most this much of a refused value is echoed in notes and traces (IdentityNote.value)."""

# "0" and "-1" are shorter than a valid ID anyway; they are listed so that the list says
# what it means (and stays right should the length rule ever change).
DEFAULT_BLOCKED_VALUES: tuple[str, ...] = (
    "null",
    "undefined",
    "none",
    "anonymous",
    "unknown",
    "0",
    "-1",
    "test@test.com",
    "00000000-0000-0000-0000-000000000000",
)

IdentityOutcomeValue: TypeAlias = event_pb2.IdentityOutcome.ValueType


@dataclass(frozen=True, slots=True)
class IdentityRule:
    """One visitor-ID attribute's identity settings, resolved for the engine."""

    blocked: frozenset[str]
    """Blocked values, case-folded."""
    max_values: int = 0
    """Most distinct values one person may hold (0: no limit)."""
    max_profiles: int = 0
    """Most profiles one person may consist of (0: no limit)."""

    def is_blocked(self, value: str) -> bool:
        """True if ``value`` is blocked (case-insensitively)."""
        return value.casefold() in self.blocked


DEFAULT_IDENTITY_RULE = IdentityRule(frozenset(v.casefold() for v in DEFAULT_BLOCKED_VALUES))


def identity_rule(settings: pb.IdentitySettings) -> IdentityRule:
    """Resolve an attribute's ``IdentitySettings`` (unset: the defaults)."""
    blocked = {value.casefold() for value in settings.blocked_values}
    if not settings.replace_default_blocked_values:
        blocked |= DEFAULT_IDENTITY_RULE.blocked
    return IdentityRule(
        frozenset(blocked), max(settings.max_values, 0), max(settings.max_profiles, 0)
    )


def refusal_of(rule: IdentityRule, value: str) -> tuple[IdentityOutcomeValue, str] | None:
    """Why ``value`` may not be a visitor ID (outcome and message), ``None`` if it may.

    A blocked value is reported as blocked even when it is also too short ("0", "-1").
    """
    if rule.is_blocked(value):
        return event_pb2.IDENTITY_OUTCOME_BLOCKED, "the value is blocked for this attribute"
    if not MIN_ID_LENGTH <= len(value) <= MAX_ID_LENGTH:
        return (
            event_pb2.IDENTITY_OUTCOME_INVALID,
            f"a visitor ID has {MIN_ID_LENGTH} to {MAX_ID_LENGTH} characters, "
            f"this one has {len(value)}",
        )
    if len(set(value)) < MIN_DISTINCT_CHARACTERS:
        return (
            event_pb2.IDENTITY_OUTCOME_INVALID,
            f"a visitor ID has at least {MIN_DISTINCT_CHARACTERS} distinct characters",
        )
    return None


def identity_note(
    attribute_id: str, value: str, outcome: IdentityOutcomeValue, message: str
) -> IdentityNote:
    """A note with the value shortened to what is echoed back."""
    return IdentityNote(attribute_id, value[:ECHOED_CHARACTERS], outcome, message)


def identity_record(note: IdentityNote) -> TraceRecord:
    """The IDENTITY_IGNORED trace record of a note."""
    return TraceRecord(
        trace_pb2.TRACE_ENTRY_KIND_IDENTITY_IGNORED,
        f"{note.attribute_id}: value not set: {note.message}",
        {
            "attribute_id": note.attribute_id,
            "value": note.value,
            "outcome": event_pb2.IdentityOutcome.Name(note.outcome),
            "message": note.message,
        },
    )
