"""The engine functions the storage layer calls, injected so that tests can pass simple ones.

Production passes `EngineFunctions.real()`, i.e. ``profile_service.engine.processor``'s
``process_event``, ``end_visit`` and ``evaluate_delayed``. The storage layer treats them as
pure: the same inputs give the same outcome, and a call that loses a compare-and-set race is
simply recomputed from freshly read state.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import FiredAction, NormalizedEvent, Outcome, ProfileState

__all__ = ["EndVisit", "EngineFunctions", "EvaluateDelayed", "ProcessEvent"]

ProcessEvent = Callable[[CompiledDefinitions, ProfileState | None, NormalizedEvent, int], Outcome]
"""``(defs, state or None for a new visitor, event, now_ms) -> Outcome``; ends an expired
visit first (``outcome.visit_ended``)."""

EndVisit = Callable[[CompiledDefinitions, ProfileState, int], Outcome]
"""``(defs, state with an open visit, now_ms) -> Outcome`` of ending that visit."""

EvaluateDelayed = Callable[[CompiledDefinitions, ProfileState, str, int], FiredAction | None]
"""``(defs, state, action_id, now_ms) -> FiredAction | None``: a delayed action, re-evaluated
when due (``None``: the visitor no longer qualifies)."""


@dataclass(frozen=True)
class EngineFunctions:
    """The three engine entry points the storage layer drives."""

    process_event: ProcessEvent
    end_visit: EndVisit
    evaluate_delayed: EvaluateDelayed

    @classmethod
    def real(cls) -> EngineFunctions:
        """The production engine (``profile_service.engine.processor``)."""
        # Imported by name so that the storage layer does not depend on the engine module at
        # import time (they are developed and tested separately).
        processor = importlib.import_module("profile_service.engine.processor")
        return cls(
            process_event=cast(ProcessEvent, processor.process_event),
            end_visit=cast(EndVisit, processor.end_visit),
            evaluate_delayed=cast(EvaluateDelayed, processor.evaluate_delayed),
        )
