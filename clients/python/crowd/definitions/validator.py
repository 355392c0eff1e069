"""Validate a definitions document as a whole and list every problem with its path.

``validate(definitions)`` returns all errors at once (an empty list means valid), each with a
path in proto field names and a sentence, e.g.::

    attributes[3].enrichments[0].rule.groups[1].conditions[0].operator:
        "greater than" does not apply to a string

It checks ids (present, well formed, unique across attributes, audiences, feeds, actions and
cooldown groups, not a built-in attribute id), settings, attributes and enrichments, rules,
audiences (attributes and badges only), feeds, actions and their Braze mappings, references
between them (connector ids live in the dispatch service and are not checked), enrichment
dependency cycles, and the size limits of Tealium §1.3.

The checks are split by section (``validate_*.py``); this module runs them in document order.
"""

from __future__ import annotations

from collections.abc import Sequence

from crowd.definitions.builtins import BUILTIN_ATTRIBUTES
from crowd.definitions.dependencies import describe_cycle, find_cycles
from crowd.definitions.errors import (
    DefinitionError,
    InvalidDefinitionsError,
    definition_errors_to_violations,
)
from crowd.definitions.limits import (
    MAX_ACTIONS,
    MAX_ATTRIBUTES,
    MAX_AUDIENCES,
    MAX_COOLDOWN_GROUPS,
    MAX_DOCUMENT_BYTES,
    MAX_EVENT_FEEDS,
)
from crowd.definitions.validate_actions import (
    check_actions,
    check_audiences,
    check_cooldown_groups,
    check_event_feeds,
)
from crowd.definitions.validate_attributes import check_attributes
from crowd.definitions.validate_cohort_bindings import check_cohort_bindings
from crowd.definitions.validate_forwarding import check_audience_forwarding
from crowd.definitions.validate_settings import check_settings
from crowd.definitions.validation_context import ValidationContext
from crowd.profile.v1 import definitions_pb2 as pb

__all__ = [
    "DefinitionError",
    "definition_errors_to_violations",
    "ensure_valid",
    "size_errors",
    "validate",
]

# Sections whose elements share one id namespace, with their size limits.
_ID_SECTIONS: tuple[tuple[str, str, int], ...] = (
    ("attributes", "attributes", MAX_ATTRIBUTES),
    ("audiences", "audiences", MAX_AUDIENCES),
    ("event_feeds", "event feeds", MAX_EVENT_FEEDS),
    ("actions", "actions", MAX_ACTIONS),
    ("cooldown_groups", "cooldown groups", MAX_COOLDOWN_GROUPS),
)


def validate(definitions: pb.Definitions) -> list[DefinitionError]:
    """Every problem of ``definitions``, in document order (dependency cycles last).

    Never raises for any message content, however malformed (unknown enum numbers included).
    A document over a size limit (`size_errors`) gets only those errors: it is refused
    before the (then long) full validation.
    """
    oversized = size_errors(definitions)
    if oversized:
        return oversized
    ctx = ValidationContext(definitions)
    _check_ids(ctx)
    check_settings(ctx)
    check_attributes(ctx)
    check_audiences(ctx)
    check_event_feeds(ctx)
    check_cooldown_groups(ctx)
    check_actions(ctx)
    check_audience_forwarding(ctx)
    check_cohort_bindings(ctx)
    for cycle in find_cycles(definitions):
        ctx.add(cycle.edges[0].path, describe_cycle(cycle))
    return ctx.errors


def ensure_valid(definitions: pb.Definitions) -> None:
    """Raise `InvalidDefinitionsError` listing every problem, if there is any."""
    errors = validate(definitions)
    if errors:
        raise InvalidDefinitionsError(errors)


def size_errors(definitions: pb.Definitions) -> list[DefinitionError]:
    """The document's size-limit violations: serialized bytes and elements per section.

    Cheap (no traversal in Python), so a server can refuse an oversized document before
    spending time on it.
    """
    errors = []
    size = definitions.ByteSize()
    if size > MAX_DOCUMENT_BYTES:
        errors.append(
            DefinitionError(
                "",
                f"the document is {size:,} bytes (serialized); at most "
                f"{MAX_DOCUMENT_BYTES:,} allowed",
            )
        )
    for field, label, limit in _ID_SECTIONS:
        count = len(getattr(definitions, field))
        if count > limit:
            errors.append(
                DefinitionError(field, f"the document has {count} {label}; at most {limit} allowed")
            )
    return errors


def _check_ids(ctx: ValidationContext) -> None:
    """Ids: present, well formed, unique across all sections, not built-in attribute ids."""
    owners: dict[str, str] = {}
    for field, _, _ in _ID_SECTIONS:
        items: Sequence[
            pb.AttributeDefinition
            | pb.AudienceDefinition
            | pb.EventFeedDefinition
            | pb.ActionDefinition
            | pb.CooldownGroup
        ] = getattr(ctx.definitions, field)
        for i, item in enumerate(items):
            path = f"{field}[{i}]"
            if not ctx.check_id_format(item.id, f"{path}.id"):
                continue
            if item.id in BUILTIN_ATTRIBUTES:
                ctx.add(f"{path}.id", f'"{item.id}" is the id of a built-in attribute')
            elif item.id in owners:
                ctx.add(f"{path}.id", f'id "{item.id}" is already used by {owners[item.id]}')
            else:
                owners[item.id] = path
