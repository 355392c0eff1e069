"""Enrichments that read dates: the difference between two dates (a number) and a date
formatted as a string."""

from __future__ import annotations

import datetime as dt

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.context import Apply, EvalContext
from profile_service.engine.enrichment_spec import Spec, save
from profile_service.engine.values import to_date

UNIT_MS: dict[int, int] = {
    pb.TIME_UNIT_SECONDS: 1_000,
    pb.TIME_UNIT_MINUTES: 60_000,
    pb.TIME_UNIT_HOURS: 3_600_000,
    pb.TIME_UNIT_DAYS: 86_400_000,
    pb.TIME_UNIT_WEEKS: 7 * 86_400_000,
    pb.TIME_UNIT_MONTHS: 30 * 86_400_000,
}
"""Milliseconds per unit (months are 30 days, as in rule offsets)."""

ISO_8601_UTC = "%Y-%m-%dT%H:%M:%SZ"
"""FORMAT_DATE's output without a ``date_format``."""


def set_date_difference(spec: Spec) -> Apply:
    """Whole units between two dates, always positive (Tealium stores it positive)."""
    first, second = spec.operand(0), spec.operand(1)
    unit_ms = UNIT_MS.get(spec.enrichment.unit, UNIT_MS[pb.TIME_UNIT_DAYS])
    formats = spec.formats
    meta = spec.meta

    def difference(c: EvalContext) -> None:
        a = to_date(first(c), formats)
        if a is None:
            return
        b = to_date(second(c), formats)
        if b is None:
            return
        save(c, meta, float(abs(a - b) // unit_ms))

    return difference


def format_date(spec: Spec) -> Apply:
    """The date operands[0] as a string: strftime ``date_format`` in UTC, else ISO 8601
    (``2026-12-05T10:30:00Z``)."""
    read = spec.operand(0)
    pattern = spec.enrichment.date_format
    meta = spec.meta

    def format_(c: EvalContext) -> None:
        ms = to_date(read(c))
        if ms is None:
            return
        moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
        save(c, meta, moment.strftime(pattern or ISO_8601_UTC))

    return format_
