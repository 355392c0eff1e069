"""The engine functions the storage layer calls.

The storage layer receives them (dependency injection) rather than calling
``profile_service.engine.processor`` directly, so that its tests can pass small stand-ins with
outcomes they control (an engine that fails for one visitor, one that races a concurrent
write) and test atomicity, retries and the sweeper apart from the engine's rules. Production
passes `EngineFunctions.real()`, i.e. the processor's ``process_event``, ``end_visit`` and
``evaluate_delayed``. The storage layer treats them as pure: the same inputs give the same
outcome, and a call that loses a compare-and-set race is simply recomputed from freshly read
state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine import processor, stitching
from profile_service.engine.state import FiredAction, NormalizedEvent, Outcome, ProfileState

__all__ = [
    "CheckStitch",
    "EndVisit",
    "EngineFunctions",
    "EvaluateDelayed",
    "MergeProfiles",
    "ProcessEvent",
]


class ProcessEvent(Protocol):
    """``(defs, state or None for a new visitor, event, now_ms, *, trace) -> Outcome``; ends an
    expired visit first (``outcome.visit_ended``). ``trace=False``: no trace records are
    built (nobody keeps this visitor's trace history)."""

    def __call__(
        self,
        defs: CompiledDefinitions,
        state: ProfileState | None,
        event: NormalizedEvent,
        now_ms: int,
        /,
        *,
        trace: bool = True,
    ) -> Outcome: ...


class EndVisit(Protocol):
    """``(defs, state with an open visit, now_ms, *, trace) -> Outcome`` of ending that visit;
    ``trace=False`` as for `ProcessEvent`."""

    def __call__(
        self, defs: CompiledDefinitions, state: ProfileState, now_ms: int, /, *, trace: bool = True
    ) -> Outcome: ...


EvaluateDelayed = Callable[[CompiledDefinitions, ProfileState, str, int], FiredAction | None]
"""``(defs, state, action_id, now_ms) -> FiredAction | None``: a delayed action, re-evaluated
when due (``None``: the visitor no longer qualifies)."""

CheckStitch = Callable[
    [CompiledDefinitions, ProfileState, ProfileState, str, str], stitching.StitchRefusal | None
]
"""``(defs, survivor, replaced, attribute id, value) -> refusal or None``: the guardrails."""

MergeProfiles = Callable[..., Outcome]
"""`stitching.merge_profiles`: ``(defs, survivor, replaced, *, attribute_id, value, event,
stitch_id, now_ms) -> Outcome`` whose state is the merged survivor."""


@dataclass(frozen=True)
class EngineFunctions:
    """The engine entry points the storage layer drives (stitching defaults to the real one,
    so stand-ins for event processing need not provide it)."""

    process_event: ProcessEvent
    end_visit: EndVisit
    evaluate_delayed: EvaluateDelayed
    check_stitch: CheckStitch = field(default=stitching.check_stitch)
    merge_profiles: MergeProfiles = field(default=stitching.merge_profiles)

    @classmethod
    def real(cls) -> EngineFunctions:
        """The production engine (``profile_service.engine.processor``)."""
        return cls(
            process_event=processor.process_event,
            end_visit=processor.end_visit,
            evaluate_delayed=processor.evaluate_delayed,
        )
