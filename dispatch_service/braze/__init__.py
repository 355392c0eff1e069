"""Braze delivery: connector settings, payloads, request planning, deltas, shared rate limits
and the HTTP client, used by the dispatch worker.

Typical use (one per connector and process)::

    session = create_session(tracer_provider)
    limiter = SharedRateLimiter(redis, connector)
    deltas = DeltaStore(redis, connector, partitions)
    client = BrazeClient(connector, session, limiter, deltas, tracer_provider)
    delivery = BrazeDelivery(connector, client, deltas)
    results = await delivery.deliver([PendingAction(key, action, attempt), ...])
    # per result: DELIVERED / SKIPPED / FAILED are final; RETRY -> next_retry_delay(...)
"""

from dispatch_service.braze.client import BrazeClient, create_session
from dispatch_service.braze.connector import (
    BatchMode,
    BrazeConnector,
    ConnectorConfigError,
    MembershipMode,
    Rate,
    load_connectors,
    load_connectors_from_env,
    parse_connectors,
)
from dispatch_service.braze.delivery import BrazeDelivery, PendingAction
from dispatch_service.braze.deltas import DeltaStore, DeltaView
from dispatch_service.braze.endpoints import INSTANCE_ENDPOINTS, Endpoint, RateGroup
from dispatch_service.braze.payload import InvalidAction, Violation, build_objects
from dispatch_service.braze.planner import DeliveryItem, Plan, PlannedRequest, plan_requests
from dispatch_service.braze.rate_limit import RateSlot, SharedRateLimiter
from dispatch_service.braze.results import ActionResult, Outcome
from dispatch_service.braze.retry import backoff_delay, next_retry_delay, retry_after_from_headers

__all__ = [
    "INSTANCE_ENDPOINTS",
    "ActionResult",
    "BatchMode",
    "BrazeClient",
    "BrazeConnector",
    "BrazeDelivery",
    "ConnectorConfigError",
    "DeliveryItem",
    "DeltaStore",
    "DeltaView",
    "Endpoint",
    "InvalidAction",
    "MembershipMode",
    "Outcome",
    "PendingAction",
    "Plan",
    "PlannedRequest",
    "Rate",
    "RateGroup",
    "RateSlot",
    "SharedRateLimiter",
    "Violation",
    "backoff_delay",
    "build_objects",
    "create_session",
    "load_connectors",
    "load_connectors_from_env",
    "next_retry_delay",
    "parse_connectors",
    "plan_requests",
    "retry_after_from_headers",
]
