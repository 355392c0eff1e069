"""HTTP to Braze's partner cohort endpoints, within the shared rate limit, classified.

The partner endpoints take their credentials in the JSON body (``partner_api_key``,
``client_secret``), not in a header. The body is never logged or put on a span (the span
carries only the connector, cohort, endpoint, id count and outcome), every text taken from a
response is scrubbed of both credentials, and both are registered with the log redactor as
a second line of defence.

Classification, as for the other Braze endpoints:

- 2xx: delivered (a ``X-RateLimit-Remaining: 0`` answer pauses every replica until reset);
- 429: retry after the wait the headers name (shared pause across replicas);
- 408, 423 ("Resource locked"), 5xx, timeouts, connection errors: retry (a ``Retry-After``
  is honoured);
- any other 4xx: failed for good, with Braze's message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from redis.exceptions import RedisError

from dispatch_service.braze.connector import BrazeConnector
from dispatch_service.braze.endpoints import RateGroup
from dispatch_service.braze.rate_limit import SharedRateLimiter, Throttled
from dispatch_service.braze.results import Outcome
from dispatch_service.braze.retry import retry_after_from_headers
from service_common.logging import register_secret

__all__ = ["COHORTS_PATH", "MEMBERS_PATH", "CohortClient", "CohortResult"]

log = logging.getLogger(__name__)

TRACER_NAME = "crowd.dispatch.cohorts"
COHORTS_PATH = "/cohorts"
MEMBERS_PATH = "/cohorts/users"
REDACTED = "[REDACTED]"
_MAX_RESPONSE_BYTES = 1024 * 1024
_MAX_REASON_CHARS = 500
_PROPAGATOR = TraceContextTextMapPropagator()
_RETRYABLE_4XX = frozenset({408, 423})


@dataclass(frozen=True)
class CohortResult:
    """The outcome of one request to a partner endpoint."""

    outcome: Outcome
    """DELIVERED, RETRY or FAILED."""
    http_status: int = 0
    reason: str = ""
    """Braze's message (scrubbed of credentials), or what went wrong on our side."""
    retry_after_s: float | None = None
    """For RETRY: the wait Braze asked for, if any."""


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"


def _parent(traceparent: str) -> tuple[Context | None, list[Link]]:
    """Continue the trace of the SyncCohort call that last fed the cohort (and link to it)."""
    if not traceparent:
        return None, []
    context = trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent}))
    span_context = context.get_span_context()
    if not span_context.is_valid:
        return None, []
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context)), [Link(span_context)]


