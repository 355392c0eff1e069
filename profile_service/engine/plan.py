"""The engine's compiled form of one definitions version, built once and cached.

`plan_for` compiles every rule, audience, feed, enrichment and action mapping of a
`CompiledDefinitions` into closures, so applying an event touches no protobuf message of
the definitions and parses nothing. The cache is keyed by the definitions object (a
replica holds one or two versions at a time), and an entry goes away with its object.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import CompiledDefinitions, EngineLimits
from profile_service.engine.actions import ActionPlan, compile_action
from profile_service.engine.builtin_values import BUILTIN_READERS
from profile_service.engine.cohort_bindings import compile_cohort_bindings
from profile_service.engine.context import AttributeMeta, Predicate, favorite_id
from profile_service.engine.enrichments import EnrichmentStep, compile_enrichment
from profile_service.engine.forwarding import compile_forwardings
from profile_service.engine.identity_values import identity_rule
from profile_service.engine.operands import OperandCompiler
from profile_service.engine.rules import compile_expression, compile_rule
from profile_service.engine.state import NormalizedEvent
from profile_service.engine.step_index import GroupNeeds, StepIndex, rule_needs


@dataclass(frozen=True, slots=True)
class AudiencePlan:
    """One audience, compiled."""

    id: str
    name: str
    predicate: Predicate


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """One event feed, compiled (``predicate`` ``None``: matches every event)."""

    id: str
    predicate: Predicate | None


@dataclass(frozen=True, slots=True)
class EnginePlan:
    """Everything the engine runs for one definitions version."""

    version: str
    limits: EngineLimits
    metas: dict[str, AttributeMeta]
    operands: OperandCompiler
    new_visitor: tuple[EnrichmentStep, ...]
    new_visit: tuple[EnrichmentStep, ...]
    any_event: StepIndex
    """The WHEN_ANY_EVENT steps, indexed by what their rules require of the event (see
    `steps_for_event`)."""
    visit_ended: tuple[EnrichmentStep, ...]
    audiences: tuple[AudiencePlan, ...]
    audience_by_id: dict[str, AudiencePlan]
    feeds: tuple[FeedPlan, ...]
    actions: tuple[ActionPlan, ...]
    action_by_id: dict[str, ActionPlan]
    visit_tallies: tuple[str, ...]
    """Visit-scoped tallies, whose recency records go when the visit ends."""
    needs_previous_builtins: bool
    """Some HAS_CHANGED reads a built-in, so built-ins are snapshotted before each event."""
    track_favorites: bool
    """Some HAS_CHANGED reads a tally favourite, so favourites are recorded before writes."""
    badge_ids: tuple[str, ...]
    """The badge attributes' ids, sorted (a profile's badges are listed in this order)."""

    def steps_for_event(self, event: NormalizedEvent) -> tuple[EnrichmentStep, ...]:
        """The WHEN_ANY_EVENT steps that may apply to ``event``, in order."""
        return self.any_event.for_event(event.name, event.data)

    def audience_name(self, audience_id: str) -> str:
        """The audience's name (its id when it has none or is no longer defined)."""
        audience = self.audience_by_id.get(audience_id)
        return audience.name if audience is not None else audience_id


def _conditions(definitions: pb.Definitions) -> Iterator[pb.Condition]:
    def in_expression(expression: pb.AudienceExpression) -> Iterator[pb.Condition]:
        node = expression.WhichOneof("node")
        if node == "condition":
            yield expression.condition
        elif node == "negate":
            yield from in_expression(expression.negate)
        elif node in ("all", "any"):
            for item in getattr(expression, node).items:
                yield from in_expression(item)

    rules = [e.rule for a in definitions.attributes for e in a.enrichments]
    rules += [feed.rule for feed in definitions.event_feeds]
    for rule in rules:
        for group in rule.groups:
            yield from group.conditions
    for audience in definitions.audiences:
        yield from in_expression(audience.expression)


