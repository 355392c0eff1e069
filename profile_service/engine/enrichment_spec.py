"""What every enrichment factory compiles from (`Spec`) and how a value is saved within the
engine limits (`save`); the rules are listed in :mod:`profile_service.engine.enrichments`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from crowd.profile.v1 import event_pb2
from profile_service.definitions.model import EngineLimits
from profile_service.engine.context import Apply, AttributeMeta, EvalContext, Reader
from profile_service.engine.identity_values import (
    DEFAULT_IDENTITY_RULE,
    identity_note,
    refusal_of,
)
from profile_service.engine.operands import OperandCompiler
from profile_service.engine.values import (
    MISSING,
    trim_newest,
)

STRING_TYPES = (pb.ATTRIBUTE_TYPE_STRING, pb.ATTRIBUTE_TYPE_VISITOR_ID)
ARRAY_TYPES = (
    pb.ATTRIBUTE_TYPE_STRING_ARRAY,
    pb.ATTRIBUTE_TYPE_NUMBER_ARRAY,
    pb.ATTRIBUTE_TYPE_BOOLEAN_ARRAY,
)


@dataclass(frozen=True, slots=True)
class Spec:
    """What an enrichment factory compiles from."""

    meta: AttributeMeta
    enrichment: pb.Enrichment
    attribute: pb.AttributeDefinition
    operands: OperandCompiler
    limits: EngineLimits
    formats: tuple[str, ...]

    def operand(self, index: int) -> Reader:
        """Reader of operands[index] (`MISSING` when absent or without a value)."""
        if index >= len(self.enrichment.operands):
            return lambda _c: MISSING
        return self.operands.reader(self.enrichment.operands[index], missing=MISSING)

    def has_operand(self, index: int) -> bool:
        """True if operands[index] is given."""
        return index < len(self.enrichment.operands)


# --- saving with limits ------------------------------------------------------------------------


def fits(c: EvalContext, meta: AttributeMeta, text: str) -> bool:
    limit = c.limits.max_string_length
    if len(text) <= limit:
        return True
    c.note(f"{meta.id}: a string of {len(text)} characters is longer than {limit}; not saved")
    return False


def save(c: EvalContext, meta: AttributeMeta, value: Any) -> None:
    """Store a coerced value of ``meta``'s type, enforcing limits."""
    kind = meta.type
    if isinstance(value, str):
        if not fits(c, meta, value):
            return
        if kind == pb.ATTRIBUTE_TYPE_VISITOR_ID and not identity_accepted(c, meta, value):
            return
    elif isinstance(value, float):
        if not math.isfinite(value):
            return
    elif isinstance(value, list):
        limit = c.limits.max_collection_size
        if kind == pb.ATTRIBUTE_TYPE_STRING_SET:
            value = value[:limit]
        elif kind in ARRAY_TYPES:
            value = trim_newest(value, limit)
        if kind in (pb.ATTRIBUTE_TYPE_STRING_SET, pb.ATTRIBUTE_TYPE_STRING_ARRAY):
            value = [item for item in value if fits(c, meta, item)]
    elif isinstance(value, dict) and kind == pb.ATTRIBUTE_TYPE_TALLY:
        limit = c.limits.max_collection_size
        if len(value) > limit:
            value = dict(list(value.items())[:limit])
        touched = c.state.tally_touched.get(meta.id)
        c.put(meta, value)
        if touched:
            # Recency of keys that are gone is meaningless.
            c.state.tally_touched[meta.id] = {k: s for k, s in touched.items() if k in value}
        return
    c.put(meta, value)


def identity_accepted(c: EvalContext, meta: AttributeMeta, value: str) -> bool:
    """True if ``value`` may be written to the visitor-ID attribute ``meta``: it is empty
    (or already holds this very value) and the value is valid and not blocked. A refused
    value is noted (event result and trace)."""
    current = c.get(meta)
    if current == value:
        return True
    if current is not MISSING:
        c.note_identity(
            identity_note(
                meta.id,
                value,
                event_pb2.IDENTITY_OUTCOME_ALREADY_SET,
                "the attribute already holds another value; a visitor ID never changes",
            )
        )
        return False
    refusal = refusal_of(meta.identity or DEFAULT_IDENTITY_RULE, value)
    if refusal is not None:
        c.note_identity(identity_note(meta.id, value, *refusal))
        return False
    return True


# --- factories ------------------------------------------------------------------------------

Factory = Callable[[Spec], Apply]


def nothing(_c: EvalContext) -> None:
    """The no-op write (an enrichment that cannot apply)."""
    return None
