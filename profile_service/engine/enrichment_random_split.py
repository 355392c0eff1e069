"""RANDOM_SPLIT: Tealium's "split string", a string drawn from weighted values (A/B groups).

The draw is a hash of the visitor, the attribute and the event (the visit end's time when
there is none), mapped onto the cumulative percentages: uniform over many visitors, and the
same when an event is processed again after a failed commit, so a replay never moves a
visitor to another group.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from itertools import accumulate

from profile_service.engine.context import Apply, EvalContext
from profile_service.engine.enrichment_spec import Spec, nothing, save

_SCALE = float(1 << 64)


def draw(*parts: str) -> float:
    """A number in [0, 1) from ``parts`` (uniform, deterministic)."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def random_split(spec: Spec) -> Apply:
    choices = [(v.value, v.percentage) for v in spec.enrichment.split_values if v.percentage > 0]
    if not choices:
        return nothing
    values = [value for value, _ in choices]
    bounds = list(accumulate(percentage for _, percentage in choices))
    total = bounds[-1]
    meta = spec.meta

    def assign(c: EvalContext) -> None:
        occasion = c.event.event_id if c.event is not None else f"end:{c.event_time_ms}"
        point = draw(c.state.profile_id, meta.id, occasion) * total
        save(c, meta, values[min(bisect_right(bounds, point), len(values) - 1)])

    return assign
