"""Schema-guided clean-up of a parsed YAML/JSON document before ``json_format.ParseDict``.

(Over 400 lines on purpose: one schema-guided walk with one small rule per
hand-written form it accepts.)

People write definitions by hand, so the loader accepts more than strict proto JSON:

- enum values without their prefix and in any case: ``scope: visitor``, ``kind: increment``,
  ``operator: greater_than`` (or ``">"``), ``trigger: joined``, ``unit: days``;
- durations with units: ``"30m"``, ``"24h"``, ``"395d"``, ``"1h30m"`` (and proto's ``"1800s"``);
- plain constants: ``constant: 500``, ``constant: "purchase"``, ``constant: true``,
  ``constant: null``, ``constant: [a, b]``, a YAML date/time, or the proto JSON form
  ``constant: {number_value: 500}``;
- field names in snake_case or camelCase.

The walk follows the message descriptors, so it checks every field against the schema and
reports every problem it finds with the path of the offending element (unknown fields with a
suggestion, wrong shapes, bad enum names, two members of a oneof), instead of stopping at the
first one the way ``ParseDict`` does. Its output uses proto field names and proto JSON forms
that ``ParseDict`` accepts.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from crowd.definitions.durations import DURATION_HINT, DurationSyntaxError, parse_duration
from crowd.definitions.errors import DefinitionError

_DURATION = "google.protobuf.Duration"
_TIMESTAMP = "google.protobuf.Timestamp"
_VALUE = "crowd.common.v1.Value"

MAX_NESTING = 64
"""Deepest message nesting accepted (audience expressions nest; protobuf stops at 100)."""

_INT32_RANGE = (-(2**31), 2**31 - 1)
_INT64_RANGE = (-(2**63), 2**63 - 1)

# Symbols people naturally write for comparison operators.
_OPERATOR_ALIASES = {
    "=": "OPERATOR_EQUALS",
    "==": "OPERATOR_EQUALS",
    "!=": "OPERATOR_NOT_EQUALS",
    "<": "OPERATOR_LESS_THAN",
    "<=": "OPERATOR_LESS_THAN_OR_EQUAL",
    ">": "OPERATOR_GREATER_THAN",
    ">=": "OPERATOR_GREATER_THAN_OR_EQUAL",
}


def join_path(path: str, name: str) -> str:
    """``attributes[0]`` + ``id`` -> ``attributes[0].id``."""
    return f"{path}.{name}" if path else name


def enum_prefix(enum: EnumDescriptor) -> str:
    """The prefix shared by an enum's value names, taken from its ``*_UNSPECIFIED`` value."""
    for value in enum.values:
        if value.number == 0 and value.name.endswith("UNSPECIFIED"):
            return value.name[: -len("UNSPECIFIED")]
    return ""


def enum_short_names(enum: EnumDescriptor) -> list[str]:
    """The friendly names of an enum's values (lowercase, no prefix, no ``unspecified``)."""
    prefix = enum_prefix(enum)
    return [v.name[len(prefix) :].lower() for v in enum.values if v.number != 0]


