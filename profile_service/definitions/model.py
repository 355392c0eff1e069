"""The compiled form of a validated definitions document, as the engine consumes it.

`compile_definitions` (in `compiler.py`) turns a *valid* ``crowd.profile.v1.Definitions``
message into a `CompiledDefinitions`: defaults resolved, ids indexed and enrichments put
in execution order, so that the hot path never re-derives anything per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The defaults live with the definitions package of the client distribution (the offline
# validator needs them); re-exported here for the engine.
from crowd.definitions.defaults import (
    DEFAULT_EVENT_DEDUP_WINDOW_MS,
    DEFAULT_MAX_COLLECTION_SIZE,
    DEFAULT_MAX_STRING_LENGTH,
    DEFAULT_PLATFORM_VISIT_TIMEOUTS_MS,
    DEFAULT_VISIT_TIMEOUT_MS,
    DEFAULT_VISITOR_RETENTION_MS,
    IMPORT_VISIT_TIMEOUT_MS,
    MAX_VISIT_LENGTH_MS,
    MOBILE_VISIT_TIMEOUT_MS,
    TIMELINE_MAX_ENTRIES,
)
from crowd.profile.v1 import definitions_pb2 as pb

__all__ = [
    "DEFAULT_EVENT_DEDUP_WINDOW_MS",
    "DEFAULT_MAX_COLLECTION_SIZE",
    "DEFAULT_MAX_STRING_LENGTH",
    "DEFAULT_PLATFORM_VISIT_TIMEOUTS_MS",
    "DEFAULT_VISITOR_RETENTION_MS",
    "DEFAULT_VISIT_TIMEOUT_MS",
    "IMPORT_VISIT_TIMEOUT_MS",
    "MAX_VISIT_LENGTH_MS",
    "MOBILE_VISIT_TIMEOUT_MS",
    "TIMELINE_MAX_ENTRIES",
    "CompiledDefinitions",
    "CompiledEnrichment",
    "EngineLimits",
]


@dataclass(frozen=True)
class EngineLimits:
    """Engine settings with every default resolved (times in milliseconds)."""

    visit_timeout_ms: int = DEFAULT_VISIT_TIMEOUT_MS
    platform_visit_timeout_ms: dict[str, int] = field(default_factory=dict)
    max_visit_length_ms: int = MAX_VISIT_LENGTH_MS
    visitor_retention_ms: int = DEFAULT_VISITOR_RETENTION_MS
    max_string_length: int = DEFAULT_MAX_STRING_LENGTH
    max_collection_size: int = DEFAULT_MAX_COLLECTION_SIZE
    event_dedup_window_ms: int = DEFAULT_EVENT_DEDUP_WINDOW_MS
    date_formats: tuple[str, ...] = ()

    def visit_timeout_for(self, platform: str) -> int:
        """Return the inactivity timeout of a visit started on ``platform``: the configured
        one, else Tealium's default for the platform, else the visit timeout."""
        configured = self.platform_visit_timeout_ms.get(platform)
        if configured is not None:
            return configured
        return DEFAULT_PLATFORM_VISIT_TIMEOUTS_MS.get(platform, self.visit_timeout_ms)


@dataclass(frozen=True)
class CompiledEnrichment:
    """One enrichment with its attribute, in execution order."""

    attribute: pb.AttributeDefinition
    enrichment: pb.Enrichment
    path: str
    """Document path, e.g. ``attributes[3].enrichments[0]`` (for traces and errors)."""


@dataclass(frozen=True)
class CompiledDefinitions:
    """A validated definitions document, indexed for the engine.

    Attributes:
        version: the published version id ("" for an unpublished document).
        document: the original message.
        limits: engine settings with defaults resolved.
        attributes: attribute definitions by id, in document order.
        enrichments: every enrichment, ordered so that one reading attribute X (in its
            rule or operands) runs after every enrichment writing X, otherwise in document
            order; stable.
        audiences: audience definitions by id, in document order.
        feeds: event feeds by id.
        actions: enabled actions by id, in document order.
        cooldown_wait_ms: cooldown group id -> wait in milliseconds.
        visitor_id_attributes: ids of visitor-ID attributes, in document order (the order
            in which identities are evaluated for stitching).
    """

    version: str
    document: pb.Definitions
    limits: EngineLimits
    attributes: dict[str, pb.AttributeDefinition]
    enrichments: tuple[CompiledEnrichment, ...]
    audiences: dict[str, pb.AudienceDefinition]
    feeds: dict[str, pb.EventFeedDefinition]
    actions: dict[str, pb.ActionDefinition]
    cooldown_wait_ms: dict[str, int]
    visitor_id_attributes: tuple[str, ...]
