"""Value coercion, limits and display of the engine's plain values (conversions to and from
the protos are in :mod:`profile_service.engine.value_protos`).

The engine holds every value as a plain Python value (see `profile_service.engine.state`):
``float`` numbers, ``str`` strings, ``bool`` booleans, ``int`` epoch-millisecond dates,
lists for sets and arrays, dicts for tallies and funnels. Event data and constants use the
same convention, so an ``int`` is always a point in time and a number is always a ``float``.

Coercion is deliberately forgiving in the direction event data usually arrives in (numbers
and dates as strings) and strict otherwise: a value that cannot be read as the wanted type
coerces to ``None``, and the caller (an enrichment) then does nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final

from profile_service.definitions.model import TIMELINE_MAX_ENTRIES, EngineLimits


class _Missing:
    """The type of `MISSING`."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
"""No value at all (an absent event field, an unassigned attribute, no event), as opposed
to ``None``, an explicit null that asks an enrichment to remove the value."""

MS_PER_MINUTE: Final = 60_000
TIMELINE_MAX_AGE_MS: Final = 365 * 24 * 60 * 60 * 1000
"""Timeline entries older than this (relative to the newest entry) are dropped."""

_NUMERIC = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Dates the platform can represent (datetime's range); anything outside is not a date.
_MIN_DATE_MS: Final = -62_135_596_800_000
_MAX_DATE_MS: Final = 253_402_300_799_999


# --- scalar coercion -----------------------------------------------------------------------


def to_number(value: Any) -> float | None:
    """Read ``value`` as a finite number: numbers, dates (epoch ms) and numeric strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _NUMERIC.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else None
    return None


def format_number(value: float) -> str:
    """Render a number the way people write it: ``12`` rather than ``12.0``."""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def format_date(ms: int) -> str:
    """Render epoch milliseconds as ISO 8601 UTC with milliseconds."""
    moment = _EPOCH + dt.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def to_string(value: Any) -> str | None:
    """Read a scalar as a string: numbers unpadded, booleans ``true``/``false``, dates ISO."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_number(value) if math.isfinite(value) else None
    if isinstance(value, int):
        return format_date(value) if _MIN_DATE_MS <= value <= _MAX_DATE_MS else None
    return None


def to_bool(value: Any) -> bool | None:
    """Read a boolean: ``bool`` itself or the strings ``true``/``false`` in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    return None


def to_date(value: Any, formats: Sequence[str] = ()) -> int | None:
    """Read a date as epoch milliseconds.

    Accepts dates (``int``), epoch-millisecond numbers and numeric strings, ISO 8601
    strings, and strings in one of ``formats`` (strftime patterns, tried in order). Times
    without a zone are UTC.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if _MIN_DATE_MS <= value <= _MAX_DATE_MS else None
    if isinstance(value, float):
        if math.isfinite(value) and _MIN_DATE_MS <= value <= _MAX_DATE_MS:
            return int(value)
        return None
    if isinstance(value, str):
        return _parse_date(value.strip(), tuple(formats))
    return None


@lru_cache(maxsize=4096)
def _parse_date(text: str, formats: tuple[str, ...]) -> int | None:
    # Cached: the same date strings (days, campaign dates) recur across many events.
    if not text:
        return None
    if _NUMERIC.fullmatch(text):
        return to_date(float(text))
    candidates: list[dt.datetime] = []
    try:
        candidates.append(dt.datetime.fromisoformat(text))
    except ValueError:
        for fmt in formats:
            try:
                candidates.append(dt.datetime.strptime(text, fmt))
                break
            except ValueError:
                continue
    if not candidates:
        return None
    moment = candidates[0]
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# --- list coercion -------------------------------------------------------------------------


def _items(value: Any) -> list[Any] | None:
    if value is None or value is MISSING or isinstance(value, dict):
        return None
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def to_string_list(value: Any) -> list[str] | None:
    """Read a scalar or a list as strings; items that are not scalars are skipped."""
    items = _items(value)
    if items is None:
        return None
    return [text for item in items if (text := to_string(item)) is not None]


def to_number_list(value: Any) -> list[float] | None:
    """Read a scalar or list as numbers; numeric strings convert, other items are skipped."""
    items = _items(value)
    if items is None:
        return None
    return [number for item in items if (number := to_number(item)) is not None]


def to_bool_list(value: Any) -> list[bool] | None:
    """Read a scalar or list as booleans; ``"true"``/``"false"`` convert, others are skipped."""
    items = _items(value)
    if items is None:
        return None
    return [flag for item in items if (flag := to_bool(item)) is not None]


def to_string_set(value: Any) -> list[str] | None:
    """Read a scalar or list as a set of strings: unique, sorted."""
    strings = to_string_list(value)
    return None if strings is None else sorted(set(strings))


def to_tally(value: Any) -> dict[str, float] | None:
    """Copy a tally (``dict`` of key to number); anything else is not a tally."""
    if not isinstance(value, dict):
        return None
    tally: dict[str, float] = {}
    for key, count in value.items():
        number = to_number(count)
        if isinstance(key, str) and number is not None:
            tally[key] = number
    return tally


# --- limits ----------------------------------------------------------------------------------


def trim_newest(items: list[Any], limit: int) -> list[Any]:
    """Keep the ``limit`` newest (last) items of an array."""
    return items[-limit:] if len(items) > limit else items


def timeline_limit(limits: EngineLimits) -> int:
    """Most entries a timeline keeps."""
    return min(TIMELINE_MAX_ENTRIES, limits.max_collection_size)


# --- tally favourite -------------------------------------------------------------------------


def tally_favorite(tally: dict[str, float], touched: dict[str, int] | None) -> str | None:
    """The key with the highest count.

    Ties go to the most recently incremented key (``touched`` holds each key's sequence
    number), then to the alphabetically first key.
    """
    best: str | None = None
    best_count = 0.0
    best_seq = -1
    for key, count in tally.items():
        if not isinstance(count, float | int) or isinstance(count, bool):
            continue  # not a tally count (a value stored under another type)
        seq = touched.get(key, -1) if touched else -1
        if (
            best is None
            or count > best_count
            or (count == best_count and (seq > best_seq or (seq == best_seq and key < best)))
        ):
            best, best_count, best_seq = key, count, seq
    return best


# --- display ---------------------------------------------------------------------------------


def display_value(value: Any) -> Any:
    """A value for trace details: scalars and string lists as they are, dates as ISO
    strings, everything else (tallies, timelines, funnels) as compact JSON."""
    if value is None or value is MISSING:
        return None
    if isinstance(value, bool | float | str):
        return value
    if isinstance(value, int):
        return to_string(value)
    if isinstance(value, list) and all(isinstance(item, str | bool | float) for item in value):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
