"""Friendly durations for definitions documents: ``"30m"``, ``"24h"``, ``"395d"``, ``"1h30m"``.

Proto JSON only knows ``"1800s"``; people write minutes, hours and days. `parse_duration`
accepts both and returns the proto JSON form, which ``json_format.ParseDict`` understands.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from google.protobuf import duration_pb2

_UNIT_SECONDS: dict[str, Decimal] = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
    "w": Decimal(7 * 86400),
}
# One or more "<number><unit>" parts, e.g. "1h30m"; "ms" must be tried before "m".
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")
# google.protobuf.Duration's documented range: about +-10,000 years.
_MAX_SECONDS = 315_576_000_000

DURATION_HINT = 'write a duration with a unit, e.g. "500ms", "90s", "30m", "24h", "395d" or "1h30m"'


class DurationSyntaxError(ValueError):
    """The text is not a duration; the message says what is expected."""


def parse_duration(text: str) -> str:
    """Return ``text`` as a proto JSON duration (``"<seconds>[.<fraction>]s"``).

    Raises:
        DurationSyntaxError: ``text`` is not a duration or is out of range.
    """
    compact = text.strip().replace(" ", "").lower()
    negative = compact.startswith("-")
    if negative:
        compact = compact[1:]
    if not _WHOLE.fullmatch(compact):
        raise DurationSyntaxError(f'"{text}" is not a duration; {DURATION_HINT}')
    try:
        seconds = sum(
            (Decimal(amount) * _UNIT_SECONDS[unit] for amount, unit in _PART.findall(compact)),
            Decimal(0),
        )
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise DurationSyntaxError(f'"{text}" is not a duration; {DURATION_HINT}') from exc
    if seconds > _MAX_SECONDS:
        raise DurationSyntaxError(f'"{text}" is out of range (at most about 10,000 years)')
    # Nanosecond precision is all a Duration holds.
    seconds = seconds.quantize(Decimal("0.000000001"))
    rendered = format(seconds.normalize(), "f")
    return f"{'-' if negative and seconds else ''}{rendered}s"


def duration_ms(duration: duration_pb2.Duration) -> int:
    """A Duration in whole milliseconds (sub-millisecond parts are dropped)."""
    return duration.seconds * 1000 + duration.nanos // 1_000_000


def format_duration_ms(ms: int) -> str:
    """A short form of a millisecond amount for messages: ``"30m"``, ``"24h"``, ``"1500ms"``."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        # "24h" and "36h" read better than "1d" and "1.5d"; days from 2 days on.
        if ms and ms % size == 0 and (unit != "d" or ms >= 2 * size):
            return f"{ms // size}{unit}"
    return f"{ms}ms"
