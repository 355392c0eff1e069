"""Built-in attributes: maintained by the engine, readable like any attribute, never enriched.

Rules, audiences, operands and action mappings may read them by id; definitions may not
define attributes with these ids. The engine updates them *before* the event's enrichments
run (and at visit end before the visit-ended enrichments), so enrichments see current values.

A tally's favourite (the key with the highest value; ties go to the most recently
incremented key) is readable as ``<tally id>.favorite``, a string of the tally's scope.

`resolve_attribute` is the one place that says what an attribute id read anywhere in a
document refers to; the validator, the compiler and the engine all use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from crowd.profile.v1 import definitions_pb2 as pb

VISIT = pb.ATTRIBUTE_SCOPE_VISIT
VISITOR = pb.ATTRIBUTE_SCOPE_VISITOR

FAVORITE_SUFFIX = ".favorite"
"""``<tally id>.favorite`` reads a tally's favourite key."""


@dataclass(frozen=True, slots=True)
class BuiltinAttribute:
    """One attribute the engine maintains itself."""

    id: str
    name: str
    scope: pb.AttributeScope.ValueType
    type: pb.AttributeType.ValueType
    description: str


_BUILTINS: tuple[BuiltinAttribute, ...] = (
    BuiltinAttribute(
        "lifetime_event_count",
        "Lifetime event count",
        VISITOR,
        pb.ATTRIBUTE_TYPE_NUMBER,
        "Events of the visitor, the current one included.",
    ),
    BuiltinAttribute(
        "lifetime_visit_count",
        "Lifetime visit count",
        VISITOR,
        pb.ATTRIBUTE_TYPE_NUMBER,
        "Visits of the visitor, the current one included.",
    ),
    BuiltinAttribute(
        "first_visit",
        "First visit",
        VISITOR,
        pb.ATTRIBUTE_TYPE_DATE,
        "When the visitor's first visit started.",
    ),
    BuiltinAttribute(
        "last_visit",
        "Last visit",
        VISITOR,
        pb.ATTRIBUTE_TYPE_DATE,
        "When the visitor's previous visit ended (set at visit end; unassigned during the "
        "first visit), as Tealium's preloaded Last visit attribute.",
    ),
    BuiltinAttribute(
        "visit_start",
        "Visit start",
        VISIT,
        pb.ATTRIBUTE_TYPE_DATE,
        "When the current visit started (the time of its first event).",
    ),
    BuiltinAttribute(
        "visit_event_count",
        "Visit event count",
        VISIT,
        pb.ATTRIBUTE_TYPE_NUMBER,
        "Events of the current visit, the current one included.",
    ),
    BuiltinAttribute(
        "visit_duration",
        "Visit duration",
        VISIT,
        pb.ATTRIBUTE_TYPE_NUMBER,
        "Minutes from the start of the current visit to its latest event (fractional).",
    ),
    BuiltinAttribute(
        "visit_end",
        "Visit end",
        VISIT,
        pb.ATTRIBUTE_TYPE_DATE,
        "The time of the current visit's latest event.",
    ),
    BuiltinAttribute(
        "total_time_on_site",
        "Total time on site",
        VISITOR,
        pb.ATTRIBUTE_TYPE_NUMBER,
        "Minutes of every ended visit (each visit's duration is added when it ends).",
    ),
    BuiltinAttribute(
        "average_visit_duration",
        "Average visit duration",
        VISITOR,
        pb.ATTRIBUTE_TYPE_NUMBER,
        "Total time on site divided by the ended visits (unassigned before the first ends).",
    ),
    BuiltinAttribute(
        "weeks_since_first_visit",
        "Weeks since first visit",
        VISITOR,
        pb.ATTRIBUTE_TYPE_NUMBER,
        "Whole weeks from the first visit to the profile's latest activity.",
    ),
    BuiltinAttribute(
        "average_visits_per_week",
        "Average visits per week",
        VISITOR,
        pb.ATTRIBUTE_TYPE_NUMBER,
        "Lifetime visits divided by the weeks since the first visit (at least one week).",
    ),
    BuiltinAttribute(
        "unbadged",
        "Unbadged",
        VISITOR,
        pb.ATTRIBUTE_TYPE_BADGE,
        "Tealium's preloaded badge: assigned while the visitor holds none of the document's "
        "badges (every new visitor has it; earning a badge removes it).",
    ),
    BuiltinAttribute(
        "returning_visitor",
        "Returning visitor",
        VISITOR,
        pb.ATTRIBUTE_TYPE_BOOLEAN,
        "True from the visitor's second visit on.",
    ),
)

# The browser / OS / device / platform attributes (Tealium's preloaded "active browser
# type" and the rest), from the event's `user_agent` field and `platform`.
_AGENT_DIMENSIONS = (
    ("browser_type", "browser type", "e.g. Chrome, Mobile Safari, Firefox, Edge"),
    ("browser_version", "browser version", "the browser type and major version, e.g. Chrome 120"),
    ("os_type", "OS type", "e.g. Mac OS X, Windows, iOS, Android, Linux"),
    ("device_type", "device type", "Desktop, Mobile, Tablet, Bot or Other"),
    ("platform", "platform", "the event's platform, else browser when it has a user agent"),
)


