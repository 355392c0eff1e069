"""Compile a valid definitions document into the form the engine runs, and version it.

``compile_definitions`` assumes a document that ``validator.validate`` accepted (use
``check_and_compile`` to do both). It resolves the engine settings' defaults, indexes
everything by id, and orders the enrichments once so that no event re-derives anything.

``canonical_bytes`` / ``digest`` identify a document's content independently of how it was
written (YAML or JSON, key order, camelCase or snake_case, ``30m`` or ``1800s``).
"""

from __future__ import annotations

import hashlib
import json

from google.protobuf import json_format

from crowd.definitions.dependencies import execution_order
from crowd.definitions.durations import duration_ms
from crowd.definitions.validator import ensure_valid
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import (
    DEFAULT_EVENT_DEDUP_WINDOW_MS,
    DEFAULT_MAX_COLLECTION_SIZE,
    DEFAULT_MAX_STRING_LENGTH,
    DEFAULT_VISIT_TIMEOUT_MS,
    DEFAULT_VISITOR_RETENTION_MS,
    MAX_VISIT_LENGTH_MS,
    CompiledDefinitions,
    CompiledEnrichment,
    EngineLimits,
)


def compile_definitions(definitions: pb.Definitions, version: str = "") -> CompiledDefinitions:
    """Index a valid document for the engine.

    Args:
        definitions: A document ``validate`` accepted. It is copied, so later changes to the
            caller's message do not leak into the compiled form.
        version: The published version id ("" for an unpublished document).
    """
    document = pb.Definitions()
    document.CopyFrom(definitions)
    attributes = {a.id: a for a in document.attributes}
    enrichments = tuple(
        CompiledEnrichment(
            attribute=document.attributes[i],
            enrichment=document.attributes[i].enrichments[j],
            path=f"attributes[{i}].enrichments[{j}]",
        )
        for i, j in execution_order(document)
    )
    return CompiledDefinitions(
        version=version,
        document=document,
        limits=engine_limits(document.settings),
        attributes=attributes,
        enrichments=enrichments,
        audiences={a.id: a for a in document.audiences},
        feeds={f.id: f for f in document.event_feeds},
        actions={a.id: a for a in document.actions if not a.disabled},
        cooldown_wait_ms={g.id: duration_ms(g.wait) for g in document.cooldown_groups},
        visitor_id_attributes=tuple(
            a.id for a in document.attributes if a.type == pb.ATTRIBUTE_TYPE_VISITOR_ID
        ),
    )


def check_and_compile(definitions: pb.Definitions, version: str = "") -> CompiledDefinitions:
    """Validate, then compile.

    Raises:
        InvalidDefinitionsError: the document is invalid (every error listed).
    """
    ensure_valid(definitions)
    return compile_definitions(definitions, version)


def engine_limits(settings: pb.EngineSettings) -> EngineLimits:
    """The engine settings with every unset field replaced by its documented default."""

    def ms_or(field: str, default: int) -> int:
        return duration_ms(getattr(settings, field)) if settings.HasField(field) else default  # type: ignore[arg-type]

    return EngineLimits(
        visit_timeout_ms=ms_or("visit_timeout", DEFAULT_VISIT_TIMEOUT_MS),
        platform_visit_timeout_ms={
            platform: duration_ms(timeout)
            for platform, timeout in sorted(settings.platform_visit_timeouts.items())
        },
        max_visit_length_ms=ms_or("max_visit_length", MAX_VISIT_LENGTH_MS),
        visitor_retention_ms=ms_or("visitor_retention", DEFAULT_VISITOR_RETENTION_MS),
        max_string_length=settings.max_string_length or DEFAULT_MAX_STRING_LENGTH,
        max_collection_size=settings.max_collection_size or DEFAULT_MAX_COLLECTION_SIZE,
        event_dedup_window_ms=ms_or("event_dedup_window", DEFAULT_EVENT_DEDUP_WINDOW_MS),
        date_formats=tuple(settings.date_formats),
    )


def canonical_bytes(definitions: pb.Definitions) -> bytes:
    """A deterministic serialisation of the document's content.

    Proto JSON with proto field names, keys sorted, no insignificant whitespace, UTF-8:
    equal for equal messages whatever the source text looked like, stable across protobuf
    versions and readable by any language (unlike binary serialisation, whose
    determinism is per implementation).
    """
    as_dict = json_format.MessageToDict(definitions, preserving_proto_field_name=True)
    return json.dumps(as_dict, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(definitions: pb.Definitions) -> str:
    """SHA-256 of `canonical_bytes`, lowercase hex (``DefinitionsVersion.digest``)."""
    return hashlib.sha256(canonical_bytes(definitions)).hexdigest()
