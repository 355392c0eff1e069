"""Find enum fields holding numbers their enum does not define, anywhere in a message.

proto3 enums are open: the wire format carries any int32 and the parser keeps it, so
``null_value: 7`` arrives as 7 and each servicer would have to notice. One generic walk over
the message's descriptors checks every enum of every request instead, nested messages,
``oneof`` members, repeated and map fields (``google.protobuf.Value``/``Struct`` included).
"""

from __future__ import annotations

import functools

from google.protobuf.descriptor import Descriptor, EnumDescriptor
from google.protobuf.message import Message

from service_common.errors import FieldViolation

__all__ = ["undefined_enum_values"]


def undefined_enum_values(message: Message) -> list[FieldViolation]:
    """Every enum field (at any depth) of ``message`` whose value its enum does not define.

    Field paths look like ``events[3].data['kind'].null_value``. Only set fields are visited,
    and subtrees whose types hold no enum at all are skipped.
    """
    found: list[FieldViolation] = []
    _walk(message, "", found)
    return found


def _walk(message: Message, path: str, found: list[FieldViolation]) -> None:
    for field, value in message.ListFields():
        name = f"{path}.{field.name}" if path else field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _walk_map(field.message_type, value, name, found)
        elif field.enum_type is not None:
            numbers = value if field.is_repeated else [value]
            for index, number in enumerate(numbers):
                at = f"{name}[{index}]" if field.is_repeated else name
                _check(field.enum_type, number, at, found)
        elif field.message_type is not None and _has_enums(field.message_type):
            if field.is_repeated:
                for index, item in enumerate(value):
                    _walk(item, f"{name}[{index}]", found)
            else:
                _walk(value, name, found)


def _walk_map(entry: Descriptor, container: object, name: str, found: list[FieldViolation]) -> None:
    value_field = entry.fields_by_name["value"]
    if value_field.enum_type is None and not (
        value_field.message_type is not None and _has_enums(value_field.message_type)
    ):
        return
    for key, item in container.items():  # type: ignore[attr-defined]
        at = f"{name}[{key!r}]"
        if value_field.enum_type is not None:
            _check(value_field.enum_type, item, at, found)
        else:
            _walk(item, at, found)


def _check(enum: EnumDescriptor, number: int, path: str, found: list[FieldViolation]) -> None:
    if number not in enum.values_by_number:
        found.append(FieldViolation(path, f"{number} is not a value of {enum.full_name}"))


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
