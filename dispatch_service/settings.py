"""Typed settings of the dispatch service (environment ``CROWD_DISPATCH_*`` or a config file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from service_common.keys import DEFAULT_DISPATCH_PARTITIONS
from service_common.settings import ServiceSettings


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
    workers: bool = Field(True, description="Run delivery workers in this process.")
    consumer_name: str = Field(
        "", description="Stable consumer name in the queue's group; default host:pid."
    )
