"""Compiling operands (constants, attributes, event fields) into readers.

A reader is a closure taking the `EvalContext`; building it once per definitions version
keeps protobuf access and id lookups off the per-event path.

Readers for conditions return ``None`` for "no value"; readers for enrichments and
mappings return `MISSING` for "no value" and ``None`` only for an explicit null (an event
field sent as null, a null constant), which asks an enrichment to remove the value.
"""

from __future__ import annotations

from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.builtin_values import (
    BUILTIN_READERS,
    BUILTIN_TYPES,
    UNBADGED,
    is_unbadged,
)
from profile_service.engine.context import AttributeMeta, EvalContext, Reader, favorite_id
from profile_service.engine.value_protos import (
    value_from_proto,
)
from profile_service.engine.values import (
    MISSING,
    tally_favorite,
)

_UNSET = object()
EVENT_NAME = "event.name"
EVENT_TIME = "event.time"
EVENT_VISITOR_ID = "event.visitor_id"


def _constant_reader(value: Any) -> Reader:
    return lambda _c: value


class OperandCompiler:
    """Builds readers for the operands of one definitions version."""

    def __init__(self, metas: dict[str, AttributeMeta]) -> None:
        self._metas = metas
        self._tallies = {favorite_id(meta.id): meta for meta in metas.values() if meta.is_tally}
        self._badges = tuple(meta.id for meta in metas.values() if meta.is_badge)

    # --- static information ------------------------------------------------------------------

    def attribute_type(self, attribute_id: str) -> int | None:
        """The type of an attribute id (built-ins and favourites included), if known."""
        meta = self._metas.get(attribute_id)
        if meta is not None:
            return meta.type
        if attribute_id in self._tallies:
            return pb.ATTRIBUTE_TYPE_STRING
        if attribute_id == UNBADGED:
            return pb.ATTRIBUTE_TYPE_BADGE
        return BUILTIN_TYPES.get(attribute_id)

    def static_type(self, operand: pb.Operand) -> int | None:
        """The attribute type an operand is known to have before any event, if any."""
        source = operand.WhichOneof("source")
        if source == "attribute":
            return self.attribute_type(operand.attribute)
        if source == "event" and operand.event == EVENT_TIME:
            return pb.ATTRIBUTE_TYPE_DATE
        return None

    # --- readers -------------------------------------------------------------------------------

    def reader(self, operand: pb.Operand, *, missing: Any = None) -> Reader:
        """A reader of ``operand``; ``missing`` is what it returns when there is no value."""
        source = operand.WhichOneof("source")
        if source == "constant":
            return _constant_reader(value_from_proto(operand.constant))
        if source == "attribute":
            return self.attribute_reader(operand.attribute, missing=missing)
        if source == "event":
            return self.event_reader(operand.event, missing=missing)
        return _constant_reader(missing)

    def optional_reader(self, operand: pb.Operand, *, missing: Any = None) -> Reader | None:
        """A reader, or ``None`` when the operand is not set at all."""
        if operand.WhichOneof("source") is None:
            return None
        return self.reader(operand, missing=missing)

    def event_reader(self, field: str, *, missing: Any = None) -> Reader:
        """A reader of an event data field or of the event's own name, time or visitor id."""
        if field == EVENT_NAME:
            return lambda c: c.event.name if c.event is not None else missing
        if field == EVENT_TIME:
            return lambda c: c.event.time_ms if c.event is not None else missing
        if field == EVENT_VISITOR_ID:
            return lambda c: c.event.visitor_id if c.event is not None else missing
        return lambda c: c.data.get(field, missing)

    def attribute_reader(self, attribute_id: str, *, missing: Any = None) -> Reader:
        """A reader of a stored attribute, a built-in or a tally's favourite."""
        meta = self._metas.get(attribute_id)
        if meta is not None:
            aid = meta.id
            if meta.visit_scope:

                def read_visit(c: EvalContext) -> Any:
                    visit = c.state.visit
                    return visit.attributes.get(aid, missing) if visit is not None else missing

                return read_visit
            return lambda c: c.state.attributes.get(aid, missing)
        tally = self._tallies.get(attribute_id)
        if tally is not None:
            return self._favorite_reader(tally, missing)
        if attribute_id == UNBADGED:
            badges = self._badges
            return lambda c: True if is_unbadged(c.state, badges) else missing
        builtin = BUILTIN_READERS.get(attribute_id)
        if builtin is not None:

            def read_builtin(c: EvalContext) -> Any:
                value = builtin(c.state)
                return missing if value is None else value

            return read_builtin
        return _constant_reader(missing)

    def _favorite_reader(self, tally: AttributeMeta, missing: Any) -> Reader:
        def read_favorite(c: EvalContext) -> Any:
            counts = c.get(tally)
            if not isinstance(counts, dict):
                return missing
            favorite = tally_favorite(counts, c.state.tally_touched.get(tally.id))
            return missing if favorite is None else favorite

        return read_favorite

    def previous_reader(self, operand: pb.Operand) -> Reader:
        """A reader of the operand's value before the current event (``None`` if none).

        Event fields and constants have no earlier value: they read as they are now, so
        they never "change".
        """
        current = self.reader(operand)
        if operand.WhichOneof("source") != "attribute":
            return current
        attribute_id = operand.attribute
        if attribute_id in BUILTIN_READERS and attribute_id not in self._metas:

            def previous_builtin(c: EvalContext) -> Any:
                if c.previous_builtins is None:
                    return current(c)
                return c.previous_builtins.get(attribute_id)

            return previous_builtin

        def previous(c: EvalContext) -> Any:
            original = c.originals.get(attribute_id, _UNSET)
            if original is _UNSET:
                return current(c)
            return None if original is MISSING else original

        return previous