class CohortClient:
    """Posts to one connector's partner cohort endpoints."""

    def __init__(
        self,
        connector: BrazeConnector,
        session: aiohttp.ClientSession,
        limiter: SharedRateLimiter,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if not connector.partner_name or not connector.partner_api_key:
            raise ValueError(f"connector {connector.id} has no partner cohort credentials")
        if not connector.client_secret:
            raise ValueError(f"connector {connector.id} has no partner cohort credentials")
        self._connector = connector
        self._session = session
        self._limiter = limiter
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self._credentials = {
            "partner_api_key": connector.partner_api_key.get_secret_value(),
            "client_secret": connector.client_secret.get_secret_value(),
        }
        self._secrets = [s for s in self._credentials.values() if s]
        for secret in self._secrets:
            register_secret(secret)
        self.base = f"{connector.base_url}/partners/{connector.partner_name}"

    def scrub(self, text: str) -> str:
        """``text`` with both credentials replaced (Braze echoes the client secret in one of
        its 401 messages)."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    async def post(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        cohort_id: str,
        ids: int,
        attempt: int,
        traceparent: str = "",
    ) -> CohortResult:
        """POST ``body`` (credentials are added here) to ``path`` and classify the answer.

        Never raises for Braze, network or rate-limiter failures: they are RETRY results.
        """
        parent, links = _parent(traceparent)
        attributes: dict[str, str | int] = {
            "braze.connector_id": self._connector.id,
            "braze.endpoint": f"/partners/{self._connector.partner_name}{path}",
            "braze.cohort_id": cohort_id,
            "braze.batch.ids": ids,
            "braze.attempt": attempt,
        }
        name = f"braze POST /partners/{{partner}}{path}"
        with self._tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.INTERNAL, links=links, attributes=attributes
        ) as span:
            result = await self._send(path, body, span)
            span.set_attribute("braze.outcome", result.outcome.value)
            if result.outcome is not Outcome.DELIVERED:
                span.set_status(Status(StatusCode.ERROR, result.reason))
            return result

    async def _send(self, path: str, body: Mapping[str, Any], span: trace.Span) -> CohortResult:
        # Serialise first: the rate-limit slot is the last thing taken before the bytes go out
        # and is held until Braze answers (see dispatch_service.braze.rate_limit).
        encoded = json.dumps({**self._credentials, **body}, ensure_ascii=False).encode("utf-8")
        try:
            slot = await self._limiter.reserve(RateGroup.COHORTS, self._connector.max_rate_wait_s)
        except Throttled as exc:
            span.set_attribute("braze.rate_limit.throttled", True)
            return CohortResult(Outcome.RETRY, 0, f"not sent: {exc}", exc.wait_s)
        except RedisError as exc:
            reason = f"rate limiter unavailable, not sent: {type(exc).__name__}"
            return CohortResult(Outcome.RETRY, 0, reason)
        span.set_attribute("braze.rate_limit.wait_s", round(slot.waited_s, 3))
        timeout = aiohttp.ClientTimeout(total=self._connector.timeout_s)
        try:
            async with self._session.post(
                self.base + path,
                data=encoded,
                headers={"Content-Type": "application/json"},
                timeout=timeout,
            ) as resp:
                raw = await resp.content.read(_MAX_RESPONSE_BYTES)
                status, headers = resp.status, resp.headers
        except TimeoutError:
            # No answer: Braze may still count the request, so the slot is not released
            # early; it frees up when its lease ends.
            reason = f"no answer from Braze within {self._connector.timeout_s:g}s"
            log.warning("braze %s POST %s: %s", self._connector.id, path, reason)
            return CohortResult(Outcome.RETRY, 0, reason)
        except aiohttp.ClientError as exc:
            reason = self.scrub(_truncate(f"connection error: {type(exc).__name__}: {exc}"))
            log.warning("braze %s POST %s: %s", self._connector.id, path, reason)
            return CohortResult(Outcome.RETRY, 0, reason)
        await slot.release()
        span.set_attribute("http.response.status_code", status)
        return await self._classify(path, status, headers, raw)

    def _message(self, status: int, raw: bytes) -> str:
        try:
            parsed = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            parsed = None
        message = parsed.get("message") if isinstance(parsed, dict) else None
        return self.scrub(_truncate(str(message or f"HTTP {status}")))

    async def _classify(
        self, path: str, status: int, headers: Mapping[str, str], raw: bytes
    ) -> CohortResult:
        if 200 <= status < 300:
            await self._honour_remaining(headers)
            return CohortResult(Outcome.DELIVERED, status)
        reason = f"Braze answered {status}: {self._message(status, raw)}"
        log.warning("braze %s POST %s: %s", self._connector.id, path, reason)
        if status == 429:
            wait = retry_after_from_headers(headers, time.time())
            if wait is not None:
                await self._pause(wait)
            return CohortResult(Outcome.RETRY, status, reason, wait)
        if status in _RETRYABLE_4XX or status >= 500:
            wait = None
            if "Retry-After" in headers or "X-Ratelimit-Retry-After" in headers:
                wait = retry_after_from_headers(headers, time.time())
            return CohortResult(Outcome.RETRY, status, reason, wait)
        return CohortResult(Outcome.FAILED, status, reason)

    async def _honour_remaining(self, headers: Mapping[str, str]) -> None:
        if headers.get("X-RateLimit-Remaining", "").strip() != "0":
            return
        reset = {"X-RateLimit-Reset": headers.get("X-RateLimit-Reset", "")}
        wait = retry_after_from_headers(reset, time.time())
        if wait:
            await self._pause(wait)

    async def _pause(self, seconds: float) -> None:
        try:
            await self._limiter.pause(RateGroup.COHORTS, seconds)
        except RedisError as exc:
            log.warning("could not share the Braze pause of %.1fs: %s", seconds, exc)
