"""Find enum fields holding numbers their enum does not define, anywhere in a message.

proto3 enums are open: the wire format carries any int32 and the parser keeps it, so
``null_value: 7`` arrives as 7 and each servicer would have to notice. One generic walk over
the message's descriptors checks every enum of every request instead, nested messages,
``oneof`` members, repeated and map fields (``google.protobuf.Value``/``Struct`` included).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from google.protobuf.descriptor import Descriptor, EnumDescriptor
from google.protobuf.message import Message

from service_common.errors import FieldViolation

__all__ = ["undefined_enum_values"]


def undefined_enum_values(message: Message) -> list[FieldViolation]:
    """Every enum field (at any depth) of ``message`` whose value its enum does not define.

    Field paths look like ``events[3].data['kind'].null_value``. Only fields that can lead
    to an enum are visited (this runs on every request, so the walk must stay cheap).
    """
    found: list[FieldViolation] = []
    _walk(message, None, found, _plan(message.DESCRIPTOR))
    return found


# How a field can hold enums: directly, in a message, in a map's values, singly or repeated;
# _NESTED: an enum field (``sub``) of a singular message field whose type holds enums only
# directly (e.g. an attribute's ``set.null_value``), checked without walking into it.
_ENUM, _ENUMS, _MESSAGE, _MESSAGES, _ENUM_MAP, _MESSAGE_MAP, _NESTED = range(7)

# A field path, built only when a violation is reported: (parent, segment) links, where a
# segment is a field name (str) or an index or map key (in a 1-tuple).
_Path = tuple[Any, ...] | None


class _Enum(NamedTuple):
    name: str
    numbers: frozenset[int]


class _Step(NamedTuple):
    field: str
    kind: int
    enum: _Enum | None  # for the enum kinds and _NESTED
    child: Descriptor | None  # for the message kinds
    sub: str = ""  # for _NESTED: the enum field of the message in ``field``


def _walk(
    message: Message, path: _Path, found: list[FieldViolation], plan: tuple[_Step, ...]
) -> None:
    for field, kind, enum, child, sub in plan:
        value = getattr(message, field)
        if kind == _ENUM:
            if value not in enum.numbers:  # type: ignore[union-attr]
                _report(enum, value, (path, field), found)
        elif kind == _NESTED:
            # An unset message reads as its default, whose enums are 0: always defined.
            number = getattr(value, sub)
            if number not in enum.numbers:  # type: ignore[union-attr]
                _report(enum, number, ((path, field), sub), found)
        elif kind in (_ENUMS, _ENUM_MAP):
            items = value.items() if kind == _ENUM_MAP else enumerate(value)
            for key, number in items:
                if number not in enum.numbers:  # type: ignore[union-attr]
                    _report(enum, number, ((path, field), (key,)), found)
        elif kind == _MESSAGE:
            if message.HasField(field):
                _walk(value, (path, field), found, _plan(child))
        else:
            # Repeated messages and message maps (e.g. an event's data, thousands of Values
            # per request): the child's plan is looked up once, and a child holding only
            # enums directly or one level down is checked inline, without a call per item.
            child_plan = _plan(child)
            items = value.items() if kind == _MESSAGE_MAP else enumerate(value)
            if all(step.kind in (_ENUM, _NESTED) for step in child_plan):
                for key, item in items:
                    for name, item_kind, item_enum, _, item_sub in child_plan:
                        number = getattr(item, name)
                        if item_kind == _NESTED:
                            number = getattr(number, item_sub)
                        if number not in item_enum.numbers:  # type: ignore[union-attr]
                            at: _Path = (((path, field), (key,)), name)
                            _report(item_enum, number, (at, item_sub) if item_sub else at, found)
            else:
                for key, item in items:
                    _walk(item, ((path, field), (key,)), found, child_plan)


def _report(enum: _Enum | None, number: int, path: _Path, found: list[FieldViolation]) -> None:
    assert enum is not None
    found.append(FieldViolation(_path_text(path), f"{number} is not a value of {enum.name}"))


def _path_text(path: _Path) -> str:
    """``events[3].data['kind'].null_value`` from the linked path."""
    segments: list[Any] = []
    while path is not None:
        path, segment = path
        segments.append(segment)
    text = ""
    for segment in reversed(segments):
        if isinstance(segment, tuple):
            text += f"[{segment[0]!r}]"
        else:
            text += f".{segment}" if text else segment
    return text


@functools.cache
def _plan(descriptor: Descriptor) -> tuple[_Step, ...]:
    """The fields of ``descriptor`` that can hold an enum, how, and the enum (if direct)."""
    plan: list[_Step] = []
    for field in descriptor.fields:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value = entry.fields_by_name["value"]
            if value.enum_type is not None:
                plan.append(_Step(field.name, _ENUM_MAP, _enum(value.enum_type), None))
            elif value.message_type is not None and _has_enums(value.message_type):
                plan.append(_Step(field.name, _MESSAGE_MAP, None, value.message_type))
        elif field.enum_type is not None:
            kind = _ENUMS if field.is_repeated else _ENUM
            plan.append(_Step(field.name, kind, _enum(field.enum_type), None))
        elif entry is not None and not field.is_repeated and _enums_only_direct(entry):
            plan.extend(
                _Step(field.name, _NESTED, _enum(inner.enum_type), None, inner.name)
                for inner in entry.fields
                if inner.enum_type is not None
            )
        elif entry is not None and _has_enums(entry):
            kind = _MESSAGES if field.is_repeated else _MESSAGE
            plan.append(_Step(field.name, kind, None, entry))
    return tuple(plan)


def _enum(descriptor: EnumDescriptor) -> _Enum:
    return _Enum(descriptor.full_name, frozenset(descriptor.values_by_number))


@functools.cache
def _enums_only_direct(descriptor: Descriptor) -> bool:
    """Whether ``descriptor`` has enum fields, all singular, and no message or map field that
    can lead to more enums (then a field of its type is checked as :data:`_NESTED` steps)."""
    direct = False
    for field in descriptor.fields:
        if field.enum_type is not None:
            if field.is_repeated:
                return False
            direct = True
        elif field.message_type is not None and _has_enums(field.message_type):
            return False
    return direct


@functools.cache
def _has_enums(descriptor: Descriptor) -> bool:
    """Whether any message type reachable from ``descriptor`` has an enum field.

    Computed over the whole reachable set (not by naive recursion), so recursive types such as
    ``google.protobuf.Value`` get the right answer.
    """
    seen: set[str] = set()
    pending = [descriptor]
    while pending:
        current = pending.pop()
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        for field in current.fields:
            if field.enum_type is not None:
                return True
            if field.message_type is not None:
                pending.append(field.message_type)
    return False
