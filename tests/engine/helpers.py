"""Helpers for engine tests: definitions written as dicts, events, and a visitor driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crowd.definitions.loader import definitions_from_dict
from profile_service.definitions.compiler import compile_definitions
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.processor import end_visit, process_event
from profile_service.engine.state import NormalizedEvent, Outcome, ProfileState

T0 = 1_700_000_000_000
"""A fixed clock origin (2023-11-14T22:13:20Z)."""
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def enum_names(enum: Any, prefix: str) -> list[str]:
    """The lowercase short names of a proto enum's values, UNSPECIFIED excluded."""
    return [name.removeprefix(prefix).lower() for name, number in enum.items() if number != 0]


def compile_doc(document: dict[str, Any], version: str = "test") -> CompiledDefinitions:
    """Compile a definitions document written as a dict (loader syntax, not validated, so
    tests can also feed the engine documents the validator would refuse)."""
    return compile_definitions(definitions_from_dict(document), version)


def attribute(
    attribute_id: str, kind: str, *enrichments: dict[str, Any], scope: str = "visitor"
) -> dict[str, Any]:
    """An attribute definition."""
    return {
        "id": attribute_id,
        "name": attribute_id.replace("_", " ").title(),
        "scope": scope,
        "type": kind,
        "enrichments": list(enrichments),
    }


def enrichment(
    kind: str,
    *operands: dict[str, Any],
    when: str = "any_event",
    rule: list[list[dict[str, Any]]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An enrichment; ``rule`` is a list of AND-groups (OR between them)."""
    doc: dict[str, Any] = {"kind": kind, "when": when, "operands": list(operands), **extra}
    if rule is not None:
        doc["rule"] = rule_doc(rule)
    return doc


def rule_doc(groups: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """A Rule from a list of AND-groups."""
    return {"groups": [{"conditions": group} for group in groups]}


def const(value: Any) -> dict[str, Any]:
    """A constant operand."""
    return {"constant": value}


def attr(attribute_id: str) -> dict[str, Any]:
    """An attribute operand."""
    return {"attribute": attribute_id}


def evt(name: str) -> dict[str, Any]:
    """An event-field operand."""
    return {"event": name}


def cond(
    input_operand: dict[str, Any], operator: str, value: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A condition."""
    doc: dict[str, Any] = {"input": input_operand, "operator": operator, **extra}
    if value is not None:
        doc["value"] = value
    return doc


def is_event(name: str) -> dict[str, Any]:
    """The condition "event name equals ``name``"."""
    return cond(evt("event.name"), "equals", const(name))


def event(
    name: str,
    time_ms: int,
    data: dict[str, Any] | None = None,
    *,
    visitor_id: str = "visitor-1",
    event_id: str | None = None,
    platform: str = "",
    traceparent: str = "",
) -> NormalizedEvent:
    """A normalized event."""
    return NormalizedEvent(
        visitor_id=visitor_id,
        event_id=event_id if event_id is not None else f"{name}-{time_ms}",
        name=name,
        time_ms=time_ms,
        data=dict(data or {}),
        platform=platform,
        traceparent=traceparent,
    )


@dataclass
class Visitor:
    """Drives one visitor through events and visit ends, keeping its state between calls
    (serialised and parsed back each time, as the storage layer does)."""

    defs: CompiledDefinitions
    visitor_id: str = "visitor-1"
    state: ProfileState | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def send(self, name: str, time_ms: int, now_ms: int | None = None, **data: Any) -> Outcome:
        """Apply an event at ``time_ms`` (processed at ``now_ms``, default the same)."""
        return self.apply(event(name, time_ms, data, visitor_id=self.visitor_id), now_ms)

    def apply(self, normalized: NormalizedEvent, now_ms: int | None = None) -> Outcome:
        """Apply a prepared event."""
        outcome = process_event(
            self.defs,
            self._roundtrip(),
            normalized,
            normalized.time_ms if now_ms is None else now_ms,
        )
        return self._keep(outcome)

    def end(self, now_ms: int) -> Outcome:
        """End the open visit at ``now_ms``."""
        state = self._roundtrip()
        assert state is not None
        return self._keep(end_visit(self.defs, state, now_ms))

    @property
    def profile(self) -> ProfileState:
        """The current state."""
        assert self.state is not None
        return self.state

    def value(self, attribute_id: str) -> Any:
        """A stored visitor or visit attribute value (``None`` if unassigned)."""
        state = self.profile
        if attribute_id in state.attributes:
            return state.attributes[attribute_id]
        if state.visit is not None:
            return state.visit.attributes.get(attribute_id)
        return None

    def _roundtrip(self) -> ProfileState | None:
        if self.state is None:
            return None
        return ProfileState.from_bytes(self.state.to_bytes())

    def _keep(self, outcome: Outcome) -> Outcome:
        self.state = outcome.state
        self.outcomes.append(outcome)
        return outcome


def single(*attributes: dict[str, Any], **document: Any) -> CompiledDefinitions:
    """Definitions holding only ``attributes`` (plus any other top-level sections)."""
    return compile_doc({"attributes": list(attributes), **document})
