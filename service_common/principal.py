"""The caller an RPC runs for, as a context variable.

Its own module so that everything that wants to know the caller reads it from here:
`service_common.auth` sets it, log lines (`service_common.logging`) and servicers read it. Were it
kept in auth, logging would import auth, which imports errors, which imports logging: a cycle.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

__all__ = ["Principal", "current_principal", "reset_current_principal", "set_current_principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller an RPC runs for.

    Attributes:
        key_id: First 6 hex characters of the SHA-256 of its API key: safe to log.
        scopes: Scopes the key grants.
    """

    key_id: str
    scopes: frozenset[str]


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "crowd_principal", default=None
)


def current_principal() -> Principal | None:
    """The principal of the RPC being served, or ``None`` (auth disabled, open method, or
    outside an RPC)."""
    return _principal.get()


def set_current_principal(principal: Principal) -> contextvars.Token[Principal | None]:
    """Make ``principal`` the current one (in this context); the token undoes it."""
    return _principal.set(principal)


def reset_current_principal(token: contextvars.Token[Principal | None]) -> None:
    """Undo the `set_current_principal` that returned ``token``."""
    _principal.reset(token)