class DocumentNormaliser:
    """Walks a parsed document against a message descriptor, collecting errors.

    Use `normalise` once per document; `errors` then lists every problem found.
    """

    def __init__(self) -> None:
        self.errors: list[DefinitionError] = []
        self._depth = 0

    def _error(self, path: str, message: str) -> None:
        self.errors.append(DefinitionError(path, message))

    def normalise(self, data: Any, descriptor: Descriptor, path: str = "") -> dict[str, Any]:
        """Return ``data`` (a mapping for ``descriptor``) in a form ``ParseDict`` accepts."""
        if self._depth >= MAX_NESTING:
            self._error(path, f"the document is nested more than {MAX_NESTING} levels deep")
            return {}
        self._depth += 1
        try:
            return self._normalise(data, descriptor, path)
        finally:
            self._depth -= 1

    def _normalise(self, data: Any, descriptor: Descriptor, path: str) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            self._error(path, f"expected a mapping of {descriptor.name} fields, got {_kind(data)}")
            return {}
        fields = _fields_by_any_name(descriptor)
        out: dict[str, Any] = {}
        oneof_members: dict[str, str] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                self._error(path, f"field names must be strings, got {_kind(key)} {key!r}")
                continue
            field = fields.get(key)
            if field is None:
                self._error(join_path(path, key), _unknown_field_message(key, descriptor))
                continue
            field_path = join_path(path, field.name)
            if field.name in out:
                self._error(
                    field_path, f'"{field.name}" is given twice (as snake_case and camelCase)'
                )
                continue
            if value is None and not _takes_null(field):
                # An explicit null (e.g. "rule:" with nothing after it) leaves the field unset.
                continue
            oneof = field.containing_oneof
            if oneof is not None:
                other = oneof_members.get(oneof.name)
                if other is not None:
                    self._error(
                        field_path,
                        f'"{other}" and "{field.name}" are both set; '
                        f'only one of the "{oneof.name}" fields may be set',
                    )
                    continue
                oneof_members[oneof.name] = field.name
            converted = self._field(value, field, field_path)
            if converted is not _INVALID:
                out[field.name] = converted
        return out

    # --- fields -------------------------------------------------------------------------------

    def _field(self, value: Any, field: FieldDescriptor, path: str) -> Any:
        if field.type == FieldDescriptor.TYPE_MESSAGE and _message(field).GetOptions().map_entry:
            return self._map(value, field, path)
        if field.is_repeated:
            if not isinstance(value, list):
                self._error(path, f"expected a list, got {_kind(value)}")
                return _INVALID
            items = [self._single(item, field, f"{path}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not _INVALID]
        return self._single(value, field, path)

    def _map(self, value: Any, field: FieldDescriptor, path: str) -> Any:
        if not isinstance(value, Mapping):
            self._error(path, f"expected a mapping, got {_kind(value)}")
            return _INVALID
        value_field = _message(field).fields_by_name["value"]
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, str | int):
                self._error(path, f"map keys must be strings, got {_kind(key)} {key!r}")
                continue
            item_path = f"{path}[{str(key)!r}]"
            converted = self._single(item, value_field, item_path)
            if converted is not _INVALID:
                out[str(key)] = converted
        return out

    def _single(self, value: Any, field: FieldDescriptor, path: str) -> Any:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            full_name = _message(field).full_name
            if full_name == _DURATION:
                return self._duration(value, path)
            if full_name == _TIMESTAMP:
                return self._timestamp(value, path)
            if full_name == _VALUE:
                return self._value(value, _message(field), path)
            if value is None:
                return {}
            return self.normalise(value, _message(field), path)
        if field.type == FieldDescriptor.TYPE_ENUM:
            return self._enum(value, _enum_of(field), path)
        return self._scalar(value, field, path)

    def _scalar(self, value: Any, field: FieldDescriptor, path: str) -> Any:
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            if not isinstance(value, str):
                self._error(path, f"expected a string, got {_kind(value)}; put the value in quotes")
                return _INVALID
            return value
        if kind == FieldDescriptor.TYPE_BOOL:
            if not isinstance(value, bool):
                self._error(path, f"expected true or false, got {_kind(value)}")
                return _INVALID
            return value
        if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64):
            low, high = _INT32_RANGE if kind == FieldDescriptor.TYPE_INT32 else _INT64_RANGE
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # JSON writers may emit 1000.0
            if isinstance(value, bool) or not isinstance(value, int):
                self._error(path, f"expected a whole number, got {_kind(value)}")
                return _INVALID
            if not low <= value <= high:
                self._error(path, f"{value} is out of range ({low} to {high})")
                return _INVALID
            return value
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return self._number(value, path)
        # No other scalar types occur in the definitions protos; let ParseDict judge.
        return value

    def _number(self, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._error(path, f"expected a number, got {_kind(value)}")
            return _INVALID
        if isinstance(value, float) and not math.isfinite(value):
            self._error(path, "numbers must be finite")
            return _INVALID
        return value

    def _enum(self, value: Any, enum: EnumDescriptor, path: str) -> Any:
        if value is None and enum.full_name == "google.protobuf.NullValue":
            return None
        if isinstance(value, bool):
            self._error(path, f"expected one of {_choices(enum)}, got {str(value).lower()}")
            return _INVALID
        if isinstance(value, int):
            if value in enum.values_by_number:
                return enum.values_by_number[value].name
            self._error(
                path, f"{value} is not a valid {enum.name}; expected one of {_choices(enum)}"
            )
            return _INVALID
        if not isinstance(value, str):
            self._error(path, f"expected one of {_choices(enum)}, got {_kind(value)}")
            return _INVALID
        name = resolve_enum_name(value, enum)
        if name is None:
            self._error(
                path, f'unknown {_enum_label(enum)} "{value}"; expected one of {_choices(enum)}'
            )
            return _INVALID
        return name

    def _duration(self, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, str):
            hint = "a bare number is ambiguous; " if isinstance(value, int | float) else ""
            self._error(path, f"expected a duration, got {_kind(value)}; {hint}{DURATION_HINT}")
            return _INVALID
        try:
            return parse_duration(value)
        except DurationSyntaxError as exc:
            self._error(path, str(exc))
            return _INVALID

    def _timestamp(self, value: Any, path: str) -> Any:
        if isinstance(value, dt.datetime | dt.date):
            return _iso_timestamp(value)
        if isinstance(value, str):
            try:
                return _iso_timestamp(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                pass
        self._error(
            path, f"expected an ISO 8601 date-time such as 2024-05-01T12:00:00Z, got {value!r}"
        )
        return _INVALID

    def _value(self, value: Any, descriptor: Descriptor, path: str) -> Any:
        """A ``crowd.common.v1.Value``: a plain YAML scalar/list, or the proto JSON form."""
        if isinstance(value, Mapping):
            if not value:
                self._error(path, "the constant has no value")
                return _INVALID
            return self.normalise(value, descriptor, path)
        if value is None:
            return {"null_value": None}
        if isinstance(value, bool):
            return {"bool_value": value}
        if isinstance(value, int | float):
            number = self._number(value, path)
            return _INVALID if number is _INVALID else {"number_value": number}
        if isinstance(value, str):
            return {"string_value": value}
        if isinstance(value, dt.datetime | dt.date):
            return {"timestamp_value": _iso_timestamp(value)}
        if isinstance(value, list):
            return self._list_value(value, path)
        self._error(path, f"unsupported constant {_kind(value)}")
        return _INVALID

    def _list_value(self, items: list[Any], path: str) -> Any:
        if not items:
            self._error(
                path,
                "an empty list has no item type; write {string_list: {}}, "
                "{number_list: {}} or {bool_list: {}}",
            )
            return _INVALID
        if all(isinstance(item, str) for item in items):
            return {"string_list": {"values": items}}
        if all(isinstance(item, bool) for item in items):
            return {"bool_list": {"values": items}}
        if all(isinstance(item, int | float) and not isinstance(item, bool) for item in items):
            if not all(math.isfinite(item) for item in items):
                self._error(path, "numbers must be finite")
                return _INVALID
            return {"number_list": {"values": items}}
        self._error(path, "a list constant must hold only strings, only numbers or only booleans")
        return _INVALID


def resolve_enum_name(value: str, enum: EnumDescriptor) -> str | None:
    """The value name for a friendly spelling: ``"greater than"`` -> ``OPERATOR_GREATER_THAN``."""
    text = value.strip()
    if enum.name == "Operator" and text in _OPERATOR_ALIASES:
        return _OPERATOR_ALIASES[text]
    upper = text.upper().replace("-", "_").replace(" ", "_")
    for candidate in (upper, enum_prefix(enum) + upper):
        if candidate in enum.values_by_name:
            return candidate
    return None


def _message(field: FieldDescriptor) -> Descriptor:
    message = field.message_type
    assert message is not None, f"{field.full_name} is not a message field"
    return message


def _enum_of(field: FieldDescriptor) -> EnumDescriptor:
    enum = field.enum_type
    assert enum is not None, f"{field.full_name} is not an enum field"
    return enum


def _takes_null(field: FieldDescriptor) -> bool:
    """True for fields where null means something: a constant, or Value's own null_value."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return bool(_message(field).full_name == _VALUE)
    return field.type == FieldDescriptor.TYPE_ENUM and (
        _enum_of(field).full_name == "google.protobuf.NullValue"
    )


class _Invalid:
    """Marker for a value that could not be converted (its error is already recorded)."""


_INVALID: Any = _Invalid()

_FIELD_CACHE: dict[str, dict[str, FieldDescriptor]] = {}


def _fields_by_any_name(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    cached = _FIELD_CACHE.get(descriptor.full_name)
    if cached is None:
        cached = {}
        for field in descriptor.fields:
            cached[field.name] = field
            cached[field.json_name] = field
        _FIELD_CACHE[descriptor.full_name] = cached
    return cached


def _unknown_field_message(key: str, descriptor: Descriptor) -> str:
    names = [f.name for f in descriptor.fields]
    close = difflib.get_close_matches(key, names + [f.json_name for f in descriptor.fields], n=1)
    hint = (
        f'; did you mean "{close[0]}"?' if close else f"; {descriptor.name} has: {', '.join(names)}"
    )
    return f'unknown field "{key}"{hint}'


def _enum_label(enum: EnumDescriptor) -> str:
    # "AttributeScope" -> "attribute scope", "When" -> "when"
    words: list[str] = []
    for char in enum.name:
        if char.isupper() and words:
            words.append(" ")
        words.append(char.lower())
    return "".join(words)


def _choices(enum: EnumDescriptor) -> str:
    return ", ".join(enum_short_names(enum))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, dt.date):
        return "a date"
    return type(value).__name__


def _iso_timestamp(value: dt.date) -> str:
    """RFC 3339 in UTC; a date means midnight UTC, a naive date-time is taken as UTC."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
