"""Shared state of one validation run: the error list, the document's indexes, operand checks.

The section validators (settings, attributes, rules, audiences, actions) all report into one
`ValidationContext`, so `validator.validate` returns every problem of the document at once.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import TypeVar

from crowd.common.v1 import value_pb2
from crowd.definitions.builtins import (
    BUILTIN_ATTRIBUTES,
    AttributeRef,
    favorite_tally_id,
    resolve_attribute,
)
from crowd.definitions.catalog import OperandSpec, type_phrase
from crowd.definitions.defaults import DEFAULT_MAX_COLLECTION_SIZE, DEFAULT_MAX_STRING_LENGTH
from crowd.definitions.errors import DefinitionError
from crowd.definitions.limits import (
    ID_PATTERN,
    ID_RULE,
    MAX_EVENT_FIELD_LENGTH,
    MAX_STRING_LENGTH_SETTING,
)
from crowd.definitions.value_types import (
    EVENT_OWN_FIELDS,
    VType,
    attribute_vtype,
    constant_vtype,
    describe_types,
    event_field_vtype,
)
from crowd.profile.v1 import definitions_pb2 as pb

# google.protobuf.Timestamp's valid range: 0001-01-01 to 9999-12-31.
_MIN_TIMESTAMP_SECONDS = -62_135_596_800
_MAX_TIMESTAMP_SECONDS = 253_402_300_799


_Identified = TypeVar(
    "_Identified",
    pb.AttributeDefinition,
    pb.AudienceDefinition,
    pb.EventFeedDefinition,
    pb.CooldownGroup,
    pb.ActionDefinition,
)


def first_by_id(items: Iterable[_Identified]) -> dict[str, _Identified]:
    """Index by id, keeping the first of duplicates (duplicates are reported separately)."""
    index: dict[str, _Identified] = {}
    for item in items:
        if item.id:
            index.setdefault(item.id, item)
    return index


class ValidationContext:
    """The document being validated, its indexes and the errors found so far."""

    def __init__(self, definitions: pb.Definitions) -> None:
        self.definitions = definitions
        self.errors: list[DefinitionError] = []
        self.attributes = first_by_id(definitions.attributes)
        self.audiences = first_by_id(definitions.audiences)
        self.feeds = first_by_id(definitions.event_feeds)
        self.cooldown_groups = first_by_id(definitions.cooldown_groups)
        settings = definitions.settings
        # Out-of-range settings are reported by the settings validator; fall back to defaults
        # so that one bad setting does not turn into a flood of constant-length errors.
        self.max_string_length = (
            settings.max_string_length
            if 0 < settings.max_string_length <= MAX_STRING_LENGTH_SETTING
            else DEFAULT_MAX_STRING_LENGTH
        )
        self.max_collection_size = (
            settings.max_collection_size
            if settings.max_collection_size > 0
            else DEFAULT_MAX_COLLECTION_SIZE
        )

    def add(self, path: str, message: str) -> None:
        """Record a problem at ``path``."""
        self.errors.append(DefinitionError(path, message))

    # --- ids ----------------------------------------------------------------------------------

    def check_id_format(self, value: str, path: str, what: str = "id") -> bool:
        """Report an empty or malformed id; True if well-formed."""
        if not value:
            self.add(path, f"the {what} is empty; use {ID_RULE}")
            return False
        if not ID_PATTERN.fullmatch(value):
            self.add(path, f'the {what} "{_clip(value)}" is not valid; use {ID_RULE}')
            return False
        return True

    def check_length(self, value: str, path: str, limit: int, what: str) -> None:
        """Report a string longer than ``limit`` characters."""
        if len(value) > limit:
            self.add(path, f"the {what} is {len(value)} characters long; at most {limit} allowed")

    # --- attributes ---------------------------------------------------------------------------

    def resolve(self, attribute_id: str) -> AttributeRef | None:
        """What an attribute id refers to (defined, built-in or favourite)."""
        return resolve_attribute(attribute_id, self.attributes)

    def unknown_attribute_message(self, attribute_id: str) -> str:
        """``unknown attribute "x"`` with the nearest known id, or why a favourite is wrong."""
        tally_id = favorite_tally_id(attribute_id)
        if tally_id is not None and tally_id in self.attributes:
            kind = type_phrase(self.attributes[tally_id].type)
            return f'"{tally_id}" is {kind}, not a tally; only tallies have a favorite'
        known = [*self.attributes, *BUILTIN_ATTRIBUTES]
        close = difflib.get_close_matches(attribute_id, known, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        return f'unknown attribute "{_clip(attribute_id)}"{hint}'

    # --- operands -----------------------------------------------------------------------------

    def operand_type(
        self, operand: pb.Operand, path: str, *, no_events: str | None = None
    ) -> VType | None:
        """Check an operand on its own and return its value type (``None`` if unusable).

        Args:
            operand: The operand.
            path: Its path.
            no_events: Why event data cannot be read here (``None`` if it can).
        """
        source = operand.WhichOneof("source")
        if source is None:
            self.add(path, "the operand is empty; set one of constant, attribute or event")
            return None
        if source == "attribute":
            return self._attribute_operand_type(operand.attribute, f"{path}.attribute")
        if source == "event":
            return self._event_operand_type(operand.event, f"{path}.event", no_events)
        return self.constant_type(operand.constant, f"{path}.constant")

    def _attribute_operand_type(self, attribute_id: str, path: str) -> VType | None:
        if not attribute_id:
            self.add(path, "the attribute id is empty")
            return None
        ref = self.resolve(attribute_id)
        if ref is None:
            self.add(path, self.unknown_attribute_message(attribute_id))
            return None
        return attribute_vtype(ref.type)

    def _event_operand_type(self, name: str, path: str, no_events: str | None) -> VType | None:
        if no_events is not None:
            self.add(path, no_events)
            return None
        if not name:
            self.add(path, "the event field name is empty")
            return None
        if len(name) > MAX_EVENT_FIELD_LENGTH:
            self.add(path, f"event field names have at most {MAX_EVENT_FIELD_LENGTH} characters")
            return None
        vtype = event_field_vtype(name)
        if vtype is None:
            own = ", ".join(EVENT_OWN_FIELDS)
            self.add(
                path, f'unknown event field "{_clip(name)}"; the event\'s own fields are {own}'
            )
        return vtype

    def constant_type(self, value: value_pb2.Value, path: str) -> VType | None:
        """Check a constant (set, finite, within limits) and return its type."""
        vtype = constant_vtype(value)
        kind = value.WhichOneof("kind")
        if vtype is None or kind is None:
            self.add(path, "the constant has no value")
            return None
        if kind == "number_value" and not math.isfinite(value.number_value):
            self.add(f"{path}.number_value", "numbers must be finite")
            return None
        if kind == "number_list" and not all(math.isfinite(v) for v in value.number_list.values):
            self.add(f"{path}.number_list", "numbers must be finite")
            return None
        if kind == "string_value" and len(value.string_value) > self.max_string_length:
            self.add(
                f"{path}.string_value",
                f"the string is {len(value.string_value)} characters long; strings are kept up "
                f"to {self.max_string_length} characters (settings.max_string_length)",
            )
        if kind in ("string_list", "number_list", "bool_list"):
            size = len(getattr(value, kind).values)
            if size > self.max_collection_size:
                self.add(
                    f"{path}.{kind}",
                    f"the list has {size} items; collections are kept up to "
                    f"{self.max_collection_size} (settings.max_collection_size)",
                )
        if kind == "timestamp_value":
            stamp = value.timestamp_value
            if not (
                _MIN_TIMESTAMP_SECONDS <= stamp.seconds <= _MAX_TIMESTAMP_SECONDS
                and 0 <= stamp.nanos < 1_000_000_000
            ):
                self.add(f"{path}.timestamp_value", "the time is outside years 1 to 9999")
                return None
        return vtype

    def check_operand(
        self,
        operand: pb.Operand,
        path: str,
        spec: OperandSpec,
        owner: str,
        *,
        no_events: str | None = None,
    ) -> VType | None:
        """Check an operand against what ``owner`` (e.g. ``"increment"``) needs."""
        vtype = self.operand_type(operand, path, no_events=no_events)
        if vtype is None or vtype is VType.ANY:
            return vtype
        if operand.WhichOneof("source") == "constant" and not spec.constant_allowed:
            self.add(
                path,
                f'"{owner}" needs {spec.expected} from an attribute or an event field, '
                "not a constant",
            )
        elif vtype not in spec.accepts:
            self.add(
                path, f'"{owner}" needs {spec.expected}, but {describe(operand)} is {vtype.phrase}'
            )
        return vtype

    def check_typed_operand(
        self,
        operand: pb.Operand,
        path: str,
        accepts: frozenset[VType],
        what: str,
        *,
        no_events: str | None = None,
        constant_allowed: bool = True,
    ) -> VType | None:
        """Check an operand whose allowed types are given directly; ``what`` names its role."""
        spec = OperandSpec(accepts, describe_types(accepts), constant_allowed=constant_allowed)
        return self.check_operand(operand, path, spec, what, no_events=no_events)


def describe(operand: pb.Operand) -> str:
    """``attribute "name"``, ``event field "x"``, ``the constant`` (for messages)."""
    source = operand.WhichOneof("source")
    if source == "attribute":
        return f'attribute "{operand.attribute}"'
    if source == "event":
        return (
            operand.event if operand.event in EVENT_OWN_FIELDS else f'event field "{operand.event}"'
        )
    return "the constant"


def _clip(text: str, limit: int = 80) -> str:
    """Keep messages short when a user pasted something huge."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
