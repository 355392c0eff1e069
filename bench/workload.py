"""The ingest benchmark's events: a shop's traffic for N visitors, cut into TrackEvents batches.

Every visitor has a deterministic random journey (seeded by its index): a landing page view,
then page and product views, cart adds, searches, logins and purchases. 60% of visitors are
known customers whose logins and purchases carry ``customer_id`` and ``email``. Events carry
event ids (as a client that wants exactly-once retries sends them) and no time (the service
stamps them on receipt, so they all fall in each visitor's first visit).

The identity mix (`IDENTITY_MIX`, the identity benchmark) replaces the 60% known customers:
20% of visitors are identified on every event (``customer_id``, a visitor-ID attribute), and 2%
are the second device of an identified visitor (its ``customer_id`` on every event), so their
first event stitches two profiles.

The stream is ordered in rounds: round r holds the r-th event of every visitor, visitors
shuffled per round. Batches are consecutive slices of the stream, so one batch touches as
many visitors as it has events, and one visitor's events are a round (N/batch_size batches)
apart — the way a partitioned ingestion pipeline feeds the service. Batches are serialized
up front so the clients spend no time building messages while the clock runs.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from crowd.client import make_event
from crowd.profile.v1 import event_pb2, profile_service_pb2

CATEGORIES = ("electronics", "books", "garden", "toys", "fashion", "sports", "beauty", "food")
BRANDS = tuple(f"brand-{n}" for n in range(12))
QUERIES = tuple(f"query {n}" for n in range(60))
KNOWN_SHARE = 0.6
# (event name, weight) after the landing page view.
EVENT_MIX = (
    ("page_view", 34),
    ("product_view", 30),
    ("cart_add", 12),
    ("search", 10),
    ("login", 7),
    ("purchase", 7),
)


@dataclass(frozen=True)
class IdentityMix:
    """Who carries which ``customer_id``: ``identified`` visitors in every ``every`` carry their
    own on every event, and visitor ``n * every + 1`` for n < ``second_devices`` per 100
    carries the one of visitor ``n * every``."""

    every: int = 5
    """1 in ``every`` visitors is identified (5: 20%)."""
    second_device_every: int = 50
    """1 in this many visitors is a second device of the identified visitor before it (2%)."""

    def customer(self, index: int) -> str | None:
        """The customer id visitor ``index`` carries, if any."""
        if index % self.every == 0:
            return f"cust-{index}"
        if index % self.second_device_every == 1:
            return f"cust-{index - 1}"  # index - 1 is a multiple of 50, hence identified
        return None


IDENTITY_MIX = IdentityMix()


@dataclass(frozen=True)
class Batches:
    """Serialized ``TrackEventsRequest`` messages and how many events each holds."""

    payloads: list[bytes]
    sizes: list[int]

    @property
    def events(self) -> int:
        """Events in all batches."""
        return sum(self.sizes)


def _event_data(name: str, rng: random.Random, customer: str | None) -> dict[str, Any]:
    category = rng.choice(CATEGORIES)
    if name == "page_view":
        return {"page": f"/{category}/{rng.randrange(40)}", "category": category}
    if name == "product_view":
        return {
            "product_id": f"sku-{rng.randrange(800)}",
            "category": category,
            "brand": rng.choice(BRANDS),
            "price": float(rng.randrange(5, 400)),
        }
    if name == "cart_add":
        return {
            "product_id": f"sku-{rng.randrange(800)}",
            "brand": rng.choice(BRANDS),
            "price": float(rng.randrange(5, 400)),
        }
    if name == "search":
        return {"query": rng.choice(QUERIES)}
    if name == "purchase":
        data: dict[str, Any] = {"order_total": float(rng.randrange(20, 700)), "items": 1}
        if customer is not None:
            data["customer_id"] = customer
        return data
    # login
    if customer is None:
        return {}
    return {"customer_id": customer, "email": f"{customer.upper()}@Example.com"}


def visitor_journey(
    prefix: str, index: int, events_per_visitor: int, identity: IdentityMix | None = None
) -> Iterator[event_pb2.Event]:
    """The events of one visitor, in order."""
    rng = random.Random(index)
    visitor_id = f"{prefix}-{index:07d}"
    known = rng.random() < KNOWN_SHARE
    # Customer ids are per prefix: passes on one Redis must not stitch into each other.
    if identity is not None:
        number = identity.customer(index)
        customer = f"{prefix}-{number}" if number is not None else None
    else:
        customer = f"{prefix}-cust-{index}" if known else None
    names, weights = zip(*EVENT_MIX, strict=True)
    for n in range(events_per_visitor):
        name = "page_view" if n == 0 else rng.choices(names, weights)[0]
        data = _event_data(name, rng, customer)
        if identity is not None and customer is not None:
            data["customer_id"] = customer
        yield make_event(visitor_id, name, data, event_id=f"{visitor_id}-{n}")


def build_batches(
    *,
    prefix: str,
    visitors: int,
    events_per_visitor: int,
    batch_size: int,
    seed: int = 7,
    identity: IdentityMix | None = None,
) -> Batches:
    """All events of ``visitors`` visitors, in rounds, cut into serialized batches."""
    journeys = [visitor_journey(prefix, i, events_per_visitor, identity) for i in range(visitors)]
    order = list(range(visitors))
    shuffle = random.Random(seed)
    stream: list[event_pb2.Event] = []
    for _ in range(events_per_visitor):
        shuffle.shuffle(order)
        stream.extend(next(journeys[i]) for i in order)
    payloads: list[bytes] = []
    sizes: list[int] = []
    for start in range(0, len(stream), batch_size):
        chunk = stream[start : start + batch_size]
        # BASIC: like an ingest pipeline, the bench acts on outcomes, not on each attribute's
        # new value (the lean server honours the view too).
        request = profile_service_pb2.TrackEventsRequest(
            events=chunk, result_view=event_pb2.EVENT_RESULT_VIEW_BASIC
        )
        payloads.append(request.SerializeToString())
        sizes.append(len(chunk))
    return Batches(payloads, sizes)
