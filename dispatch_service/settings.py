"""Typed settings of the dispatch service (environment ``CROWD_DISPATCH_*`` or a config file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from dispatch_service.cohorts.worker import CohortWorkerSettings
from dispatch_service.worker import WorkerSettings
from service_common.keys import DEFAULT_DISPATCH_PARTITIONS
from service_common.settings import ServiceSettings

_WORKER = WorkerSettings()
_COHORT = CohortWorkerSettings()


class DispatchSettings(ServiceSettings):
    """Settings of the dispatch service."""

    model_config = SettingsConfigDict(env_prefix="CROWD_DISPATCH_")

    port: int = Field(50052, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    otel_service_name: str = Field("crowd-dispatch", description="service.name of the traces.")
    partitions: int = Field(
        DEFAULT_DISPATCH_PARTITIONS,
        ge=1,
        le=1024,
        description="Queue partitions (hash tags) in Redis; fixed for the life of a dataset.",
    )
    connectors_file: Path | None = Field(
        None, description="YAML/JSON file describing the Braze connectors (see README)."
    )
    background_workers: bool = Field(
        True,
        description="Run the delivery and cohort workers in this process (turn off for "
        "intake-only replicas).",
    )
    consumer_name: str = Field(
        "",
        description="Stable consumer name in the queue's group; default host:pid. With "
        "several worker processes each gets <name>-<index>.",
    )
    claim_idle_ms: int = Field(
        _WORKER.claim_idle_ms,
        ge=1000,
        le=3_600_000,
        description="Takeover time: queue entries (actions and cohort changes) a worker took "
        "and has not finished for this long are taken over by another replica, which "
        "presumes it dead. Live workers refresh theirs every third of it.",
    )
    worker_read_count: int = Field(
        _WORKER.read_count, ge=1, le=100_000, description="Most queue entries taken per read."
    )
    worker_block_ms: int = Field(
        _WORKER.block_ms,
        ge=1,
        le=10_000,
        description="Longest one queue read waits (also how fast a stop is noticed).",
    )
    worker_claim_count: int = Field(
        _WORKER.claim_count,
        ge=1,
        le=100_000,
        description="Most stale entries taken over per partition per claim round.",
    )
    worker_promote_interval_seconds: float = Field(
        _WORKER.promote_interval_s,
        gt=0,
        le=60,
        description="How often due retries are moved back onto the queues.",
    )
    worker_max_buffered: int = Field(
        _WORKER.max_buffered,
        ge=1,
        le=1_000_000,
        description="Actions a worker holds in memory before it pauses reading.",
    )
    worker_record_retry_seconds: float = Field(
        _WORKER.record_retry_s,
        ge=0,
        le=3600,
        description="How long recording delivery results is retried while Redis is "
        "unreachable (then the entries are left to the takeover).",
    )
    cohort_read_count: int = Field(
        _COHORT.read_count, ge=1, le=100_000, description="Most cohort entries taken per read."
    )
    cohort_block_ms: int = Field(
        _COHORT.block_ms, ge=1, le=10_000, description="Longest one cohort-queue read waits."
    )
    cohort_claim_count: int = Field(
        _COHORT.claim_count,
        ge=1,
        le=100_000,
        description="Most stale cohort entries taken over per partition per claim round.",
    )
    cohort_lease_ms: int = Field(
        _COHORT.lease_ms,
        ge=1000,
        le=3_600_000,
        description="Lifetime of a cohort lease unless renewed (how long a dead worker "
        "blocks a cohort).",
    )
    cohort_lease_poll_seconds: float = Field(
        _COHORT.lease_poll_s,
        gt=0,
        le=60,
        description="How often a run waiting for another replica's cohort lease checks it.",
    )
    cohort_max_active: int = Field(
        _COHORT.max_active, ge=1, le=10_000, description="Cohorts sent concurrently per worker."
    )
    cohort_max_held: int = Field(
        _COHORT.max_held,
        ge=1,
        le=1_000_000,
        description="Cohort entries held in memory before reading pauses.",
    )
    cohort_round_ids: int = Field(
        _COHORT.round_ids,
        ge=1,
        le=1_000_000,
        description="Most identifiers read and sent per cohort round.",
    )

    def worker_overrides(self, index: int) -> dict[str, Any]:
        """Each worker process needs its own consumer name: ``<consumer_name>-<index>``."""
        named = {"consumer_name": f"{self.consumer_name}-{index}"} if self.consumer_name else {}
        return {**super().worker_overrides(index), **named}

    def worker_settings(self) -> WorkerSettings:
        """The delivery worker's tuning from these settings."""
        return WorkerSettings(
            read_count=self.worker_read_count,
            block_ms=self.worker_block_ms,
            claim_idle_ms=self.claim_idle_ms,
            claim_count=self.worker_claim_count,
            promote_interval_s=self.worker_promote_interval_seconds,
            max_buffered=self.worker_max_buffered,
            record_retry_s=self.worker_record_retry_seconds,
        )

    def cohort_worker_settings(self) -> CohortWorkerSettings:
        """The cohort worker's tuning from these settings."""
        return CohortWorkerSettings(
            read_count=self.cohort_read_count,
            block_ms=self.cohort_block_ms,
            claim_idle_ms=self.claim_idle_ms,
            claim_count=self.cohort_claim_count,
            lease_ms=self.cohort_lease_ms,
            lease_poll_s=self.cohort_lease_poll_seconds,
            max_active=self.cohort_max_active,
            max_held=self.cohort_max_held,
            round_ids=self.cohort_round_ids,
        )
