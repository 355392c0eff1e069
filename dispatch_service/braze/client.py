"""The HTTP client that sends planned requests to Braze and classifies the answers.

Classification (reference/braze-rest-api.md §2):
- 2xx: delivered, except the objects named in ``errors`` (by ``input_array`` and ``index`` of
  the request as sent): their actions FAIL permanently with Braze's ``type`` text.
- 429: RETRY after the wait the headers name (``X-Ratelimit-Retry-After``, ``Retry-After``,
  ``X-RateLimit-Reset``); that wait is also set as a pause shared by every replica.
- 408, 5xx, timeouts, connection errors: RETRY (the caller backs off; see retry.py).
- other 4xx: FAILED permanently with Braze's ``message``.

The API key goes only into the ``Authorization`` header. It is never logged, never put on a
span (the aiohttp instrumentation records no request headers unless told to) and scrubbed from
any text that could reach an error or a dead-letter reason.
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
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from redis.exceptions import RedisError

from dispatch_service.braze.connector import BrazeConnector
from dispatch_service.braze.deltas import DeltaStore
from dispatch_service.braze.endpoints import RateGroup
from dispatch_service.braze.planner import PlannedRequest
from dispatch_service.braze.rate_limit import SharedRateLimiter, Throttled
from dispatch_service.braze.results import ActionResult, Outcome, delivered, failed, retry
from dispatch_service.braze.retry import retry_after_from_headers
from dispatch_service.braze.tracing import parent_and_links
from dispatch_service.metrics import record_braze_response, record_deliveries, record_rate_limit

log = logging.getLogger(__name__)

#: Braze answers are small JSON documents; anything bigger is read only this far.
_MAX_RESPONSE_BYTES = 1024 * 1024
#: Longest Braze text copied into a reason.
_MAX_REASON_CHARS = 500
REDACTED = "[REDACTED]"
TRACER_NAME = "crowd.dispatch.braze"


def create_session(
    tracer_provider: TracerProvider | None = None, *, max_connections: int = 100
) -> aiohttp.ClientSession:
    """An aiohttp session whose requests get an OpenTelemetry client span each.

    The span is a child of the current span (the Braze request span while
    :meth:`BrazeClient.send` runs), and its context goes to Braze as ``traceparent``.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections),
        trace_configs=[create_trace_config(tracer_provider=tracer_provider)],
    )


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    body: Any
    """Parsed JSON, or ``None`` if the body was not JSON."""


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"


