"""Typed settings of the profile service (environment ``CROWD_PROFILE_*`` or a config file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from service_common.keys import DEFAULT_PARTITIONS
from service_common.settings import ServiceSettings


class ProfileSettings(ServiceSettings):
    """Settings of the profile service."""

    model_config = SettingsConfigDict(env_prefix="CROWD_PROFILE_")

    port: int = Field(50051, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    otel_service_name: str = Field("crowd-profile", description="service.name of the traces.")
    partitions: int = Field(
        DEFAULT_PARTITIONS,
        ge=1,
        le=16384,
        description="Visitor partitions (hash tags) in Redis; fixed for the life of a dataset.",
    )
    definitions_file: Path | None = Field(
        None,
        description="YAML/JSON definitions published at start when it differs from the "
        "current version (definitions as code).",
    )
    dispatch_target: str = Field(
        "",
        description="host:port of the dispatch service that receives fired actions; empty "
        "keeps them in the Redis outbox until one is configured.",
    )
    dispatch_channels: int = Field(
        4,
        ge=1,
        le=64,
        description="Connections to the dispatch service, used in turn, so that its worker "
        "processes or replicas behind one address all receive actions.",
    )
    dispatch_api_key: SecretStr | None = Field(
        None, description="API key (scope dispatch) used to call the dispatch service."
    )
    sweep_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="How often due visits and delayed actions are processed."
    )
    sweep_batch_limit: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Most due visits (and, apart, delayed actions) taken per partition per sweep.",
    )
    stitch_recovery_grace_ms: int = Field(
        30_000,
        ge=1_000,
        le=3_600_000,
        description="A stitch still pending this long after it started was interrupted "
        "(its process died between steps); the sweeper of any replica completes it.",
    )
    outbox_claim_idle_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Outbox entries a forwarder read but did not finish for this long are "
        "taken over by another replica (the first is presumed dead).",
    )
    outbox_claim_interval_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="How often a forwarder looks for outbox entries to take over (at most a "
        "third of outbox_claim_idle_seconds is used).",
    )
    outbox_poll_interval_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        description="Pause of an idle forwarder before it reads the outboxes again (local "
        "commits wake it at once; the poll picks up other replicas' actions).",
    )
    outbox_read_count: int = Field(
        100, ge=1, le=10_000, description="Most outbox entries read per partition per round."
    )
    outbox_retry_initial_seconds: float = Field(
        0.1,
        gt=0,
        le=60,
        description="First retry delay (full jitter, doubling) while the dispatch service or "
        "Redis fails a forward.",
    )
    outbox_retry_max_seconds: float = Field(
        10.0, gt=0, le=3600, description="Cap of the forwarder's retry delay."
    )
    backfill_profiles_per_second: float = Field(
        1000.0,
        gt=0,
        description="Audience backfill rate per replica: existing profiles re-evaluated per "
        "second when a published version adds or changes audiences.",
    )
    backfill_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="How often an idle backfill worker looks for a new job."
    )
    reevaluate_interval_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often profiles whose date-vs-now audience conditions may have flipped "
        "are re-evaluated.",
    )
    reconcile_interval_seconds: float = Field(
        3600.0,
        gt=0,
        description="How often audience memberships of expired profiles are removed.",
    )
    reconcile_scan_count: int = Field(
        500, ge=1, le=100_000, description="SSCAN batch of the audience reconciler."
    )
    definitions_poll_interval_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        description="How often the current definitions version is checked (besides pub/sub).",
    )
    trace_sample_rate: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of visitors whose trace history is kept (a stable hash of the "
        "profile id); visitors followed by StreamTrace and events with a live-trace id are "
        "traced whatever the share. 1 (the default) keeps every visitor's history; 0.01 "
        "is the production recommendation (about 5 KB of Redis memory less per visitor).",
    )
    trace_history_max_bytes: int = Field(
        16_384,
        ge=1_024,
        le=16_777_216,
        description="About how many bytes of trace history a traced visitor keeps (older "
        "entries are trimmed).",
    )
    commit_max_attempts: int = Field(
        32,
        ge=1,
        le=1000,
        description="Compare-and-set attempts per visitor when replicas update it at once "
        "(then the request fails with ABORTED).",
    )
    background_workers: bool = Field(
        True,
        description="Run the visit sweeper and the outbox forwarder in this process (turn off "
        "for ingest-only replicas).",
    )
    collect_enabled: bool = Field(
        False,
        description="Serve the Collect-compatible HTTP ingest (also on when collect_port > 0; "
        "with collect_port 0 it binds a free port).",
    )
    collect_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="TCP port of the Collect-compatible HTTP ingest; 0 = off (unless "
        "collect_enabled, then a free port).",
    )
    collect_host: str = Field(
        "", description="Interface of the Collect HTTP ingest; empty = the gRPC host."
    )
    collect_account: str = Field(
        "", description="The only tealium_account Collect accepts (empty: any, still required)."
    )
    collect_profile: str = Field(
        "", description="The only tealium_profile Collect accepts (empty: any, still required)."
    )
    collect_rate_per_second: float = Field(
        100.0,
        gt=0,
        description="Collect requests per second allowed per datasource (or client IP when "
        "none is sent), a token bucket with a burst of one second's worth; 429 beyond. "
        "Tealium's limit is the default; crowd takes far more, raise it.",
    )
    collect_allowed_origins: list[str] = Field(
        default_factory=list,
        description='Browser origins allowed by CORS (e.g. ["https://shop.example"]; "*" = any).',
    )
    collect_user_agent_header: bool = Field(
        False,
        description="Give each Collect event without a user_agent parameter the request's "
        "User-Agent header as user_agent (Tealium's preloaded User Agent; off by default: a "
        "server sender's header would name the sender, not the visitor's browser).",
    )
    collect_datasources: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Datasource id → browser origins that may send events for it without an "
        'API key (browser tags cannot hide a key), e.g. {"ab12cd": ["https://shop.example"]}; '
        '"*" accepts any origin and callers without one.',
    )
