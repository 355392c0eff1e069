"""service_common.logging: JSON/text output and secret redaction everywhere in a record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from service_common import configure_logging, redact, register_secret

SECRET = "s3cr3t-token-for-logging-tests"
OTHER = "another-secret-value-42"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Root logging into a StringIO through configure_logging; handler removed afterwards."""
    register_secret(SECRET)
    buffer = io.StringIO()
    root = logging.getLogger()
    old_level = root.level
    handler = configure_logging("DEBUG", "json", stream=buffer)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_have_the_standard_fields_and_extras(stream: io.StringIO) -> None:
    logging.getLogger("crowd.test").info("hello %s", "world", extra={"visitor": "v1", "n": 3})
    [line] = _lines(stream)
    assert line["msg"] == "hello world"
    assert line["level"] == "INFO"
    assert line["logger"] == "crowd.test"
    assert isinstance(line["ts"], str) and line["ts"].endswith("Z")
    assert line["visitor"] == "v1" and line["n"] == 3


def test_secret_is_redacted_from_message_args_extras_and_traceback(
    stream: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("crowd.test")
    log.warning(f"inline {SECRET}")
    log.warning("as arg %s", SECRET)
    log.warning("as extra", extra={"header": f"Bearer {SECRET}", "nested": {"k": [SECRET]}})
    try:
        raise ValueError(f"bad key {SECRET}")
    except ValueError:
        log.exception("failed")

    output = stream.getvalue()
    assert SECRET not in output
    assert output.count("[REDACTED]") >= 5
    lines = _lines(stream)
    assert lines[0]["msg"] == "inline [REDACTED]"
    assert lines[1]["msg"] == "as arg [REDACTED]"
    assert lines[2]["header"] == "Bearer [REDACTED]"
    assert "ValueError: bad key [REDACTED]" in str(lines[3]["exc"])

    # Handlers we did not install (pytest's caplog here) see redacted text too.
    assert SECRET not in caplog.text
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_secrets_registered_later_are_redacted_too(stream: io.StringIO) -> None:
    register_secret(OTHER)
    logging.getLogger("crowd.test").error("%s and %s", SECRET, OTHER)
    assert _lines(stream)[0]["msg"] == "[REDACTED] and [REDACTED]"


def test_short_and_empty_secrets_are_ignored() -> None:
    register_secret("")
    register_secret(None)
    register_secret("abc")
    assert redact("abc abc") == "abc abc"


def test_text_format_for_humans() -> None:
    register_secret(SECRET)
    buffer = io.StringIO()
    root = logging.getLogger()
    old_level = root.level
    handler = configure_logging("info", "text", stream=buffer)
    try:
        logging.getLogger("crowd.text").info("started %s", SECRET, extra={"port": 50051})
        logging.getLogger("crowd.text").debug("not shown")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    [line] = buffer.getvalue().splitlines()
    assert " INFO    crowd.text: started [REDACTED] port=50051" in line


def test_reconfiguring_replaces_our_handler_only() -> None:
    root = logging.getLogger()
    old_level = root.level
    first = configure_logging("INFO", "json", stream=io.StringIO())
    second = configure_logging("INFO", "text", stream=io.StringIO())
    try:
        assert first not in root.handlers
        assert second in root.handlers
    finally:
        root.removeHandler(second)
        root.setLevel(old_level)


def test_log_lines_carry_the_active_trace_ids(stream: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("crowd.test").info("inside a span")
    [line] = _lines(stream)
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")