def build_plan(defs: CompiledDefinitions) -> EnginePlan:
    """Compile a definitions version (use `plan_for`, which caches)."""
    limits = defs.limits
    formats = limits.date_formats
    metas = {
        attribute_id: AttributeMeta.of(
            attribute_id,
            attribute.name or attribute_id,
            attribute.type,
            visit_scope=attribute.scope == pb.ATTRIBUTE_SCOPE_VISIT,
            identity=identity_rule(attribute.identity)
            if attribute.type == pb.ATTRIBUTE_TYPE_VISITOR_ID
            else None,
        )
        for attribute_id, attribute in defs.attributes.items()
    }
    operands = OperandCompiler(metas)

    by_when: dict[int, list[EnrichmentStep]] = {w: [] for w in pb.When.values()}
    any_event_needs: list[tuple[GroupNeeds, ...] | None] = []
    for compiled in defs.enrichments:
        meta = metas.get(compiled.attribute.id)
        if meta is None:
            continue
        rule = compile_rule(compiled.enrichment.rule, operands, formats)
        step = compile_enrichment(
            meta, compiled.attribute, compiled.enrichment, compiled.path, operands, rule, limits
        )
        by_when[step.when].append(step)
        if step.when == pb.WHEN_ANY_EVENT:
            any_event_needs.append(rule_needs(compiled.enrichment.rule))

    audiences = tuple(
        AudiencePlan(
            audience_id,
            audience.name or audience_id,
            compile_expression(audience.expression, operands, formats),
        )
        for audience_id, audience in defs.audiences.items()
    )
    feeds = tuple(
        FeedPlan(feed_id, compile_rule(feed.rule, operands, formats))
        for feed_id, feed in defs.feeds.items()
    )
    names = {audience.id: audience.name for audience in audiences}
    actions = tuple(
        compile_action(definition, operands, names, defs.cooldown_wait_ms)
        for definition in defs.actions.values()
        if not definition.disabled
    ) + compile_forwardings(defs.document, operands, names)
    actions += compile_cohort_bindings(defs.document, operands)

    changed_inputs = {
        condition.input.attribute
        for condition in _conditions(defs.document)
        if condition.operator == pb.OPERATOR_HAS_CHANGED
        and condition.input.WhichOneof("source") == "attribute"
    }
    # Change-in-number/date read their operand's value before the event, as HAS_CHANGED.
    changed_inputs |= {
        compiled.enrichment.operands[0].attribute
        for compiled in defs.enrichments
        if compiled.enrichment.kind in _CHANGE_KINDS
        and compiled.enrichment.operands
        and compiled.enrichment.operands[0].WhichOneof("source") == "attribute"
    }
    tallies = [meta for meta in metas.values() if meta.is_tally]
    return EnginePlan(
        version=defs.version,
        limits=limits,
        metas=metas,
        operands=operands,
        new_visitor=tuple(by_when[pb.WHEN_NEW_VISITOR]),
        new_visit=tuple(by_when[pb.WHEN_NEW_VISIT]),
        any_event=StepIndex.build(by_when[pb.WHEN_ANY_EVENT], any_event_needs),
        visit_ended=tuple(by_when[pb.WHEN_VISIT_ENDED]),
        audiences=audiences,
        audience_by_id={audience.id: audience for audience in audiences},
        feeds=feeds,
        actions=actions,
        action_by_id={action.id: action for action in actions},
        visit_tallies=tuple(meta.id for meta in tallies if meta.visit_scope),
        needs_previous_builtins=any(
            name in BUILTIN_READERS and name not in metas for name in changed_inputs
        ),
        track_favorites=any(favorite_id(meta.id) in changed_inputs for meta in tallies),
        badge_ids=tuple(sorted(meta.id for meta in metas.values() if meta.is_badge)),
    )


_CHANGE_KINDS = frozenset(
    {pb.ENRICHMENT_KIND_SET_CHANGE_IN_NUMBER, pb.ENRICHMENT_KIND_SET_CHANGE_IN_DATE}
)

_PLANS: dict[int, tuple[weakref.ref[CompiledDefinitions], EnginePlan]] = {}


def plan_for(defs: CompiledDefinitions) -> EnginePlan:
    """The compiled plan of ``defs``, built on first use and cached while ``defs`` lives."""
    key = id(defs)
    entry = _PLANS.get(key)
    if entry is not None and entry[0]() is defs:
        return entry[1]
    plan = build_plan(defs)

    def forget(ref: weakref.ref[CompiledDefinitions], key: int = key) -> None:
        current = _PLANS.get(key)
        if current is not None and current[0] is ref:
            del _PLANS[key]

    _PLANS[key] = (weakref.ref(defs, forget), plan)
    return plan
