"""Custom-attribute operations: set, null-removal, inc, add/remove and arrays of objects."""

from __future__ import annotations

from typing import Any

#: Operators of scalar arrays ("use add and remove (without $)").
ARRAY_OPS = frozenset({"add", "remove"})
#: Operators of arrays of objects.
OBJECT_ARRAY_OPS = frozenset({"$add", "$remove", "$update"})


def operation_of(value: Any) -> str:
    """Classify an attribute value: ``remove``, ``inc``, ``array_ops``, ``object_array_ops``,
    ``time``, ``object``, ``array`` or ``scalar``."""
    if value is None:
        return "remove"
    if isinstance(value, dict) and value:
        keys = set(value)
        if keys == {"inc"}:
            return "inc"
        if keys <= ARRAY_OPS:
            return "array_ops"
        if keys <= OBJECT_ARRAY_OPS:
            return "object_array_ops"
        if keys == {"$time"}:
            return "time"
        return "object"
    if isinstance(value, list):
        return "array"
    return "scalar"


def apply_attribute(
    attributes: dict[str, Any],
    key: str,
    value: Any,
    *,
    merge_objects: bool,
    max_array_length: int,
) -> None:
    """Apply one validated attribute update to a profile's attribute map in place."""
    op = operation_of(value)
    if op == "remove":
        attributes.pop(key, None)
    elif op == "inc":
        current = attributes.get(key)
        # A missing or non-integer value starts from 0, like a fresh integer attribute.
        base = current if isinstance(current, int) and not isinstance(current, bool) else 0
        attributes[key] = base + value["inc"]
    elif op == "array_ops":
        current = attributes.get(key)
        items = list(current) if isinstance(current, list) else []
        for element in value.get("add", []):
            _append_unique(items, element)
        removed = value.get("remove", [])
        items = [element for element in items if element not in removed]
        attributes[key] = _cap(items, max_array_length)
    elif op == "object_array_ops":
        attributes[key] = _apply_object_array_ops(attributes.get(key), value, merge_objects)
    elif op == "object":
        current = attributes.get(key)
        if merge_objects and isinstance(current, dict):
            attributes[key] = _deep_merge(current, value)
        else:
            attributes[key] = value
    elif op == "array" and all(not isinstance(v, dict) for v in value):
        # "Only unique values are stored": each element is appended, moving duplicates last.
        items = []
        for element in value:
            _append_unique(items, element)
        attributes[key] = _cap(items, max_array_length)
    else:
        attributes[key] = value


def _append_unique(items: list[Any], element: Any) -> None:
    if element in items:
        items.remove(element)
    items.append(element)


def _cap(items: list[Any], max_length: int) -> list[Any]:
    # "When a user watches a 501st movie, the first movie is removed."
    return items[-max_length:] if len(items) > max_length else items


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict) and "$time" not in value:
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def _apply_object_array_ops(
    current: Any, ops: dict[str, Any], merge_objects: bool
) -> list[dict[str, Any]]:
    # Documented order inside one request: $add, then $remove, then $update.
    items: list[dict[str, Any]] = [
        dict(item)
        for item in (current if isinstance(current, list) else [])
        if isinstance(item, dict)
    ]
    items.extend(dict(obj) for obj in ops.get("$add", []))
    for selector in ops.get("$remove", []):
        items = [item for item in items if not _selected(item, selector)]
    for update in ops.get("$update", []):
        new_object = update["$new_object"]
        for index, item in enumerate(items):
            if _selected(item, update):
                items[index] = _deep_merge(item, new_object) if merge_objects else dict(new_object)
    return items


def _selected(item: dict[str, Any], selector: dict[str, Any]) -> bool:
    key = selector["$identifier_key"]
    return key in item and item[key] == selector["$identifier_value"]
