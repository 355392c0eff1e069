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
    dispatch_api_key: SecretStr | None = Field(
        None, description="API key (scope dispatch) used to call the dispatch service."
    )
    sweep_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="How often due visits and delayed actions are processed."
    )
    outbox_claim_idle_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Outbox entries a forwarder read but did not finish for this long are "
        "taken over by another replica (the first is presumed dead).",
    )
    background_workers: bool = Field(
        True,
        description="Run the visit sweeper and the outbox forwarder in this process (turn off "
        "for ingest-only replicas).",
    )
