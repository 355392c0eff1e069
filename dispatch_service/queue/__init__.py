"""Durable action storage: intake, records, per-partition queues (see ``store.ActionStore``)."""

from dispatch_service.queue.store import DEFAULT_RETENTION_S, ActionStore

__all__ = ["DEFAULT_RETENTION_S", "ActionStore"]
