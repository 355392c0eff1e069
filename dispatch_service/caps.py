"""Frequency caps: what the submit script needs to apply an action's cap policy.

Two kinds of cap, both decided inside the partition's submit script (``scripts/submit.lua``)
so that replicas accepting actions for one visitor at the same moment cannot both fire:

* **Cooldown groups** (Tealium's frequency capping, reference §6.3): of the capped actions of
  one group that qualify together for a visitor (in one ``SubmitActions`` call) the highest
  priority fires; on equal priority the first in the request fires. The others are
  *suppressed*, not queued. The group then waits its cooldown for that visitor; actions of
  the group arriving meanwhile are suppressed too. The cooldown key records when the wait
  ends, so the reason can say it.
* **Simple caps**: at most ``max_sends`` sends of one ``action_id`` per visitor in a sliding
  ``window``, counted in a sorted set of send times. Sends are counted when an action is
  accepted (fires), like Tealium counts fired actions, not when Braze confirms delivery.

When an action is in a group and has a simple cap, the group's choice skips candidates that
their simple cap suppresses: the highest-priority action that may still be sent fires.

Times come from the accepting replica's clock (``now``), so replicas' clocks should agree to
well within the shortest window.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import duration_pb2

from crowd.dispatch.v1 import action_pb2
from service_common.keys import DispatchKeys

__all__ = ["CapArgs", "cap_args", "describe_duration"]


@dataclass(frozen=True)
class CapArgs:
    """The cap part of one action's submit-script arguments (empty keys: no such cap)."""

    cooldown_key: str | None
    cap_key: str | None
    group: str
    cooldown_ms: int
    priority: int
    max_sends: int
    window_ms: int
    cap_reason: str


NO_CAPS = CapArgs(None, None, "", 0, 0, 0, 0, "")


def cap_args(action: action_pb2.Action, keys: DispatchKeys) -> CapArgs:
    """Return the cap arguments of a (validated) action in its partition."""
    if not action.HasField("frequency_cap"):
        return NO_CAPS
    policy = action.frequency_cap
    grouped = bool(policy.cooldown_group)
    capped = policy.max_sends > 0
    window_ms = _millis(policy.window) if capped else 0
    return CapArgs(
        cooldown_key=keys.cooldown(action.visitor_id, policy.cooldown_group) if grouped else None,
        cap_key=keys.cap(action.visitor_id, action.action_id) if capped else None,
        group=policy.cooldown_group,
        cooldown_ms=_millis(policy.cooldown) if grouped else 0,
        priority=policy.priority,
        max_sends=policy.max_sends,
        window_ms=window_ms,
        cap_reason=(
            f"frequency cap: at most {policy.max_sends} sends of {action.action_id} "
            f"per {describe_duration(window_ms)}"
            if capped
            else ""
        ),
    )


def describe_duration(ms: int) -> str:
    """A short human form of a duration, e.g. ``24h``, ``90m``, ``1.5s``."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    if ms >= 1000:
        return f"{ms / 1000:g}s"
    return f"{ms}ms"


def _millis(duration: duration_pb2.Duration) -> int:
    """Milliseconds of a (validated, positive) duration."""
    return duration.ToMilliseconds()
