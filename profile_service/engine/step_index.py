"""Which WHEN_ANY_EVENT enrichment steps can apply to an event, known before their rules run.

Most enrichment rules start with conditions that only the event decides: ``event.name``
EQUALS a constant text, and event fields IS_ASSIGNED. A step none of whose rule's groups
can match the event's name and assigned fields is skipped outright (its rule has no side
effects, so skipping it is the same as evaluating it to false). The steps an event visits
depend only on its name and on which of the watched fields it carries, so they are worked
out once per such combination and cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.enrichments import EnrichmentStep
from profile_service.engine.operands import EVENT_NAME, EVENT_TIME, EVENT_VISITOR_ID

_OWN_FIELDS = frozenset({EVENT_NAME, EVENT_TIME, EVENT_VISITOR_ID})
"""The event's own name, time and visitor id: always there, not data fields."""

MAX_CACHED = 4096
"""Combinations kept per definitions version (beyond: worked out per event, not cached), so
events with ever new field sets cannot grow the cache without bound."""


@dataclass(frozen=True, slots=True)
class GroupNeeds:
    """What one AND-group of a rule requires of the event to be able to match."""

    name: str | None
    """The event name it requires (``None``: any)."""
    fields: frozenset[str]
    """Data fields it requires to be assigned (present and not null): an event without one of
    them cannot match the group."""


def rule_needs(rule: pb.Rule) -> tuple[GroupNeeds, ...] | None:
    """What each group of ``rule`` requires (``None``: some group may match any event; an
    empty tuple: no group can ever match)."""
    if not rule.groups:
        return None
    needs: list[GroupNeeds] = []
    for group in rule.groups:
        names: set[str] = set()
        fields: set[str] = set()
        for condition in group.conditions:
            if condition.input.WhichOneof("source") != "event":
                continue
            source = condition.input.event
            if source == EVENT_NAME:
                if (
                    condition.operator == pb.OPERATOR_EQUALS
                    and not condition.ignore_case
                    and condition.value.WhichOneof("source") == "constant"
                    and condition.value.constant.WhichOneof("kind") == "string_value"
                ):
                    names.add(condition.value.constant.string_value)
            elif condition.operator == pb.OPERATOR_IS_ASSIGNED and source not in _OWN_FIELDS:
                fields.add(source)
        if len(names) > 1:
            continue  # two different names at once: the group never matches
        name = next(iter(names)) if names else None
        if name is None and not fields:
            return None  # this group may match any event
        needs.append(GroupNeeds(name, frozenset(fields)))
    return tuple(needs)


def _may_apply(needs: tuple[GroupNeeds, ...] | None, name: str, present: frozenset[str]) -> bool:
    if needs is None:
        return True
    return any(
        (group.name is None or group.name == name) and group.fields <= present for group in needs
    )


@dataclass(frozen=True, slots=True)
class StepIndex:
    """The WHEN_ANY_EVENT steps (in order) with what their rules require of the event."""

    steps: tuple[EnrichmentStep, ...]
    needs: tuple[tuple[GroupNeeds, ...] | None, ...]
    watched: frozenset[str]
    """Every data field some rule requires: only these decide the steps."""
    _cache: dict[tuple[str, frozenset[str]], tuple[EnrichmentStep, ...]] = field(
        default_factory=dict
    )

    @classmethod
    def build(
        cls, steps: Sequence[EnrichmentStep], needs: Sequence[tuple[GroupNeeds, ...] | None]
    ) -> StepIndex:
        """Index ``steps``; ``needs[i]`` is `rule_needs` of step i's rule."""
        watched = frozenset(
            name for n in needs if n is not None for group in n for name in group.fields
        )
        return cls(tuple(steps), tuple(needs), watched)

    def for_event(self, name: str, data: Mapping[str, Any]) -> tuple[EnrichmentStep, ...]:
        """The steps that may apply to an event with this name and data, in order."""
        # A watched field sent as null counts as present here: the steps kept for it are a
        # superset (their rules say no), and the key costs no look at the values.
        present = self.watched.intersection(data)
        key = (name, present)
        steps = self._cache.get(key)
        if steps is None:
            steps = tuple(
                step
                for step, needs in zip(self.steps, self.needs, strict=True)
                if _may_apply(needs, name, present)
            )
            if len(self._cache) < MAX_CACHED:
                self._cache[key] = steps
        return steps
