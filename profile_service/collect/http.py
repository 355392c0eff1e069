"""The aiohttp application of the Collect-compatible ingest.

Every request runs the gRPC ingest path: the events are validated by the servicer's
``normalize_batch`` and applied by ``ProfileBackend.track``, under a server span whose
traceparent fired actions carry (as a gRPC call's span does).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from google.protobuf import json_format
from opentelemetry import propagate, trace

from profile_service.api.backend import ProfileBackend
from profile_service.api.validation import normalize_batch
from profile_service.collect import mapping
from profile_service.collect.access import CollectAccess
from profile_service.collect.errors import CollectError
from profile_service.collect.limits import RateLimiter
from profile_service.metrics import record_rejected, record_results
from service_common.errors import DomainError, InvalidArgument

logger = logging.getLogger(__name__)

#: Largest body Tealium accepts.
MAX_BODY_BYTES = 1024 * 1024
#: The 1x1 transparent GIF a GET answers (what a pixel tag expects).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}
_HTTP_OF_GRPC = {"UNAVAILABLE": 503, "RESOURCE_EXHAUSTED": 429, "ABORTED": 503}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CollectSettings:
    """What the application needs from the profile settings."""

    def __init__(self, *, account: str, profile: str, user_agent_header: bool = False) -> None:
        self.account = account
        self.profile = profile
        self.user_agent_header = user_agent_header
        """Fill missing ``user_agent`` parameters from the ``User-Agent`` header."""


async def _read_body(request: web.Request) -> bytes:
    """The body, refusing more than `MAX_BODY_BYTES` (read no further than that)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise CollectError(400, "the body is larger than 1 MB")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise CollectError(400, "the body is larger than 1 MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CollectError(400, "the body is not valid JSON") from None


def _params_of_body(request: web.Request, body: bytes) -> dict[str, Any]:
    """POST /event parameters: a JSON object, or a form (query-string syntax)."""
    if not body.strip():
        raise CollectError(400, "empty body")
    if request.content_type in ("application/x-www-form-urlencoded", "text/plain") and not (
        body.lstrip().startswith(b"{")
    ):
        return _params_of_query(body.decode("utf-8", "replace"))
    params = _parse_json(body)
    if not isinstance(params, dict):
        raise CollectError(400, "the body must be a JSON object")
    return params


def _params_of_query(text: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, values in parse_qs(text, keep_blank_values=True).items():
        params[key] = values[0] if len(values) == 1 else values
    return params


def _results_json(answer: tuple[bool, list[Any]]) -> web.Response:
    """The results for a caller with a key; a keyless (browser) caller learns only the
    count, not what its event changed in a profile."""
    keyed, results = answer
    if not keyed:
        return web.json_response({"accepted": len(results)})
    return web.json_response(
        {
            "results": [
                json_format.MessageToDict(r, preserving_proto_field_name=True) for r in results
            ]
        }
    )


class CollectApp:
    """Builds the aiohttp application; one per profile server."""

    def __init__(
        self,
        backend: ProfileBackend,
        access: CollectAccess,
        limiter: RateLimiter,
        settings: CollectSettings,
        tracer: trace.Tracer,
        ready: Callable[[], bool],
    ) -> None:
        self._ready = ready
        self._backend = backend
        self._access = access
        self._limiter = limiter
        self._settings = settings
        self._tracer = tracer

    def build(self) -> web.Application:
        """The application (client_max_size is above the limit so the handler answers 400)."""
        app = web.Application(client_max_size=MAX_BODY_BYTES * 2, middlewares=[self._middleware])
        app.router.add_get("/event", self._get_event)
        app.router.add_post("/event", self._post_event)
        app.router.add_post("/v3/collect/event", self._post_v3_event)
        app.router.add_post("/v3/collect/bulk-event", self._post_bulk)
        app.router.add_route("OPTIONS", "/{tail:.*}", self._preflight)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """CORS headers on every answer; `CollectError` → status + X-Error."""
        try:
            response = await handler(request)
        except CollectError as exc:
            if not exc.counted:  # refused before its events were read: one request, one count
                record_rejected(exc.reason)
            response = web.Response(status=exc.status, headers={"X-Error": exc.message})
            if exc.status == 429:
                response.headers["Retry-After"] = "1"
        except web.HTTPException as exc:
            response = web.Response(status=exc.status, headers={"X-Error": exc.reason})
        origin = request.headers.get("Origin")
        if origin is not None and self._access.cors_allows(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = "X-Error"
            response.headers["Vary"] = "Origin"
        return response

    async def _preflight(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin")
        if origin is None or not self._access.cors_allows(origin):
            raise CollectError(403, "origin not allowed")
        return web.Response(status=204, headers=_CORS_HEADERS)

    async def _get_event(self, request: web.Request) -> web.Response:
        params = _params_of_query(request.query_string)
        await self._ingest(request, [params])
        return web.Response(
            body=PIXEL_GIF,
            content_type="image/gif",
            headers={"Cache-Control": "no-store"},
        )

    async def _post_event(self, request: web.Request) -> web.Response:
        params = _params_of_body(request, await _read_body(request))
        return _results_json(await self._ingest(request, [params]))

    async def _post_v3_event(self, request: web.Request) -> web.Response:
        body = await _read_body(request)
        if not body.strip():
            raise CollectError(400, "empty body")
        params = _parse_json(body)
        if not isinstance(params, dict):
            raise CollectError(400, "the body must be a JSON object")
        return _results_json(await self._ingest(request, [params]))

    async def _post_bulk(self, request: web.Request) -> web.Response:
        body = await _read_body(request)
        if not body.strip():
            raise CollectError(400, "empty body")
        return _results_json(await self._ingest(request, mapping.bulk_events(_parse_json(body))))

    async def _ingest(
        self, request: web.Request, batch: list[dict[str, Any]]
    ) -> tuple[bool, list[Any]]:
        """Check, limit, map and track ``batch`` (one request's events) all or nothing."""
        try:
            keyed, results = await self._checked_track(request, batch)
        except CollectError as exc:
            record_rejected(exc.reason, len(batch))
            exc.counted = True
            raise
        record_results("Collect", results)
        return keyed, results

    async def _checked_track(
        self, request: web.Request, batch: list[dict[str, Any]]
    ) -> tuple[bool, list[Any]]:
        if not self._ready():
            raise CollectError(503, "not ready: waiting for Redis")
        for params in batch:
            mapping.check_keys(params)
            mapping.check_account(params, self._settings.account, self._settings.profile)
        source = mapping.datasource(batch[0])
        keyed = self._access.check(
            request.headers.get("Authorization"), source, request.headers.get("Origin")
        )
        if not self._limiter.allow(source or f"ip:{request.remote}"):
            raise CollectError(429, "rate limit exceeded")
        user_agent = (
            request.headers.get("User-Agent", "") if self._settings.user_agent_header else ""
        )
        events = [mapping.to_event(params, user_agent) for params in batch]
        context = propagate.extract(dict(request.headers))
        with self._tracer.start_as_current_span(
            f"collect {request.path}", context=context, kind=trace.SpanKind.SERVER
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            try:
                normalized = normalize_batch(
                    events, time.time_ns() // 1_000_000, traceparent=carrier.get("traceparent", "")
                )
                return keyed, await self._backend.track(normalized)
            except InvalidArgument as exc:
                raise CollectError(400, _violations_text(exc)) from None
            except DomainError as exc:
                status = _HTTP_OF_GRPC.get(exc.code.name, 500)
                logger.warning("collect ingest failed: %s", exc.code.name)
                raise CollectError(status, exc.code.name.lower().replace("_", " ")) from None


def _violations_text(exc: InvalidArgument) -> str:
    """Short ``field: description`` list, in Tealium's terms where a field maps back."""
    names = {
        "visitor_id": "tealium_visitor_id",
        "name": "tealium_event",
        "trace_id": "tealium_trace_id",
    }
    parts = []
    for violation in exc.violations[:5]:
        field = violation.field.split(".", 1)[-1]
        field = names.get(field, field)
        parts.append(f"{field}: {violation.description}")
    return "; ".join(parts)[:500]
