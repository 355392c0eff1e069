"""Strict Braze-compatible REST sandbox for tests, local runs and benchmarks.

Public in-process API::

    from braze_sandbox import BrazeSandbox, SandboxConfig

    async with BrazeSandbox(SandboxConfig(api_keys={"k": frozenset({"users.track"})})) as sb:
        ...  # send requests to sb.url, then inspect sb.requests / sb.get_user(...)
"""

from braze_sandbox.config import (
    ALL_PERMISSIONS,
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PARTNER,
    DEFAULT_PARTNER_API_KEY,
    PERM_ALIAS_NEW,
    PERM_DELETE,
    PERM_EXPORT_IDS,
    PERM_IDENTIFY,
    PERM_MERGE,
    PERM_TRACK,
    BatchMode,
    EndpointGroup,
    RateLimit,
    SandboxConfig,
    default_rate_limits,
)
from braze_sandbox.faults import (
    FaultInjector,
    FaultSettings,
    ForcedMinorError,
    ForcedRateLimit,
)
from braze_sandbox.rate_limit import GroupTraffic
from braze_sandbox.recorder import DataPoints, RecordedRequest, fingerprint
from braze_sandbox.sandbox import BrazeSandbox
from braze_sandbox.store import Cohort, StoredEvent, StoredPurchase, User

__all__ = [
    "ALL_PERMISSIONS",
    "DEFAULT_API_KEY",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_PARTNER",
    "DEFAULT_PARTNER_API_KEY",
    "PERM_ALIAS_NEW",
    "PERM_DELETE",
    "PERM_EXPORT_IDS",
    "PERM_IDENTIFY",
    "PERM_MERGE",
    "PERM_TRACK",
    "BatchMode",
    "BrazeSandbox",
    "Cohort",
    "DataPoints",
    "EndpointGroup",
    "FaultInjector",
    "FaultSettings",
    "ForcedMinorError",
    "ForcedRateLimit",
    "GroupTraffic",
    "RateLimit",
    "RecordedRequest",
    "SandboxConfig",
    "StoredEvent",
    "StoredPurchase",
    "User",
    "default_rate_limits",
    "fingerprint",
]
