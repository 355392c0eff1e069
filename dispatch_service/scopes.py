"""The API-key scope each dispatch-service RPC needs."""

from __future__ import annotations

from crowd.dispatch.v1 import dispatch_service_pb2

DISPATCH = "dispatch"
READ = "read"
ADMIN = "admin"

DISPATCH_SERVICE = dispatch_service_pb2.DESCRIPTOR.services_by_name["DispatchService"].full_name

_SCOPES = {
    "SubmitActions": DISPATCH,
    "SyncCohort": DISPATCH,
    "GetAction": READ,
    "ListFailedActions": READ,
    "RetryFailedActions": ADMIN,
}

METHOD_SCOPES: dict[str, str] = {f"/{DISPATCH_SERVICE}/{n}": s for n, s in _SCOPES.items()}