class BrazeClient:
    """Sends planned requests of one connector, within the shared rate limits."""

    def __init__(
        self,
        connector: BrazeConnector,
        session: aiohttp.ClientSession,
        limiter: SharedRateLimiter,
        deltas: DeltaStore | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._connector = connector
        self._session = session
        self._limiter = limiter
        self._deltas = deltas
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self._secrets = [
            s.get_secret_value()
            for s in (connector.api_key, connector.partner_api_key, connector.client_secret)
            if s is not None and s.get_secret_value()
        ]

    def scrub(self, text: str) -> str:
        """``text`` with every configured secret replaced (defence in depth for reasons)."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    async def send(self, request: PlannedRequest) -> list[ActionResult]:
        """Send one request (waiting for the shared rate limit) and classify the answer.

        Returns one result per carried action. Never raises for Braze or network failures.
        """
        path = request.endpoint.value
        parent, links = parent_and_links([(i.idempotency_key, i.action) for i in request.items])
        attributes: dict[str, str | int] = {
            "braze.connector_id": self._connector.id,
            "braze.endpoint": path,
            "braze.batch.actions": len(request.items),
            "braze.batch.objects": request.object_count,
            "braze.batch.bytes": len(request.encoded),
            "braze.attempt": max((i.attempt for i in request.items), default=1),
        }
        with self._tracer.start_as_current_span(
            f"braze POST {path}",
            context=parent,
            kind=SpanKind.INTERNAL,
            links=links,
            attributes=attributes,
        ) as span:
            results = await self._send_in_span(request, span)
            record_deliveries(
                {i.idempotency_key: i.action.fired_at.ToMilliseconds() for i in request.items},
                {r.idempotency_key: r.outcome.value for r in results},
            )
            counts = {o: sum(r.outcome is o for r in results) for o in Outcome}
            for outcome, count in counts.items():
                span.set_attribute(f"braze.results.{outcome.value}", count)
            if counts[Outcome.RETRY] or counts[Outcome.FAILED]:
                first = next(r for r in results if r.outcome in (Outcome.RETRY, Outcome.FAILED))
                span.set_status(Status(StatusCode.ERROR, first.reason))
            return results

    async def _send_in_span(self, request: PlannedRequest, span: Span) -> list[ActionResult]:
        group = request.endpoint.rate_group
        # The body is already serialised (request.encoded): the slot is the last thing taken
        # before the bytes go out, and it is held until the answer is back (rate_limit.py).
        try:
            slot = await self._limiter.reserve(group, self._connector.max_rate_wait_s)
        except Throttled as exc:
            record_rate_limit(request.endpoint.value, None)
            span.set_attribute("braze.rate_limit.throttled", True)
            return [retry(key, f"not sent: {exc}", after=exc.wait_s) for key in request.keys]
        except RedisError as exc:
            reason = f"rate limiter unavailable, not sent: {type(exc).__name__}"
            return [retry(key, reason) for key in request.keys]
        span.set_attribute("braze.rate_limit.wait_s", round(slot.waited_s, 3))
        record_rate_limit(request.endpoint.value, slot.waited_s)
        # Without an answer the slot is not released: Braze may still count the request, so
        # the slot stays in flight until its lease ends.
        try:
            response = await self._post(request)
        except TimeoutError:
            reason = f"no answer from Braze within {self._connector.timeout_s:g}s"
            log.warning("braze %s %s: %s", self._connector.id, request.endpoint.value, reason)
            return [retry(key, reason) for key in request.keys]
        except aiohttp.ClientError as exc:
            reason = self.scrub(_truncate(f"connection error: {type(exc).__name__}: {exc}"))
            log.warning("braze %s %s: %s", self._connector.id, request.endpoint.value, reason)
            return [retry(key, reason) for key in request.keys]
        await slot.release()
        span.set_attribute("http.response.status_code", response.status)
        record_braze_response(
            request.endpoint.value,
            response.status,
            request.object_count,
            request.endpoint.max_objects,
        )
        return await self._classify(request, response, group)

    async def _post(self, request: PlannedRequest) -> _Response:
        headers = {
            "Authorization": f"Bearer {self._connector.api_key.get_secret_value()}",
            "Content-Type": "application/json",
        }
        url = self._connector.base_url + request.endpoint.value
        timeout = aiohttp.ClientTimeout(total=self._connector.timeout_s)
        async with self._session.post(
            url, data=request.encoded, headers=headers, timeout=timeout
        ) as resp:
            raw = await resp.content.read(_MAX_RESPONSE_BYTES)
            try:
                body = json.loads(raw.decode("utf-8")) if raw else None
            except (UnicodeDecodeError, ValueError):
                body = None
            return _Response(resp.status, resp.headers, body)

    def _message(self, response: _Response) -> str:
        """Braze's message for a fatal answer, with its error details if it gave any."""
        body = response.body if isinstance(response.body, dict) else {}
        message = str(body.get("message") or f"HTTP {response.status}")
        details = [
            str(e.get("type"))
            for e in body.get("errors") or []
            if isinstance(e, dict) and e.get("type")
        ]
        text = f"{message} ({'; '.join(details)})" if details else message
        return self.scrub(_truncate(text))

    async def _classify(
        self, request: PlannedRequest, response: _Response, group: RateGroup
    ) -> list[ActionResult]:
        status = response.status
        if 200 <= status < 300:
            await self._honour_remaining(response, group)
            return await self._accepted(request, response)
        reason = f"Braze answered {status}: {self._message(response)}"
        log.warning("braze %s %s: %s", self._connector.id, request.endpoint.value, reason)
        if status == 429:
            wait = retry_after_from_headers(response.headers, time.time())
            if wait is not None:
                await self._pause(group, wait)
            return [retry(key, reason, status, wait) for key in request.keys]
        if status == 408 or status >= 500:
            # A 5xx may name a wait too (Retry-After); X-RateLimit-Reset says nothing here.
            wait = None
            if "Retry-After" in response.headers or "X-Ratelimit-Retry-After" in response.headers:
                wait = retry_after_from_headers(response.headers, time.time())
            return [retry(key, reason, status, wait) for key in request.keys]
        return [failed(key, reason, status) for key in request.keys]

    async def _accepted(self, request: PlannedRequest, response: _Response) -> list[ActionResult]:
        """Results of a 2xx: fail the actions behind each ``errors`` item, deliver the rest."""
        status = response.status
        body = response.body if isinstance(response.body, dict) else {}
        raw_errors = body.get("errors")
        errors: list[Any] = raw_errors if isinstance(raw_errors, list) else []
        refused: dict[str, str] = {}
        rejected_attributes: set[int] = set()
        unattributed: list[str] = []
        for error in errors:
            if not isinstance(error, dict):
                continue
            text = self.scrub(_truncate(str(error.get("type") or "rejected by Braze")))
            array, index = error.get("input_array"), error.get("index")
            if not isinstance(array, str) or not isinstance(index, int):
                unattributed.append(text)
                continue
            keys = request.keys_at(array, index)
            if not keys:
                unattributed.append(text)
                continue
            if array == "attributes":
                rejected_attributes.add(index)
            for key in keys:
                refused.setdefault(key, f"Braze rejected {array}[{index}]: {text}")
        if self._deltas is not None:
            await self._deltas.record(request, rejected_attributes)
        note = ""
        if unattributed:
            # Braze processed everything not affected by an error; an error that names no
            # object cannot be pinned on an action, and retrying would duplicate events.
            note = "Braze reported an error for no specific object: " + "; ".join(unattributed)
            log.warning("braze %s %s: %s", self._connector.id, request.endpoint.value, note)
        return [
            failed(key, refused[key], status) if key in refused else delivered(key, status, note)
            for key in request.keys
        ]

    async def _honour_remaining(self, response: _Response, group: RateGroup) -> None:
        """Braze says the budget is spent (Remaining: 0): pause everyone until it resets.

        This catches budgets smaller than the configured one (hourly contract limits, a burst
        limit shared with other workspaces) before they turn into 429s.
        """
        if response.headers.get("X-RateLimit-Remaining", "").strip() != "0":
            return
        reset = {"X-RateLimit-Reset": response.headers.get("X-RateLimit-Reset", "")}
        wait = retry_after_from_headers(reset, time.time())
        if wait:
            await self._pause(group, wait)

    async def _pause(self, group: RateGroup, seconds: float) -> None:
        try:
            await self._limiter.pause(group, seconds)
        except RedisError as exc:
            log.warning("could not share the Braze pause of %.1fs: %s", seconds, exc)
