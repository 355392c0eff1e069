"""Parsing of the datetime strings Braze accepts for events, purchases and cohorts."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# Braze also documents yyyy-MM-dd'T'HH:mm:ss:SSSZ (a colon before the milliseconds).
_COLON_MILLIS = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}):(\d{1,6})(Z|[+-]\d{2}:?\d{2})?$"
)
# A time component is required: Braze's event/purchase `time` is a datetime, not a date.
_HAS_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def parse_datetime(value: object) -> datetime | None:
    """Parse an ISO-8601 datetime string; naive values are taken as UTC.

    Returns:
        An aware datetime, or ``None`` if ``value`` is not a valid datetime string.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    match = _COLON_MILLIS.match(text)
    if match is not None:
        text = f"{match.group(1)}.{match.group(2)}{match.group(3) or ''}"
    if not _HAS_TIME.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def isoformat(moment: datetime) -> str:
    """UTC ISO-8601 text with a ``Z`` suffix, as Braze exports show times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
