"""Cohort sync: SyncCohort intake, durable pending changes, and delivery to Braze's partner
cohort endpoints (``/partners/{partner}/cohorts`` and ``/cohorts/users``).

Modules, one job each: :mod:`.identifiers` (which identifier a change names),
:mod:`.intake` (validating a stream), :mod:`.store` (durable intake, state reads, dead
letters), :mod:`.queue` (queue entries and cohort leases), :mod:`.planner` (requests of up to
1,000 ids), :mod:`.client` (HTTP, rate limit, classification), :mod:`.sender` (one round over
a cohort), :mod:`.worker` (the background loop).
"""

from dispatch_service.cohorts.intake import CohortIntake, CohortSync, can_sync_cohorts
from dispatch_service.cohorts.store import CohortDeadLetter, CohortStore, SyncReceipt
from dispatch_service.cohorts.worker import CohortWorker, CohortWorkerSettings, cohort_senders

__all__ = [
    "CohortDeadLetter",
    "CohortIntake",
    "CohortStore",
    "CohortSync",
    "CohortWorker",
    "CohortWorkerSettings",
    "SyncReceipt",
    "can_sync_cohorts",
    "cohort_senders",
]
