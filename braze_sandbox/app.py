"""aiohttp application: Braze routes and the request pipeline every API call goes through.

Pipeline order (each step may answer early):
rate-limit accounting -> injected latency -> 413 body size -> 429 (limit, then forced window)
-> injected 5xx / down mode -> 401/403 header auth -> 415 content type -> 400 JSON -> handler.
Every request is counted by the limiter first, so traffic statistics include requests that
were refused for any reason. The body is read and parsed at the 413 step, before any refusal,
so the recorder holds the body of refused attempts too (retries can be compared with them).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import hdrs, web

from braze_sandbox.alias import handle_alias_new
from braze_sandbox.cohorts import handle_cohort, handle_cohort_users
from braze_sandbox.config import (
    PERM_ALIAS_NEW,
    PERM_DELETE,
    PERM_EXPORT_IDS,
    PERM_IDENTIFY,
    PERM_MERGE,
    PERM_TRACK,
    EndpointGroup,
    SandboxConfig,
)
from braze_sandbox.context import HandlerContext, Reply, error
from braze_sandbox.control import add_control_routes
from braze_sandbox.identity import (
    handle_delete,
    handle_export_ids,
    handle_identify,
)
from braze_sandbox.merge import handle_merge
from braze_sandbox.rate_limit import RateDecision
from braze_sandbox.recorder import (
    RecordedRequest,
    fingerprint,
    redact_body,
    redact_headers,
)
from braze_sandbox.state import SandboxState
from braze_sandbox.track import handle_track

log = logging.getLogger("braze_sandbox")

Handler = Callable[[web.Request, Any, HandlerContext], Reply]
_PARTNER_PATH = re.compile(r"^/partners/[^/]+/cohorts(/users)?/+$")


@dataclass(frozen=True)
class Endpoint:
    """A Braze route: its rate-limit group, required key permission and handler."""

    path: str
    group: EndpointGroup
    permission: str | None
    """Permission the Bearer key needs; ``None`` for partner routes (credentials in body)."""
    handler: Handler


ENDPOINTS = (
    Endpoint("/users/track", EndpointGroup.TRACK, PERM_TRACK, lambda _, b, c: handle_track(b, c)),
    Endpoint(
        "/users/delete", EndpointGroup.IDENTITY, PERM_DELETE, lambda _, b, c: handle_delete(b, c)
    ),
    Endpoint(
        "/users/alias/new",
        EndpointGroup.IDENTITY,
        PERM_ALIAS_NEW,
        lambda _, b, c: handle_alias_new(b, c),
    ),
    Endpoint(
        "/users/identify",
        EndpointGroup.IDENTITY,
        PERM_IDENTIFY,
        lambda _, b, c: handle_identify(b, c),
    ),
    Endpoint(
        "/users/merge", EndpointGroup.IDENTITY, PERM_MERGE, lambda _, b, c: handle_merge(b, c)
    ),
    Endpoint(
        "/users/export/ids",
        EndpointGroup.EXPORT,
        PERM_EXPORT_IDS,
        lambda _, b, c: handle_export_ids(b, c),
    ),
    Endpoint(
        "/partners/{partner}/cohorts",
        EndpointGroup.COHORTS,
        None,
        lambda r, b, c: handle_cohort(r.match_info["partner"], b, c),
    ),
    Endpoint(
        "/partners/{partner}/cohorts/users",
        EndpointGroup.COHORTS,
        None,
        lambda r, b, c: handle_cohort_users(r.match_info["partner"], b, c),
    ),
)
_STATIC_PATHS = frozenset(e.path for e in ENDPOINTS if "{" not in e.path)


@dataclass
class _Exchange:
    """What the pipeline learned about a request, for the recorder."""

    body: Any = None
    body_bytes: int = 0
    credential: str | None = None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _reject_nan(token: str) -> Any:
    # json.loads accepts NaN/Infinity, which are not JSON; Braze would refuse them.
    raise ValueError(f"invalid JSON constant {token}")


def _rate_headers(
    decision: RateDecision | None, config: SandboxConfig, now: float
) -> dict[str, str]:
    if decision is None:
        return {}
    if config.reset_header == "epoch":
        reset = str(math.ceil(decision.reset_at))
    else:
        reset = str(max(0, math.ceil(decision.reset_at - now)))
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": reset,
    }


def _too_many(retry_after: int) -> Reply:
    value = str(retry_after)
    # Braze documents X-Ratelimit-Retry-After; Retry-After is the standard header clients read.
    return Reply(
        429, {"message": "Rate Limited"}, {"X-Ratelimit-Retry-After": value, "Retry-After": value}
    )


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The body, or ``None`` if it exceeds ``limit`` bytes (read no further than that)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _check_bearer(
    request: web.Request, endpoint: Endpoint, state: SandboxState, exchange: _Exchange
) -> Reply | None:
    scheme, _, key = request.headers.get(hdrs.AUTHORIZATION, "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return error(401, "Invalid API key")
    exchange.credential = fingerprint(key)
    permissions = None
    for known, perms in state.config.api_keys.items():
        if hmac.compare_digest(known.encode(), key.encode()):
            permissions = perms
    if permissions is None:
        return error(401, "Invalid API key")  # never echo the key back
    if endpoint.permission not in permissions:
        return error(403, "Access Denied")
    return None


async def _process(
    request: web.Request,
    endpoint: Endpoint,
    state: SandboxState,
    exchange: _Exchange,
    decision: RateDecision | None,
) -> Reply:
    delay = state.faults.latency_seconds()
    if delay > 0:
        await asyncio.sleep(delay)
    raw = await _read_body(request, state.config.max_body_bytes)
    if raw is None:
        return error(413, "Request Entity Too Large")
    exchange.body_bytes = len(raw)
    parsed: Any = None
    try:
        parsed = json.loads(raw.decode("utf-8"), parse_constant=_reject_nan)
    except ValueError:
        parsed = None
        json_ok = False
    else:
        json_ok = True
        if state.config.record_bodies:
            exchange.body = redact_body(parsed)
        if endpoint.permission is None and isinstance(parsed, dict):
            secret = parsed.get("client_secret")
            exchange.credential = fingerprint(secret) if isinstance(secret, str) else None

    if decision is not None and not decision.allowed:
        return _too_many(decision.retry_after)
    forced = state.faults.take_forced_rate_limit(endpoint.group)
    if forced is not None:
        return _too_many(forced)
    failure = state.faults.take_failure(endpoint.group)
    if failure is not None:
        return error(failure, _reason(failure))
    if endpoint.permission is not None:
        denied = _check_bearer(request, endpoint, state, exchange)
        if denied is not None:
            return denied
    if hdrs.CONTENT_TYPE not in request.headers or request.content_type != "application/json":
        return error(415, "Unsupported Media Type")
    if not json_ok:
        return error(400, "Bad syntax.")
    return endpoint.handler(request, parsed, state.context)


async def _serve(request: web.Request, endpoint: Endpoint, state: SandboxState) -> web.Response:
    started = time.monotonic()
    arrived = state.config.clock()
    decision = state.limiter.acquire(endpoint.group)
    exchange = _Exchange()
    try:
        reply = await _process(request, endpoint, state, exchange, decision)
    except Exception:
        # A sandbox bug must surface as a recorded 500, not as a dropped connection.
        log.exception("braze_sandbox handler failed", extra={"fields": {"path": request.path}})
        reply = error(500, "Internal Server Error")
    headers = {**_rate_headers(decision, state.config, state.config.clock()), **reply.headers}
    response = web.json_response(reply.body, status=reply.status, headers=headers)
    if reply.status == 413:
        # The unread body is still on the socket; closing is cheaper than draining 4 MB+.
        response.force_close()
    await _record(request, state, exchange, reply, arrived, started, endpoint.group)
    return response


async def _record(
    request: web.Request,
    state: SandboxState,
    exchange: _Exchange,
    reply: Reply,
    arrived: float,
    started: float,
    group: str | None,
) -> None:
    duration_ms = (time.monotonic() - started) * 1000.0
    headers = redact_headers(request.headers)
    entry = RecordedRequest(
        seq=state.recorder.next_seq(),
        time=arrived,
        method=request.method,
        path=request.path,
        group=group,
        headers=headers,
        body=exchange.body,
        body_bytes=exchange.body_bytes,
        status=reply.status,
        response=reply.body,
        duration_ms=duration_ms,
        credential=exchange.credential,
    )
    # Structured and credential-free: only the path, status and trace context are logged.
    log.info(
        "braze_sandbox request",
        extra={
            "fields": {
                "method": request.method,
                "path": request.path,
                "group": group,
                "status": reply.status,
                "duration_ms": round(duration_ms, 2),
                "body_bytes": exchange.body_bytes,
                "traceparent": headers.get("traceparent"),
            }
        },
    )
    await state.recorder.record(entry)


def _route(
    endpoint: Endpoint, state: SandboxState
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return await _serve(request, endpoint, state)

    return handler


def _unmatched_middleware(state: SandboxState) -> Any:
    """Answer unknown API paths like Braze (JSON 404, 403 for trailing slashes) and record them."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            if request.path.startswith("/_sandbox"):
                raise
            path = request.path
            trailing_slash = path.endswith("/") and (
                path.rstrip("/") in _STATIC_PATHS or _PARTNER_PATH.match(path) is not None
            )
            if trailing_slash:
                # Braze lists a trailing slash among the causes of "403 Access Denied".
                reply = error(403, "Access Denied")
            elif isinstance(exc, web.HTTPMethodNotAllowed):
                reply = error(405, "Method Not Allowed")
            else:
                reply = error(404, "Invalid URL.")
            await _record(
                request, state, _Exchange(), reply, state.config.clock(), time.monotonic(), None
            )
            return web.json_response(reply.body, status=reply.status)

    return middleware


def build_app(state: SandboxState) -> web.Application:
    """The aiohttp application serving Braze routes and the ``/_sandbox`` control API."""
    # The body is streamed by _read_body with its own limit, so lift aiohttp's 1 MB default.
    app = web.Application(
        middlewares=[_unmatched_middleware(state)],
        client_max_size=state.config.max_body_bytes + 1,
    )
    for endpoint in ENDPOINTS:
        app.router.add_post(endpoint.path, _route(endpoint, state))
    add_control_routes(app, state)
    return app
