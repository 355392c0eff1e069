"""Helpers of the API-level tests: keys, definitions builders, waiting, secret scanning.

Shared by tests/profile_api and tests/e2e (both start real servers with ``create_server``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from opentelemetry.sdk.trace import ReadableSpan

from crowd.definitions.loader import definitions_from_dict
from crowd.profile.v1 import definitions_pb2
from tests.harness import eventually

T = TypeVar("T")

# Keys that look like nothing else in the tests, so a leak is easy to find.
ADMIN_KEY = "crowd-test-admin-key-5b1f0c9e7d3a"
"""Scopes ingest, read and admin."""
READ_KEY = "crowd-test-read-key-a47e2d18c6b9"
"""Scope read only."""
INGEST_KEY = "crowd-test-ingest-key-39c8e1f4a7d2"
"""Scope ingest only."""
DISPATCH_KEY = "crowd-test-dispatch-key-e6d4b2a09f17"
"""The profile service's key at the dispatch service (scopes dispatch, read, admin)."""
BRAZE_KEY = "braze-rest-key-0d9c8b7a6f5e4d3c2b1a"
"""The Braze REST API key of the connector (held by the dispatch service only)."""

PROFILE_KEYS: dict[str, list[str]] = {
    ADMIN_KEY: ["ingest", "read", "admin"],
    READ_KEY: ["read"],
    INGEST_KEY: ["ingest"],
}


def bearer(key: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying ``key``."""
    return (("authorization", f"Bearer {key}"),)


async def wait_for(
    check: Callable[[], Awaitable[T]], what: str, within_s: float = 20.0, interval: float = 0.05
) -> T:
    """Poll ``check()`` until it returns something truthy; fail after ``within_s`` seconds
    (`tests.harness.eventually` with this suite's argument order).

    Used where no in-process event can be awaited (state in Redis changed by a background
    task of a server); the deadline bounds the wait, the assertion is on the state.
    """
    return await eventually(check, within=within_s, interval=interval, what=what)


def counter_definitions(
    step: float = 1.0, *, second_step: float | None = None, extra: Mapping[str, Any] | None = None
) -> definitions_pb2.Definitions:
    """A document with visitor number ``counter`` incremented by ``step`` on every event
    (and ``counter2`` by ``second_step`` when given)."""
    attributes: list[dict[str, Any]] = [
        {
            "id": "counter",
            "scope": "visitor",
            "type": "number",
            "enrichments": [
                {
                    "id": "count",
                    "kind": "increment",
                    "when": "any_event",
                    "operands": [{"constant": step}],
                }
            ],
        }
    ]
    if second_step is not None:
        attributes.append(
            {
                "id": "counter2",
                "scope": "visitor",
                "type": "number",
                "enrichments": [
                    {
                        "id": "count",
                        "kind": "increment",
                        "when": "any_event",
                        "operands": [{"constant": second_step}],
                    }
                ],
            }
        )
    document: dict[str, Any] = {"attributes": attributes, **(extra or {})}
    return definitions_from_dict(document)


def secrets_in_spans(spans: Iterable[ReadableSpan], secrets: Iterable[str]) -> list[str]:
    """Descriptions of every place a secret occurs in what the spans export."""
    found: list[str] = []
    secrets = list(secrets)
    for span in spans:
        parts = [
            span.name,
            repr(dict(span.attributes or {})),
            repr(span.status.description),
            repr(dict(span.resource.attributes)),
        ]
        parts += [e.name + repr(dict(e.attributes or {})) for e in span.events]
        parts += [repr(dict(link.attributes or {})) for link in span.links]
        text = "\n".join(parts)
        found += [f"span {span.name!r}" for secret in secrets if secret in text]
    return found


def secrets_in_logs(records: Iterable[logging.LogRecord], secrets: Iterable[str]) -> list[str]:
    """Descriptions of every log record holding a secret (message, args, extras, traceback)."""
    found: list[str] = []
    secrets = list(secrets)
    for record in records:
        text = "\n".join(
            [
                record.getMessage(),
                repr(record.args),
                record.exc_text or "",
                logging.Formatter().formatException(record.exc_info) if record.exc_info else "",
                record.stack_info or "",
                repr({k: v for k, v in vars(record).items() if k not in ("msg", "args")}),
            ]
        )
        found += [f"log {record.name}: {record.msg!r}" for secret in secrets if secret in text]
    return found
