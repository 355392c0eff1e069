"""Shared state handed to endpoint handlers, and the reply type they return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from braze_sandbox.config import SandboxConfig
from braze_sandbox.faults import FaultInjector
from braze_sandbox.recorder import DataPoints
from braze_sandbox.store import UserStore


@dataclass
class HandlerContext:
    """What a handler may read or change while serving one request."""

    config: SandboxConfig
    store: UserStore
    faults: FaultInjector
    data_points: DataPoints


@dataclass(frozen=True)
class Reply:
    """A JSON response: status, body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, message: str, **extra: Any) -> Reply:
    """A Braze-style fatal error reply ``{"message": ...}``."""
    return Reply(status, {"message": message, **extra})
