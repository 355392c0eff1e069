"""Request planning: pack actions into as few Braze requests as the limits allow (pure code).

(Over 400 lines on purpose: one packing algorithm whose limits, coalescing and
ordering rules interact; pure code, tested as one unit.)

Rules (reference/braze-rest-api.md §1.2, §3, §7):
- /users/track carries at most the batch mode's objects (75 combined by default; 75 per array
  for legacy plans; 50 combined), /users/delete and /users/identify at most 50 identifiers,
  every body at most 4 MB, every object at most 100 KB.
- /users/alias/new carries at most 50 aliases, /users/merge at most 50 merges.
- All objects of one action travel in one request. An action that can never fit (an object over
  100 KB, more objects than one request takes, a body over 4 MB on its own) fails permanently.
- Coalescing: attribute objects of one Braze user in one request are merged into one object
  (see attributes.py), so an update that only touches attributes of a user already in the
  request costs no object at all.
- Order: an action never lands in an earlier request than an earlier action of the same Braze
  user, so sending the requests in order keeps each user's writes in order.

Packing is greedy first-fit in arrival order, which stays within a few percent of the minimum
request count (objects / cap, rounded up) for the workloads the dispatcher sees.

(About 400 lines on purpose: the packing rules above interlock — caps, sizes, coalescing,
per-user order — and are read and tested as one unit.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crowd.dispatch.v1.action_pb2 import Action
from dispatch_service.braze.attributes import AttributeObject
from dispatch_service.braze.cached import cached
from dispatch_service.braze.connector import BatchMode, BrazeConnector
from dispatch_service.braze.endpoints import MAX_BODY_BYTES, MAX_OBJECT_BYTES, Endpoint
from dispatch_service.braze.payload import (
    AliasObject,
    BrazeObjects,
    DeleteObject,
    IdentifyObject,
    MergeObject,
    TrackObjects,
)
from dispatch_service.braze.results import ActionResult, failed, retry, skipped

TRACK_ARRAYS = ("attributes", "events", "purchases")
#: Identifiers per /users/delete and /users/identify request.
MAX_IDS_PER_REQUEST = 50
#: Bytes of ``{"attributes":[],"events":[],"purchases":[]}`` plus slack for the JSON framing.
_BODY_OVERHEAD = 64


@dataclass(frozen=True)
class DeliveryItem:
    """One action ready for planning."""

    idempotency_key: str
    action: Action
    objects: BrazeObjects
    attempt: int = 1
    """Delivery attempt this is (1 for the first); reported on the request span."""


@dataclass(frozen=True)
class PlannedRequest:
    """One HTTP request to Braze and the actions it carries."""

    connector_id: str
    endpoint: Endpoint
    items: tuple[DeliveryItem, ...]
    """Carried actions, in arrival order."""
    body: Mapping[str, Any]
    """The JSON body."""
    origins: Mapping[str, tuple[tuple[str, ...], ...]]
    """Array name -> for each index of that array as sent, the idempotency keys of the
    actions its element came from (a merged attribute object has several)."""
    attribute_objects: tuple[AttributeObject, ...] = ()
    """/users/track: the objects of ``attributes`` in order (for deltas)."""
    users: frozenset[str] = frozenset()
    """Keys of the Braze users this request writes (a later request sharing one waits)."""
    cleared_users: tuple[str, ...] = ()
    """User keys whose delta memory is void once this request succeeds (deleted/identified)."""

    @cached
    def encoded(self) -> bytes:
        """The body as compact UTF-8 JSON (what is sent)."""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @property
    def object_count(self) -> int:
        """Objects (or identifiers) in the body."""
        return sum(len(indexes) for indexes in self.origins.values())

    @property
    def keys(self) -> tuple[str, ...]:
        """Idempotency keys of the carried actions."""
        return tuple(item.idempotency_key for item in self.items)

    def keys_at(self, array: str, index: int) -> tuple[str, ...]:
        """Actions behind element ``index`` of ``array`` (empty if there is no such element)."""
        indexes = self.origins.get(array, ())
        return indexes[index] if 0 <= index < len(indexes) else ()


@dataclass
class Plan:
    """Requests to send, and the actions settled without sending (skipped or failed)."""

    requests: list[PlannedRequest] = field(default_factory=list)
    settled: list[ActionResult] = field(default_factory=list)


class _TrackBuilder:
    """A /users/track request being filled."""

    def __init__(self, mode: BatchMode) -> None:
        self.mode = mode
        self.attributes: list[AttributeObject] = []
        self.attribute_sizes: list[int] = []
        self.attribute_origins: list[list[str]] = []
        self.attribute_index: dict[str, int] = {}
        self.events: list[dict[str, Any]] = []
        self.event_origins: list[str] = []
        self.purchases: list[dict[str, Any]] = []
        self.purchase_origins: list[str] = []
        self.size = _BODY_OVERHEAD
        self.items: list[DeliveryItem] = []
        self.users: set[str] = set()

    @property
    def counts(self) -> tuple[int, int, int]:
        return len(self.attributes), len(self.events), len(self.purchases)

    @property
    def full(self) -> bool:
        counts = self.counts
        if self.mode.per_array:
            return all(c >= self.mode.limit for c in counts)
        return sum(counts) >= self.mode.limit

    def cost(self, objects: TrackObjects) -> tuple[int, AttributeObject | None, int] | None:
        """(new attribute objects, merged object or None, bytes added), or None if it does
        not fit."""
        new_attrs, merged, added = 0, None, 0
        if objects.attributes is not None:
            index = self.attribute_index.get(objects.user.key)
            if index is None:
                new_attrs, added = 1, objects.attributes.size + 1
            else:
                merged = self.attributes[index].merged(objects.attributes)
                added = merged.size - self.attribute_sizes[index]
                if merged.size > MAX_OBJECT_BYTES:
                    return None
        added += objects.event_and_purchase_bytes
        counts = (
            len(self.attributes) + new_attrs,
            len(self.events) + len(objects.events),
            len(self.purchases) + len(objects.purchases),
        )
        if self.mode.per_array:
            fits = all(c <= self.mode.limit for c in counts)
        else:
            fits = sum(counts) <= self.mode.limit
        if not fits or self.size + added > MAX_BODY_BYTES:
            return None
        return new_attrs, merged, added

    def add(self, item: DeliveryItem, cost: tuple[int, Any, int]) -> None:
        objects = item.objects
        assert isinstance(objects, TrackObjects)
        key = item.idempotency_key
        new_attrs, merged, added = cost
        if objects.attributes is not None:
            user_key = objects.user.key
            if new_attrs:
                self.attribute_index[user_key] = len(self.attributes)
                self.attributes.append(objects.attributes)
                self.attribute_sizes.append(objects.attributes.size)
                self.attribute_origins.append([key])
            else:
                index = self.attribute_index[user_key]
                self.attributes[index] = merged
                self.attribute_sizes[index] = merged.size
                self.attribute_origins[index].append(key)
        self.events.extend(objects.events)
        self.event_origins.extend([key] * len(objects.events))
        self.purchases.extend(objects.purchases)
        self.purchase_origins.extend([key] * len(objects.purchases))
        self.size += added
        self.items.append(item)
        self.users.add(objects.user.key)

    def build(self, connector_id: str) -> PlannedRequest:
        return track_request(
            connector_id,
            self.items,
            self.attributes,
            [tuple(o) for o in self.attribute_origins],
            self.events,
            self.event_origins,
            self.purchases,
            self.purchase_origins,
        )


def track_request(
    connector_id: str,
    items: Sequence[DeliveryItem],
    attributes: Sequence[AttributeObject],
    attribute_origins: Sequence[tuple[str, ...]],
    events: Sequence[dict[str, Any]],
    event_origins: Sequence[str],
    purchases: Sequence[dict[str, Any]],
    purchase_origins: Sequence[str],
) -> PlannedRequest:
    """Assemble a /users/track request (empty arrays are left out of the body)."""
    body: dict[str, Any] = {}
    if attributes:
        body["attributes"] = [a.to_json() for a in attributes]
    if events:
        body["events"] = list(events)
    if purchases:
        body["purchases"] = list(purchases)
    origins: dict[str, tuple[tuple[str, ...], ...]] = {
        "attributes": tuple(attribute_origins),
        "events": tuple((k,) for k in event_origins),
        "purchases": tuple((k,) for k in purchase_origins),
    }
    return PlannedRequest(
        connector_id=connector_id,
        endpoint=Endpoint.TRACK,
        items=tuple(items),
        body=body,
        origins={name: value for name, value in origins.items() if value},
        attribute_objects=tuple(attributes),
        users=frozenset(
            item.objects.user.key for item in items if isinstance(item.objects, TrackObjects)
        ),
    )


def unfit_reason(objects: TrackObjects, mode: BatchMode) -> str | None:
    """Why an action can never be sent, or None."""
    for array, index, size in objects.sizes:
        if size > MAX_OBJECT_BYTES:
            where = "the attributes object" if array == "attributes" else f"{array}[{index}]"
            return (
                f"{where} is {size} bytes as JSON; Braze accepts objects of at most "
                f"{MAX_OBJECT_BYTES} bytes"
            )
    counts = (objects.attributes is not None, len(objects.events), len(objects.purchases))
    if mode.per_array and max(counts) > mode.limit:
        return (
            f"the action has {max(counts)} objects in one array; a Braze request takes at most "
            f"{mode.limit} per array ({mode.value})"
        )
    if not mode.per_array and sum(counts) > mode.limit:
        return (
            f"the action has {sum(counts)} objects; a Braze request takes at most {mode.limit} "
            f"({mode.value}) and one action's objects are never split"
        )
    total = _BODY_OVERHEAD + sum(size + 1 for _, _, size in objects.sizes)
    if total > MAX_BODY_BYTES:
        return f"the action needs {total} bytes; a Braze request body is at most {MAX_BODY_BYTES}"
    return None


def _plan_track(connector: BrazeConnector, items: Sequence[DeliveryItem], plan: Plan) -> None:
    builders: list[_TrackBuilder] = []
    latest: dict[str, int] = {}  # user key -> index of the builder holding its latest action
    first_open = 0  # builders before this one are full
    for item in items:
        objects = item.objects
        assert isinstance(objects, TrackObjects)
        if objects.is_empty:
            plan.settled.append(skipped(item.idempotency_key, "nothing to send"))
            continue
        reason = unfit_reason(objects, connector.batch_mode)
        if reason is not None:
            plan.settled.append(failed(item.idempotency_key, reason))
            continue
        user_key = objects.user.key
        start = max(first_open, latest.get(user_key, 0))
        for index in range(start, len(builders)):
            cost = builders[index].cost(objects)
            if cost is not None:
                builders[index].add(item, cost)
                break
        else:
            builders.append(_TrackBuilder(connector.batch_mode))
            index = len(builders) - 1
            cost = builders[index].cost(objects)
            assert cost is not None  # unfit_reason guarantees an empty request takes it
            builders[index].add(item, cost)
        latest[user_key] = index
        while first_open < len(builders) and builders[first_open].full:
            first_open += 1
    plan.requests.extend(b.build(connector.id) for b in builders)


class _IdBuilder:
    """A /users/delete or /users/identify request being filled (one array)."""

    def __init__(self, array: str) -> None:
        self.array = array
        self.entries: list[Any] = []
        self.origins: list[list[str]] = []
        self.positions: dict[str, int] = {}
        self.items: list[DeliveryItem] = []
        self.users: set[str] = set()

    def accepts(self, token: str) -> bool:
        return token in self.positions or len(self.entries) < MAX_IDS_PER_REQUEST

    def add(self, item: DeliveryItem, entry: Any, token: str, users: tuple[str, ...]) -> None:
        if token in self.positions:  # the same identifier twice: one entry serves both
            self.origins[self.positions[token]].append(item.idempotency_key)
        else:
            self.positions[token] = len(self.entries)
            self.entries.append(entry)
            self.origins.append([item.idempotency_key])
        self.items.append(item)
        self.users.update(users)

    def build(self, connector: BrazeConnector, endpoint: Endpoint) -> PlannedRequest:
        body: dict[str, Any] = {self.array: list(self.entries)}
        if endpoint is Endpoint.IDENTIFY:
            body["merge_behavior"] = connector.identify_merge_behavior
        if endpoint in (Endpoint.MERGE, Endpoint.ALIAS_NEW):
            # Merges: the delta memory of merged users moves to the kept users
            # (deltas.record_merges). New aliases void no memory: they only add a user.
            return PlannedRequest(
                connector_id=connector.id,
                endpoint=endpoint,
                items=tuple(self.items),
                body=body,
                origins={self.array: tuple(tuple(o) for o in self.origins)},
                users=frozenset(self.users),
            )
        return PlannedRequest(
            connector_id=connector.id,
            endpoint=endpoint,
            items=tuple(self.items),
            body=body,
            origins={self.array: tuple(tuple(o) for o in self.origins)},
            users=frozenset(self.users),
            cleared_users=tuple(sorted(self.users)),
        )


def _plan_ids(
    connector: BrazeConnector, endpoint: Endpoint, items: Sequence[DeliveryItem], plan: Plan
) -> None:
    """/users/delete (one identifier kind per request), /users/identify, /users/merge and
    /users/alias/new: 50 per request.

    The same identifier twice in a batch becomes one entry serving both actions.
    """
    builders: dict[str, list[_IdBuilder]] = {}
    home: dict[str, _IdBuilder] = {}  # entry token -> builder holding it
    for item in items:
        objects = item.objects
        assert isinstance(objects, DeleteObject | IdentifyObject | MergeObject | AliasObject)
        if isinstance(objects, DeleteObject):
            array = objects.array
        elif isinstance(objects, MergeObject):
            array = "merge_updates"
        elif isinstance(objects, AliasObject):
            array = "user_aliases"
        else:
            array = "aliases_to_identify"
        entry = objects.entry()
        token = json.dumps([array, entry], sort_keys=True)
        builder = home.get(token)
        if builder is None:
            chain = builders.setdefault(array, [])
            if not chain or not chain[-1].accepts(token):
                chain.append(_IdBuilder(array))
            builder = home[token] = chain[-1]
        builder.add(item, entry, token, _users_of(objects))
    for chain in builders.values():
        plan.requests.extend(b.build(connector, endpoint) for b in chain)


def _users_of(objects: BrazeObjects) -> tuple[str, ...]:
    if isinstance(objects, IdentifyObject):
        # Identify merges the alias profile into the external_id's: both users change.
        return objects.alias.key, f"external_id:{objects.external_id}"
    if isinstance(objects, MergeObject):
        return objects.to_merge.key, objects.to_keep.key
    if isinstance(objects, AliasObject):
        if objects.external_id:
            return objects.alias.key, f"external_id:{objects.external_id}"
        return (objects.alias.key,)
    return (objects.user.key,)


#: Send order of the endpoints within one plan (see plan_requests).
#: New aliases go first: an identify or a track of the alias in the same batch then finds the
#: alias-only user. Merges go after tracks: a kept user written in the same batch then exists.
_PHASES = {
    Endpoint.ALIAS_NEW: 0,
    Endpoint.IDENTIFY: 1,
    Endpoint.TRACK: 2,
    Endpoint.MERGE: 3,
    Endpoint.DELETE: 4,
}
DEFER_REASON = (
    "deferred to the next batch: an earlier action for the same Braze user goes to another "
    "endpoint and must be sent first"
)


def plan_requests(connector: BrazeConnector, items: Sequence[DeliveryItem]) -> Plan:
    """Pack ``items`` (in arrival order) into Braze requests.

    Requests come out in the order they must be sent: /users/alias/new first (an identify or
    a track of a new alias then finds its user), /users/identify next (a track for the
    newly identified external_id then finds the merged profile), then /users/track, then
    /users/merge, then /users/delete; within an endpoint, in arrival order. An action for a
    Braze user that arrives *after* one of that user's actions for a later phase (e.g. a
    track after a delete) would overtake it, so it (and every later action of that user) is
    deferred: RETRY with
    ``retry_after_s=0``, to go out in the next batch.

    Returns:
        The requests, and the actions settled without a request: SKIPPED when an action has
        nothing to send, FAILED when it can never fit a request, RETRY when deferred.
    """
    plan = Plan()
    by_endpoint: dict[Endpoint, list[DeliveryItem]] = {e: [] for e in Endpoint}
    reached: dict[str, int] = {}  # user key -> latest phase planned for that user
    blocked: set[str] = set()
    for item in items:
        objects = item.objects
        phase = _PHASES[objects.endpoint]
        users = _users_of(objects)
        if any(u in blocked or reached.get(u, phase) > phase for u in users):
            blocked.update(users)
            plan.settled.append(retry(item.idempotency_key, DEFER_REASON, after=0.0))
            continue
        for user in users:
            reached[user] = phase
        by_endpoint[objects.endpoint].append(item)
    _plan_ids(connector, Endpoint.ALIAS_NEW, by_endpoint[Endpoint.ALIAS_NEW], plan)
    _plan_ids(connector, Endpoint.IDENTIFY, by_endpoint[Endpoint.IDENTIFY], plan)
    _plan_track(connector, by_endpoint[Endpoint.TRACK], plan)
    _plan_ids(connector, Endpoint.MERGE, by_endpoint[Endpoint.MERGE], plan)
    _plan_ids(connector, Endpoint.DELETE, by_endpoint[Endpoint.DELETE], plan)
    return plan
