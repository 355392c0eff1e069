"""Structured logging (JSON lines or text) with process-wide secret redaction.

* :func:`configure_logging` installs one root handler writing JSON lines
  (``ts``, ``level``, ``logger``, ``msg``, trace/span ids, the acting API key id, extra fields,
  ``exc``) or human-readable text.
* :func:`register_secret` adds a value (API key, Redis password) that must never be written out;
  settings register theirs when they load. Redaction happens in two places so that no handler
  can miss it:

  - a log-record factory, installed on the first registration, rewrites the message (with its
    args already merged), the exception text and the stack text of *every* record when it is
    created, so foreign handlers (pytest's caplog, library handlers) see redacted text too;
  - :class:`RedactingFilter` on our handler also redacts extra fields (``extra={...}``), which
    stdlib attaches only after the factory has run.

Secrets shorter than :data:`MIN_SECRET_LENGTH` are not registered: redacting every ``"a"`` in
the logs would make them unreadable while protecting nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal, TextIO

from opentelemetry import trace

from service_common.principal import current_principal

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "configure_logging",
    "redact",
    "register_secret",
]

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 6

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_factory_installed = False

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def register_secret(value: str | None) -> None:
    """Make ``value`` appear as ``[REDACTED]`` in every log record from now on.

    Safe to call repeatedly with the same value and from any thread. ``None``, empty and short
    values (< :data:`MIN_SECRET_LENGTH` characters) are ignored.
    """
    global _pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first, so a secret containing another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))
        _install_record_factory()


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``[REDACTED]``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(REDACTED, text)


def _redact_core(record: logging.LogRecord) -> None:
    """Redact the message, exception and stack text of ``record`` in place."""
    if _pattern is None:
        return
    try:
        message = record.getMessage()
    except Exception:
        return  # a bad format string: the handler reports it when it formats the record
    clean = redact(message)
    if clean != message:
        # The args are merged in: a secret may have come from an argument.
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        # Pre-render the traceback; formatters reuse ``exc_text`` instead of re-rendering it.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _install_record_factory() -> None:
    """Chain a redacting factory in front of the current log-record factory (once)."""
    global _factory_installed
    if _factory_installed:
        return
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_core(record)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = str(value)
    clean = redact(text)
    # Only replace containers/objects (with their redacted text) when they held a secret.
    return clean if clean != text else value


class RedactingFilter(logging.Filter):
    """Handler filter redacting message, args, extra fields, exception and stack text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        _redact_core(record)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, _redact_value(value))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def _context_fields() -> dict[str, str]:
    """Trace ids of the active span and the acting API key id, for log/trace correlation."""
    fields: dict[str, str] = {}
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        fields["trace_id"] = format(span_context.trace_id, "032x")
        fields["span_id"] = format(span_context.span_id, "016x")
    principal = current_principal()
    if principal is not None:
        fields["principal"] = principal.key_id
    return fields


def _timestamp(record: logging.LogRecord) -> str:
    when = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, trace context, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(_context_fields())
        for key, value in _extras(record).items():
            payload.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exc"] = record.exc_text
        if record.stack_info:
            payload["stack"] = record.stack_info
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger: msg key=value ...`` followed by any traceback, for humans."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {**_context_fields(), **_extras(record)}
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


def configure_logging(
    level: str | int = "INFO",
    fmt: Literal["json", "text"] = "json",
    *,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send all logging to one redacting handler on the root logger and return it.

    Calling it again replaces the handler it installed before (other handlers are left alone),
    so tests and ``main`` can both call it.

    Args:
        level: Root log level (name or number).
        fmt: ``"json"`` for JSON lines (production), ``"text"`` for humans.
        stream: Where to write; standard error by default.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    handler.set_name("crowd")
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "crowd":
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
