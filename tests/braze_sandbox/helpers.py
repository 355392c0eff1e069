"""Helpers shared by the Braze sandbox tests (constants, HTTP calls, valid objects)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from braze_sandbox import (
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PARTNER,
    DEFAULT_PARTNER_API_KEY,
    BrazeSandbox,
)

KEY = "test-key-all-perms-0123456789"
TRACK_ONLY_KEY = "test-key-track-only-987654321"
PARTNER = DEFAULT_PARTNER
PARTNER_KEY = DEFAULT_PARTNER_API_KEY
CLIENT_SECRET = DEFAULT_CLIENT_SECRET
#: The ``make_sandbox`` fixture: SandboxConfig overrides -> started sandbox.
SandboxFactory = Callable[..., Awaitable[BrazeSandbox]]
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class FakeClock:
    """Wall clock the tests move by hand (rate windows, forced-429 durations)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Reply:
    """A response as the tests see it."""

    status: int
    body: Any
    headers: dict[str, str]


async def post(
    http: aiohttp.ClientSession,
    sandbox: BrazeSandbox,
    path: str,
    body: Any = None,
    *,
    key: str | None = KEY,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    content_type: str | None = "application/json",
) -> Reply:
    """POST ``body`` as JSON (or raw ``data``) with a Bearer key; decode the JSON answer."""
    sent: dict[str, str] = {}
    if content_type is not None:
        sent["Content-Type"] = content_type
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    sent.update(headers or {})
    payload = data if data is not None else json.dumps(body).encode()
    async with http.post(
        sandbox.url + path,
        # A stream, not raw bytes: aiohttp warns (ResourceWarning) about raw bodies over 1 MiB;
        # the request still carries a Content-Length.
        data=io.BytesIO(payload),
        headers=sent,
        # Otherwise aiohttp adds its own Content-Type and the 415 tests could not omit it.
        skip_auto_headers=["Content-Type"],
    ) as resp:
        text = await resp.text()
        try:
            decoded: Any = json.loads(text)
        except ValueError:
            decoded = text
        return Reply(resp.status, decoded, dict(resp.headers))


async def track(http: aiohttp.ClientSession, sandbox: BrazeSandbox, **arrays: Any) -> Reply:
    """POST /users/track with the given arrays."""
    return await post(http, sandbox, "/users/track", arrays)


async def get(http: aiohttp.ClientSession, sandbox: BrazeSandbox, path: str) -> Reply:
    """GET a sandbox URL and decode JSON."""
    async with http.get(sandbox.url + path) as resp:
        return Reply(resp.status, await resp.json(content_type=None), dict(resp.headers))


def event(external_id: str = "u1", name: str = "played", **extra: Any) -> dict[str, Any]:
    """A valid event object."""
    return {"external_id": external_id, "name": name, "time": "2024-05-01T10:00:00Z", **extra}


def purchase(external_id: str = "u1", **extra: Any) -> dict[str, Any]:
    """A valid purchase object."""
    base: dict[str, Any] = {
        "external_id": external_id,
        "product_id": "sku-1",
        "currency": "USD",
        "price": 9.99,
        "time": "2024-05-01T10:00:00Z",
    }
    base.update(extra)
    return base


def attrs(external_id: str = "u1", **values: Any) -> dict[str, Any]:
    """An attributes object."""
    return {"external_id": external_id, **values}
