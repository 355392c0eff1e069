"""Validation of the engine settings: visit timeouts, retention, size limits, date formats."""

from __future__ import annotations

from google.protobuf import duration_pb2

from crowd.definitions.defaults import DEFAULT_VISIT_TIMEOUT_MS, MAX_VISIT_LENGTH_MS
from crowd.definitions.durations import duration_ms, format_duration_ms
from crowd.definitions.limits import (
    MAX_COLLECTION_SIZE_SETTING,
    MAX_DATE_FORMATS,
    MAX_EVENT_DEDUP_WINDOW_MS,
    MAX_PLATFORM_LENGTH,
    MAX_STRING_LENGTH_SETTING,
    MAX_VISIT_TIMEOUT_MS,
    MAX_VISITOR_RETENTION_MS,
    MIN_VISIT_TIMEOUT_MS,
)
from crowd.definitions.validate_attributes import check_date_format
from crowd.definitions.validation_context import ValidationContext


def check_duration_range(
    ctx: ValidationContext,
    duration: duration_pb2.Duration,
    path: str,
    low_ms: int,
    high_ms: int,
    what: str,
) -> bool:
    """Report a Duration outside ``[low_ms, high_ms]``; True if inside."""
    if duration.seconds < 0 or duration.nanos < 0:
        ctx.add(path, f"the {what} must not be negative")
        return False
    ms = duration_ms(duration)
    if ms < low_ms:
        ctx.add(path, f"the {what} must be at least {format_duration_ms(low_ms)}")
        return False
    if ms > high_ms:
        ctx.add(path, f"the {what} must be at most {format_duration_ms(high_ms)}")
        return False
    return True


def check_settings(ctx: ValidationContext) -> None:
    """Check ``settings``; unset fields take the documented defaults and are always fine."""
    settings = ctx.definitions.settings
    path = "settings"
    longest_timeout = DEFAULT_VISIT_TIMEOUT_MS
    if settings.HasField("visit_timeout") and check_duration_range(
        ctx,
        settings.visit_timeout,
        f"{path}.visit_timeout",
        MIN_VISIT_TIMEOUT_MS,
        MAX_VISIT_TIMEOUT_MS,
        "visit timeout",
    ):
        longest_timeout = duration_ms(settings.visit_timeout)
    for platform, timeout in sorted(settings.platform_visit_timeouts.items()):
        timeout_path = f"{path}.platform_visit_timeouts[{platform!r}]"
        if not platform:
            ctx.add(timeout_path, "the platform name is empty")
        elif len(platform) > MAX_PLATFORM_LENGTH:
            ctx.add(timeout_path, f"platform names have at most {MAX_PLATFORM_LENGTH} characters")
        if check_duration_range(
            ctx, timeout, timeout_path, MIN_VISIT_TIMEOUT_MS, MAX_VISIT_TIMEOUT_MS, "visit timeout"
        ):
            longest_timeout = max(longest_timeout, duration_ms(timeout))
    if settings.HasField("max_visit_length"):
        check_duration_range(
            ctx,
            settings.max_visit_length,
            f"{path}.max_visit_length",
            MIN_VISIT_TIMEOUT_MS,
            MAX_VISIT_LENGTH_MS,
            "maximum visit length",
        )
    if settings.HasField("visitor_retention"):
        # A profile must outlive its visit, or it would expire before the visit ends.
        check_duration_range(
            ctx,
            settings.visitor_retention,
            f"{path}.visitor_retention",
            longest_timeout,
            MAX_VISITOR_RETENTION_MS,
            "visitor retention",
        )
    if settings.HasField("event_dedup_window"):
        check_duration_range(
            ctx,
            settings.event_dedup_window,
            f"{path}.event_dedup_window",
            0,
            MAX_EVENT_DEDUP_WINDOW_MS,
            "deduplication window",
        )
    if not 0 <= settings.max_string_length <= MAX_STRING_LENGTH_SETTING:
        ctx.add(
            f"{path}.max_string_length",
            f"must be between 1 and {MAX_STRING_LENGTH_SETTING:,} (0 or unset: 1,000)",
        )
    if not 0 <= settings.max_collection_size <= MAX_COLLECTION_SIZE_SETTING:
        ctx.add(
            f"{path}.max_collection_size",
            f"must be between 1 and {MAX_COLLECTION_SIZE_SETTING:,} (0 or unset: 30,000)",
        )
    if len(settings.date_formats) > MAX_DATE_FORMATS:
        ctx.add(f"{path}.date_formats", f"at most {MAX_DATE_FORMATS} date formats are allowed")
    for k, pattern in enumerate(settings.date_formats):
        check_date_format(ctx, pattern, f"{path}.date_formats[{k}]")
