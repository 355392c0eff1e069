"""The cell rules of a CSV file (Tealium's file import rules): an empty cell is absent, a value
is cut to 1,000 characters, arrays are JSON in a cell, dates follow a configured format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

MAX_CELL_CHARS = 1000

TYPES = ("string", "number", "boolean", "date", "string_list", "number_list", "boolean_list")

_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n"}


class CellError(ValueError):
    """A cell that cannot be read as its mapped type; the message is short and readable."""


def trim(raw: str) -> str | None:
    """The cell text cut to 1,000 characters, or None when it is empty (absent)."""
    text = raw.strip()
    return text[:MAX_CELL_CHARS] if text else None


def convert(raw: Any, kind: str, date_format: str) -> Any:
    """The value of one cell (a CSV string, or any JSON value of a JSON lines row) as ``kind``;
    None means the field is absent."""
    if raw is None:
        return None
    if isinstance(raw, str):
        # A list cell is JSON: the 1,000-character cut applies to its elements (below), not
        # to the JSON text, which a cut would make unreadable.
        text = (raw.strip() or None) if kind.endswith("_list") else trim(raw)
        if text is None:
            return None
        raw = text
    if kind == "string":
        return raw if isinstance(raw, str) else json.dumps(raw)[:MAX_CELL_CHARS]
    if kind == "number":
        return _number(raw)
    if kind == "boolean":
        return _boolean(raw)
    if kind == "date":
        return _date(raw, date_format)
    items = _array(raw)
    element = kind.removesuffix("_list")
    return [convert(item, element, date_format) for item in items if item not in (None, "")]


def _number(raw: Any) -> float:
    if isinstance(raw, bool):
        raise CellError("not a number")
    if isinstance(raw, int | float):
        return float(raw)
    try:
        value = float(str(raw))
    except ValueError:
        raise CellError(f"not a number: {str(raw)[:40]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise CellError("not a finite number")
    return value


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CellError(f"not a boolean: {str(raw)[:40]!r}")


def _date(raw: Any, date_format: str) -> datetime:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return datetime.fromtimestamp(raw, UTC)  # epoch seconds in a JSON lines row
    try:
        parsed = datetime.strptime(str(raw), date_format)
    except ValueError:
        raise CellError(f"not a date in the format {date_format!r}: {str(raw)[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _array(raw: Any) -> list[Any]:
    if isinstance(raw, list):
        return raw
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise CellError("not a JSON array") from None
    if not isinstance(parsed, list):
        raise CellError("not a JSON array")
    return parsed
