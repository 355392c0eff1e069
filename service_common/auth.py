"""API-key authentication and per-method scopes for ``grpc.aio`` servers.

Callers send ``authorization: Bearer <key>`` metadata. :class:`AuthInterceptor` checks the key
against an :class:`ApiKeyStore` and the method's required scope:

* health (``/grpc.health.v1.Health/``) and reflection (``/grpc.reflection.v1alpha.
  ServerReflection/``, ``/grpc.reflection.v1.ServerReflection/``) are always open, so probes and
  ``grpcurl list`` work without a key;
* every other method must be listed in ``method_scopes`` (full method name → scope). A method
  missing from the map is refused with PERMISSION_DENIED even for valid keys: forgetting to
  classify a new RPC must fail closed, not open;
* missing, malformed or unknown key → UNAUTHENTICATED; known key without the scope →
  PERMISSION_DENIED naming the scope it lacks (never the key).

Scopes are opaque strings and never imply one another: ``admin`` grants exactly the methods
mapped to ``admin`` and nothing else. Give a key every scope it needs explicitly; that keeps a
key's powers readable from its configuration alone.

The authenticated caller is available to servicers and log lines as :func:`current_principal`
(`service_common.principal`, re-exported here): its ``key_id`` is the first 6 hex characters of
the key's SHA-256 digest, never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc
import grpc.aio
from pydantic import SecretStr

from service_common._handlers import Behavior, call_unary, iterate_stream, rewrap_handler
from service_common.errors import (
    DomainError,
    PermissionDenied,
    Unauthenticated,
    abort_with_error,
)
from service_common.logging import register_secret
from service_common.principal import (
    Principal,
    current_principal,
    reset_current_principal,
    set_current_principal,
)

__all__ = [
    "OPEN_METHOD_PREFIXES",
    "ApiKeyStore",
    "AuthInterceptor",
    "Principal",
    "current_principal",
    "key_id",
]

#: Method-name prefixes that never need a key (probes and tooling).
OPEN_METHOD_PREFIXES: tuple[str, ...] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

_BEARER_RE = re.compile(r"^Bearer +(\S+)$", re.IGNORECASE)
_FULL_METHOD_RE = re.compile(r"^/[A-Za-z_][\w.]*/[A-Za-z_]\w*$")


def key_id(key: str) -> str:
    """The loggable id of an API key: the first 6 hex characters of its SHA-256 digest."""
    return hashlib.sha256(key.encode()).hexdigest()[:6]


class ApiKeyStore:
    """API keys held as SHA-256 digests, with their scopes.

    Only digests are kept, so a heap dump or ``repr`` shows no key; lookups compare digests with
    :func:`hmac.compare_digest` over every entry, so timing reveals nothing about the keys.

    Args:
        keys: Key → scopes, e.g. ``settings.api_keys``. Keys are registered with the log
            redactor as a side effect.
    """

    def __init__(
        self, keys: Mapping[SecretStr, Iterable[str]] | Mapping[str, Iterable[str]]
    ) -> None:
        entries: list[tuple[bytes, Principal]] = []
        for key, scopes in keys.items():
            raw = key.get_secret_value() if isinstance(key, SecretStr) else key
            register_secret(raw)
            digest = hashlib.sha256(raw.encode()).digest()
            entries.append((digest, Principal(digest.hex()[:6], frozenset(scopes))))
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ApiKeyStore(key_ids={[p.key_id for _, p in self._entries]})"

    def authenticate(self, presented: str) -> Principal | None:
        """Return the principal of ``presented``, or ``None`` if it is not a known key."""
        digest = hashlib.sha256(presented.encode()).digest()
        found: Principal | None = None
        for candidate, principal in self._entries:
            # No early exit: every entry is compared whatever matches.
            if hmac.compare_digest(candidate, digest):
                found = principal
        return found


def _bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The key from exactly one ``authorization: Bearer <key>`` entry, else ``None``."""
    values = [v for k, v in (metadata or ()) if k == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    match = _BEARER_RE.match(values[0].strip())
    return match.group(1) if match else None


def check_method_scopes(method_scopes: Mapping[str, str]) -> None:
    """Raise ``ValueError`` if a key is not a full method name or a scope is empty."""
    for method, scope in method_scopes.items():
        if not _FULL_METHOD_RE.match(method):
            raise ValueError(
                f"method_scopes key {method!r} is not a full method name like "
                "'/crowd.profile.v1.ProfileService/TrackEvent'"
            )
        if not scope:
            raise ValueError(f"method {method} has an empty scope")


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Server interceptor enforcing API keys and per-method scopes (see the module docstring).

    Args:
        keys: The known keys.
        method_scopes: Full method name (``/package.Service/Method``) → required scope.
    """

    def __init__(self, keys: ApiKeyStore, method_scopes: Mapping[str, str]) -> None:
        check_method_scopes(method_scopes)
        self._keys = keys
        self._method_scopes = dict(method_scopes)

    def _authorize(self, method: str, metadata: Any) -> Principal | DomainError | None:
        """The caller's principal, the error refusing it, or ``None`` for an open method."""
        if method.startswith(OPEN_METHOD_PREFIXES):
            return None
        token = _bearer_token(metadata)
        if token is None:
            return Unauthenticated(
                "missing or malformed credentials: send 'authorization: Bearer <api key>'",
                reason="API_KEY_MISSING",
            )
        principal = self._keys.authenticate(token)
        if principal is None:
            return Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
        scope = self._method_scopes.get(method)
        if scope is None:
            return PermissionDenied(
                f"method {method} is not open to API keys",
                reason="METHOD_NOT_ALLOWED",
                metadata={"method": method},
            )
        if scope not in principal.scopes:
            return PermissionDenied(
                f"the API key lacks scope '{scope}' required by {method}",
                reason="SCOPE_MISSING",
                metadata={"scope": scope, "method": method},
            )
        return principal

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED
        outcome = self._authorize(
            handler_call_details.method, handler_call_details.invocation_metadata
        )
        if outcome is None:
            return handler
        if isinstance(outcome, DomainError):
            return _refusing(handler, outcome)
        return _acting_as(handler, outcome)


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], error: DomainError
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind that aborts with ``error`` before the servicer runs."""

    def unary(_: Behavior) -> Callable[..., Awaitable[Any]]:
        async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await abort_with_error(context, error)

        return refuse

    def stream(_: Behavior) -> Callable[..., AsyncIterator[Any]]:
        async def refuse(
            _request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await abort_with_error(context, error)
            yield  # pragma: no cover - makes this an async generator, never reached

        return refuse

    return rewrap_handler(handler, unary_response=unary, stream_response=stream)


def _acting_as(
    handler: grpc.RpcMethodHandler[Any, Any], principal: Principal
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler, run with :func:`current_principal` set to ``principal``."""

    def unary(behavior: Behavior) -> Callable[..., Awaitable[Any]]:
        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token = set_current_principal(principal)
            try:
                return await call_unary(behavior, request, context)
            finally:
                reset_current_principal(token)

        return run

    def stream(behavior: Behavior) -> Callable[..., AsyncIterator[Any]]:
        async def run(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            # Each RPC runs in its own asyncio task (a copy of the context), so the value set
            # here cannot leak into other RPCs even while this generator is suspended.
            set_current_principal(principal)
            async for response in iterate_stream(behavior, request, context):
                yield response

        return run

    return rewrap_handler(handler, unary_response=unary, stream_response=stream)