def _agent_builtins() -> tuple[BuiltinAttribute, ...]:
    builtins: list[BuiltinAttribute] = []
    for dimension, label, values in _AGENT_DIMENSIONS:
        used = f"{dimension}s_used"
        builtins += [
            BuiltinAttribute(
                f"active_{dimension}",
                f"Active {label}",
                VISIT,
                pb.ATTRIBUTE_TYPE_STRING,
                f"The {label} of the visit's latest event that told it ({values}).",
            ),
            BuiltinAttribute(
                used,
                f"{label.capitalize()}s used",
                VISIT,
                pb.ATTRIBUTE_TYPE_STRING_SET,
                f"Every {label} seen in the current visit.",
            ),
            BuiltinAttribute(
                f"lifetime_{used}",
                f"Lifetime {label}s used",
                VISITOR,
                pb.ATTRIBUTE_TYPE_TALLY,
                f"Each {label} and the number of visits that used it.",
            ),
            BuiltinAttribute(
                f"lifetime_{used}{FAVORITE_SUFFIX}",
                f"Favorite {label}",
                VISITOR,
                pb.ATTRIBUTE_TYPE_STRING,
                f"The {label} of the most visits (ties: the most recently counted).",
            ),
        ]
    return tuple(builtins)


# Where visits enter and leave, and whether they were referred (Tealium's Entry URL, Exit
# URL, referred / direct visits), from the event's `current_url` and `referring_url`.
_PAGE_BUILTINS = (
    BuiltinAttribute(
        "entry_url",
        "Entry URL",
        VISIT,
        pb.ATTRIBUTE_TYPE_STRING,
        "The current_url of the visit's first event that carried one.",
    ),
    BuiltinAttribute(
        "exit_url",
        "Exit URL",
        VISIT,
        pb.ATTRIBUTE_TYPE_STRING,
        "The current_url of the visit's latest event that carried one.",
    ),
    BuiltinAttribute(
        "referred_visit",
        "Referred visit",
        VISIT,
        pb.ATTRIBUTE_TYPE_BOOLEAN,
        "The visit's first event carried a referring_url of another site.",
    ),
    BuiltinAttribute(
        "direct_visit",
        "Direct visit",
        VISIT,
        pb.ATTRIBUTE_TYPE_BOOLEAN,
        "The visit was not referred.",
    ),
    BuiltinAttribute(
        "referred_visits",
        "Referred visits",
        VISITOR,
        pb.ATTRIBUTE_TYPE_NUMBER,
        "Referred visits of the visitor, the current one included.",
    ),
    BuiltinAttribute(
        "direct_visits",
        "Direct visits",
        VISITOR,
        pb.ATTRIBUTE_TYPE_NUMBER,
        "Direct visits of the visitor, the current one included.",
    ),
    BuiltinAttribute(
        "frequent_visitor",
        "Frequent visitor",
        VISITOR,
        pb.ATTRIBUTE_TYPE_BADGE,
        "Tealium's preloaded badge: held while the average visits per week are at least 2.",
    ),
)

_BUILTINS += _PAGE_BUILTINS + _agent_builtins()

BUILTIN_ATTRIBUTES: Mapping[str, BuiltinAttribute] = MappingProxyType({b.id: b for b in _BUILTINS})
"""Built-in attributes by id, in a fixed order."""


class AttributeSource(Enum):
    """Where a readable attribute's value comes from."""

    DEFINED = "defined"
    """An attribute of the document (enriched by its enrichments)."""
    BUILTIN = "builtin"
    """A built-in attribute maintained by the engine."""
    FAVORITE = "favorite"
    """The favourite key of a tally attribute of the document."""


@dataclass(frozen=True, slots=True)
class AttributeRef:
    """What an attribute id read in a rule, operand, capture or mapping refers to.

    Attributes:
        id: The id as written (``"vip"``, ``"visit_start"``, ``"brands.favorite"``).
        source: Defined, built-in or a tally favourite.
        scope: Visit or visitor.
        type: The value's type (a favourite is a string).
        target: The attribute whose stored value is read: ``id`` itself, or for a favourite
            the tally's id.
    """

    id: str
    source: AttributeSource
    scope: pb.AttributeScope.ValueType
    type: pb.AttributeType.ValueType
    target: str


def favorite_tally_id(attribute_id: str) -> str | None:
    """The tally id of a ``<tally id>.favorite`` reference, else ``None``."""
    if attribute_id.endswith(FAVORITE_SUFFIX):
        return attribute_id[: -len(FAVORITE_SUFFIX)]
    return None


def resolve_attribute(
    attribute_id: str, defined: Mapping[str, pb.AttributeDefinition]
) -> AttributeRef | None:
    """Resolve an attribute id read somewhere in a document; ``None`` if it names nothing.

    Args:
        attribute_id: The id as written.
        defined: The document's attributes by id.
    """
    attribute = defined.get(attribute_id)
    if attribute is not None:
        return AttributeRef(
            attribute_id, AttributeSource.DEFINED, attribute.scope, attribute.type, attribute_id
        )
    builtin = BUILTIN_ATTRIBUTES.get(attribute_id)
    if builtin is not None:
        return AttributeRef(
            attribute_id, AttributeSource.BUILTIN, builtin.scope, builtin.type, attribute_id
        )
    tally_id = favorite_tally_id(attribute_id)
    if tally_id is not None:
        tally = defined.get(tally_id)
        if tally is not None and tally.type == pb.ATTRIBUTE_TYPE_TALLY:
            return AttributeRef(
                attribute_id,
                AttributeSource.FAVORITE,
                tally.scope,
                pb.ATTRIBUTE_TYPE_STRING,
                tally_id,
            )
    return None
