"""The types of values that operands and condition inputs produce, for type checking.

An attribute's type comes from its definition (or the built-in table), a constant's from its
``Value`` kind. Event data is untyped until an event arrives, so an event field is `VType.ANY`
and passes every type check; the engine converts or skips at run time.
"""

from __future__ import annotations

from enum import Enum

from crowd.common.v1 import value_pb2
from crowd.profile.v1 import definitions_pb2 as pb


class VType(Enum):
    """A value type; the value is the phrase used in messages (``"a string"``)."""

    NUMBER = "a number"
    STRING = "a string"
    BOOLEAN = "a boolean"
    DATE = "a date"
    BADGE = "a badge"
    TALLY = "a tally"
    STRING_SET = "a set of strings"
    STRING_ARRAY = "an array of strings"
    NUMBER_ARRAY = "an array of numbers"
    BOOLEAN_ARRAY = "an array of booleans"
    TIMELINE = "a timeline"
    FUNNEL = "a funnel"
    VISITOR_ID = "a visitor ID"
    NULL = "null"
    ANY = "an event value"

    @property
    def phrase(self) -> str:
        """``"a string"``, ``"an array of numbers"``..."""
        return self.value


STRINGISH = frozenset({VType.STRING, VType.VISITOR_ID})
"""Types holding one string."""

SCALARS = frozenset({VType.NUMBER, VType.STRING, VType.VISITOR_ID, VType.BOOLEAN, VType.DATE})
"""Types holding one plain value."""

COLLECTIONS = frozenset(
    {
        VType.STRING_SET,
        VType.TALLY,
        VType.STRING_ARRAY,
        VType.NUMBER_ARRAY,
        VType.BOOLEAN_ARRAY,
        VType.TIMELINE,
    }
)
"""Types whose size can be counted."""

_BY_ATTRIBUTE_TYPE: dict[int, VType] = {
    pb.ATTRIBUTE_TYPE_NUMBER: VType.NUMBER,
    pb.ATTRIBUTE_TYPE_STRING: VType.STRING,
    pb.ATTRIBUTE_TYPE_BOOLEAN: VType.BOOLEAN,
    pb.ATTRIBUTE_TYPE_DATE: VType.DATE,
    pb.ATTRIBUTE_TYPE_BADGE: VType.BADGE,
    pb.ATTRIBUTE_TYPE_TALLY: VType.TALLY,
    pb.ATTRIBUTE_TYPE_STRING_SET: VType.STRING_SET,
    pb.ATTRIBUTE_TYPE_STRING_ARRAY: VType.STRING_ARRAY,
    pb.ATTRIBUTE_TYPE_NUMBER_ARRAY: VType.NUMBER_ARRAY,
    pb.ATTRIBUTE_TYPE_BOOLEAN_ARRAY: VType.BOOLEAN_ARRAY,
    pb.ATTRIBUTE_TYPE_TIMELINE: VType.TIMELINE,
    pb.ATTRIBUTE_TYPE_FUNNEL: VType.FUNNEL,
    pb.ATTRIBUTE_TYPE_VISITOR_ID: VType.VISITOR_ID,
}

_BY_CONSTANT_KIND: dict[str, VType] = {
    "null_value": VType.NULL,
    "string_value": VType.STRING,
    "number_value": VType.NUMBER,
    "bool_value": VType.BOOLEAN,
    "timestamp_value": VType.DATE,
    "string_list": VType.STRING_ARRAY,
    "number_list": VType.NUMBER_ARRAY,
    "bool_list": VType.BOOLEAN_ARRAY,
}

EVENT_OWN_FIELDS: dict[str, VType] = {
    "event.name": VType.STRING,
    "event.time": VType.DATE,
    "event.visitor_id": VType.STRING,
}
"""Operand ``event`` names that read the event's own fields rather than its data."""


def attribute_vtype(attribute_type: int) -> VType | None:
    """The value type of an attribute type; ``None`` for unset or unknown types."""
    return _BY_ATTRIBUTE_TYPE.get(attribute_type)


def constant_vtype(value: value_pb2.Value) -> VType | None:
    """The value type of a constant; ``None`` if no kind is set."""
    kind = value.WhichOneof("kind")
    return None if kind is None else _BY_CONSTANT_KIND[kind]


def event_field_vtype(name: str) -> VType | None:
    """The type of an event operand: typed for the event's own fields, `VType.ANY` for data.

    ``None`` for a name starting with ``event.`` that is not one of `EVENT_OWN_FIELDS`.
    """
    if name in EVENT_OWN_FIELDS:
        return EVENT_OWN_FIELDS[name]
    if name.startswith("event."):
        return None
    return VType.ANY


def describe_types(types: frozenset[VType]) -> str:
    """``{NUMBER}`` -> ``"a number"``; ``{STRING, VISITOR_ID}`` -> ``"a string or a visitor ID"``"""
    ordered = [t.phrase for t in VType if t in types]
    if len(ordered) <= 1:
        return "".join(ordered)
    return f"{', '.join(ordered[:-1])} or {ordered[-1]}"
