"""The profile service's Redis storage layer.

- `profile_store.ProfileStore`: atomic per-visitor application of event batches (and of
  sweeper visit ends / delayed actions) with a constant number of round trips per batch;
  its jobs are split into `store_core` (shared client, scripts, results), `batch_reads`
  (reading a batch's profiles), `visit_ends` and `delayed_actions`.
- `sweeper.VisitSweeper`: ends visits after inactivity and fires due delayed actions.
- `outbox.OutboxForwarder`: delivers fired actions from the outboxes to the dispatch service.
- `definitions_store.DefinitionsStore` / `DefinitionsWatcher`: versioned definitions with
  an atomic switch, and each replica's compiled snapshot of the current version.
- `reads.ProfileReader`: profile lookup (by id or identity), deletion, audience size and
  members.
- `trace_log.TraceLog`: the live per-visitor / per-trace-id trace streams.
- `reconciler.AudienceReconciler`: removes memberships of profiles expired by retention.

Every key shape is in `service_common.keys`; every Lua script is in ``scripts/`` and gets all
its keys through ``KEYS``. The Redis client must be created without ``decode_responses``
(outbox entries and definitions are binary protobuf).
"""

from profile_service.storage.definitions_store import (
    DefinitionsStore,
    DefinitionsWatcher,
    PublishResult,
)
from profile_service.storage.engine_api import EngineFunctions
from profile_service.storage.layout import Layout, PartitionMismatchError
from profile_service.storage.outbox import OutboxForwarder, SubmitRejected
from profile_service.storage.profile_store import (
    EventApplyResult,
    ProfileConflictError,
    ProfileStore,
)
from profile_service.storage.reads import AudiencePage, DeletedProfile, ProfileReader, StoredProfile
from profile_service.storage.reconciler import AudienceReconciler
from profile_service.storage.sweeper import SweepReport, VisitSweeper
from profile_service.storage.trace_log import TraceLog

__all__ = [
    "AudiencePage",
    "AudienceReconciler",
    "DefinitionsStore",
    "DefinitionsWatcher",
    "DeletedProfile",
    "EngineFunctions",
    "EventApplyResult",
    "Layout",
    "OutboxForwarder",
    "PartitionMismatchError",
    "ProfileConflictError",
    "ProfileReader",
    "ProfileStore",
    "PublishResult",
    "StoredProfile",
    "SubmitRejected",
    "SweepReport",
    "TraceLog",
    "VisitSweeper",
]
