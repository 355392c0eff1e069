"""Attribute deltas: remember what Braze last accepted per user, send only what changed.

Memory: one Redis hash per (connector, Braze user) (``keys.braze_user_state``), attribute name
-> canonical JSON of the value Braze accepted, with a TTL (``delta_ttl_days``) so that changes
made in Braze by other tools are eventually overwritten again.

Per batch:
1. :meth:`DeltaStore.load` - one pipelined round trip. For each user, a script returns the
   remembered values of the attributes the batch sets and, in the same step, *forgets* every
   attribute the batch is about to change (a different value, or an inc/add/remove). Should the
   later write-back be lost (crash, Redis error), the memory then lacks those attributes and they
   are simply sent again; it can never claim a value Braze does not hold.
2. :meth:`DeltaView.filter` - pure. Walks the actions in arrival order against the remembered
   values updated by earlier actions of the batch, drops every set whose value is already
   there, and reports actions left with nothing to send as SKIPPED. Events, purchases and
   inc/add/remove operations are never dropped.
3. :meth:`DeltaStore.record` - one round trip per sent request, only after Braze answered 2xx,
   only for attribute objects not named in ``errors``. Objects sent update-only are forgotten
   rather than recorded: Braze silently ignores them for unknown users, so recording them could
   later hide a value from a newly created profile. Deleted and identified users are forgotten.

"Sent" marker: every user a 2xx /users/track request wrote gets a marker key next to its
memory (:meth:`DeltaStore.sent_key`, same TTL), as does the external_id user of an identify;
deleting a user removes it. A MergeUsers action whose user to merge has no marker is SKIPPED
without a request: Braze cannot hold a user this service never sent (within the memory's TTL).

New aliases: after a 2xx /users/alias/new, every alias-only user it created gets the "sent"
marker and an "alias created" marker (:meth:`DeltaStore.created_key`); a later CreateAlias of
a marked alias is SKIPPED without a request (Braze would change nothing: the pair exists).
Deleting the user removes the marker.

Subscription groups: each group's state is remembered as its own field
(``$subscription_group:<id>``; no attribute name starts with ``$``), since each entry of
``subscription_groups`` sets one group and leaves the others: an unchanged group is dropped
from the array, a changed one is sent, and the array is left out when no group changed.

Merges: after a 2xx /users/merge, the kept user's memory becomes the union of both memories,
the kept user's own values winning, and the merged user's memory is deleted. That is Braze's
documented merge (the kept user keeps its attributes and gains those it lacked), so later
deltas neither resend what Braze now holds nor skip what it does not.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from dispatch_service.braze.attributes import (
    AttributeObject,
    AttributeOp,
    SetValue,
    SubscriptionStates,
)
from dispatch_service.braze.connector import BrazeConnector
from dispatch_service.braze.endpoints import Endpoint
from dispatch_service.braze.payload import AliasObject, IdentifyObject, MergeObject, TrackObjects
from dispatch_service.braze.planner import DeliveryItem, PlannedRequest
from dispatch_service.braze.results import ActionResult, skipped
from dispatch_service.braze.values import canonical_json
from dispatch_service.metrics import record_data_points_saved
from service_common import keys
from service_common.redis_toolkit.scripts import LuaScript, execute_with_scripts

log = logging.getLogger(__name__)

SKIP_REASON = "nothing to send: every attribute already holds this value in Braze"
NEVER_SENT_REASON = (
    "nothing to merge: this service never sent the user to merge to Braze, so Braze cannot hold it"
)
ALIAS_EXISTS_REASON = "nothing to create: this service already created the alias in Braze"
#: Delta-memory field of one subscription group's state (attribute names never start with $).
GROUP_FIELD_PREFIX = "$subscription_group:"


def group_field(group_id: str) -> str:
    """The memory field of a subscription group's state."""
    return GROUP_FIELD_PREFIX + group_id


def _memory_writes(name: str, op: AttributeOp) -> list[tuple[str, str | None]]:
    """(memory field, token of the value it will hold, or None when unknown) for one write."""
    if isinstance(op, SubscriptionStates):
        return [(group_field(group), canonical_json(state)) for group, state in op.states]
    if isinstance(op, SetValue):
        return [(name, op.token)]
    return [(name, None)]


# Lua: ``sliced(command, key, list)`` runs ``command key ...list`` in slices of 1000 items
# (unpack's stack is small; 1000 is even, so field/value pairs stay whole) and returns the
# replies' items in order.
_SLICED = """
local function sliced(command, key, list)
  local replies = {}
  for i = 1, #list, 1000 do
    local reply = redis.call(command, key, unpack(list, i, math.min(i + 999, #list)))
    if type(reply) == 'table' then
      for _, item in ipairs(reply) do replies[#replies + 1] = item end
    end
  end
  return replies
end
"""

# KEYS: the memory hashes of the users of one batch that share a hash tag (one slot).
# ARGV[1]: JSON, one [sets, changes] per key in KEYS order: sets is the flat list of the
# (name, token) pairs the batch sets, changes the names it changes by inc/add/remove (one JSON
# argument instead of one argument per string: redis-py encodes each argument in Python).
# Returns one string with a character per (name, token) pair, in that order: "1" if the memory
# holds exactly that token, else "0" (the remembered values themselves never travel back).
# For each key, deletes every field the batch will change: a set to a value other than the
# remembered one, or an operation.
_LOAD_AND_INVALIDATE = LuaScript(
    _SLICED
    + """
local users, out = cjson.decode(ARGV[1]), {}
for k = 1, #KEYS do
  local sets, changes = users[k][1], users[k][2]
  local names, seen = {}, {}
  for i = 1, #sets, 2 do
    local name = sets[i]
    if not seen[name] then seen[name] = true; names[#names + 1] = name end
  end
  local values, remembered = sliced('HMGET', KEYS[k], names), {}
  for i, name in ipairs(names) do remembered[name] = values[i] end
  local stale, marked = {}, {}
  for i = 1, #sets, 2 do
    local name, token = sets[i], sets[i + 1]
    local held = remembered[name]
    if held == token then
      out[#out + 1] = '1'
    else
      out[#out + 1] = '0'
      if held and not marked[name] then marked[name] = true; stale[#stale + 1] = name end
    end
  end
  for _, name in ipairs(changes) do stale[#stale + 1] = name end
  sliced('HDEL', KEYS[k], stale)
end
return table.concat(out)
"""
)

# KEYS: delta-memory keys sharing a hash tag. ARGV[1]: the TTL in seconds. ARGV[2]: JSON, one
# operation per key in KEYS order (a key may repeat): ["D"] deletes it; ["S"] sets it to 1 with
# the TTL (a marker); ["H", forget, remember] deletes the fields named in forget and sets the
# flat (field, token) pairs of remember (the hash then gets the TTL).
_RECORD = LuaScript(
    _SLICED
    + """
local ttl, ops = ARGV[1], cjson.decode(ARGV[2])
for k = 1, #KEYS do
  local op = ops[k]
  if op[1] == 'D' then
    redis.call('DEL', KEYS[k])
  elseif op[1] == 'S' then
    redis.call('SET', KEYS[k], 1, 'EX', ttl)
  else
    sliced('HDEL', KEYS[k], op[2])
    if #op[3] > 0 then
      sliced('HSET', KEYS[k], op[3])
      redis.call('EXPIRE', KEYS[k], ttl)
    end
  end
end
return #KEYS
"""
)


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes to pick its slot (its first ``{...}`` hash tag,
    or the whole key): keys with equal tags may share one script call."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


@dataclass
class _SlotCall:
    """One script call: the keys of one hash tag and, in the same order, their JSON entries."""

    keys: list[str] = field(default_factory=list)
    entries: list[list[Any]] = field(default_factory=list)
    users: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    """(user, its (field, token) sets), in ``keys`` order (loading only)."""

    def add(self, key: str, entry: list[Any]) -> None:
        """Append ``key`` and its entry."""
        self.keys.append(key)
        self.entries.append(entry)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


@dataclass
class DeltaView:
    """What Braze holds for the users of one batch, as far as the memory knows."""

    remembered: dict[str, dict[str, str]] = field(default_factory=dict)
    """User key -> attribute name -> canonical JSON of the value Braze accepted."""

    def filter(
        self, items: Sequence[DeliveryItem]
    ) -> tuple[list[DeliveryItem], list[ActionResult]]:
        """Drop sets Braze already holds; return the items left and the SKIPPED results."""
        state = {user: dict(values) for user, values in self.remembered.items()}
        kept: list[DeliveryItem] = []
        settled: list[ActionResult] = []
        for item in items:
            objects = item.objects
            if isinstance(objects, IdentifyObject):
                # The alias profile merges into the external_id's: neither memory holds.
                state[objects.alias.key] = {}
                state[f"external_id:{objects.external_id}"] = {}
            if isinstance(objects, MergeObject):
                state[objects.to_merge.key] = {}
            if not isinstance(objects, TrackObjects) or objects.attributes is None:
                kept.append(item)
                continue
            known = state.setdefault(objects.user.key, {})
            attributes = _filter_object(objects.attributes, known)
            if attributes is objects.attributes:
                kept.append(item)
                continue
            reduced = replace(objects, attributes=attributes if attributes.ops else None)
            record_data_points_saved(len(objects.attributes.ops) - len(attributes.ops))
            if reduced.is_empty:
                settled.append(skipped(item.idempotency_key, SKIP_REASON))
            else:
                kept.append(replace(item, objects=reduced))
        return kept, settled


def _filter_object(attributes: AttributeObject, known: dict[str, str]) -> AttributeObject:
    """``attributes`` without the sets ``known`` already holds; updates ``known``."""
    dropped: list[str] = []
    reduced = attributes
    for name, op in attributes.ops.items():
        if isinstance(op, SubscriptionStates):
            changed = tuple(
                (group, state)
                for group, state in op.states
                if known.get(group_field(group)) != canonical_json(state)
            )
            known.update((group_field(g), canonical_json(state)) for g, state in op.states)
            if not changed:
                dropped.append(name)
            elif len(changed) < len(op.states):
                reduced = reduced.replacing(name, SubscriptionStates(changed))
        elif isinstance(op, SetValue):
            token = op.token
            if known.get(name) == token:
                dropped.append(name)
            else:
                known[name] = token
        else:
            known.pop(name, None)  # the result of inc/add/remove is unknown here
    return reduced.without(dropped) if dropped else reduced


class DeltaStore:
    """Redis-backed delta memory of one connector."""

    def __init__(
        self,
        redis: Redis,
        connector: BrazeConnector,
        partitions: int = keys.DEFAULT_PARTITIONS,
    ) -> None:
        self._redis = redis
        self._connector = connector
        self._partitions = partitions
        self._ttl_s = connector.delta_ttl_days * 86_400

    @property
    def enabled(self) -> bool:
        """False when the connector turned deltas off (nothing is read, filtered or kept)."""
        return self._connector.deltas

    def key(self, user_key: str) -> str:
        """Redis key of a user's memory."""
        return keys.braze_user_state(self._connector.id, user_key, self._partitions)

    def sent_key(self, user_key: str) -> str:
        """Redis key marking that this service sent the user to Braze (a delta-memory key of
        the pseudo user ``sent:<user key>``: no real user key starts with ``sent:``)."""
        return keys.braze_user_state(self._connector.id, f"sent:{user_key}", self._partitions)

    def created_key(self, user_key: str) -> str:
        """Redis key marking that this service created the alias user with /users/alias/new
        (the pseudo user ``alias:<user key>``)."""
        return keys.braze_user_state(self._connector.id, f"alias:{user_key}", self._partitions)

    async def load(self, items: Sequence[DeliveryItem]) -> DeltaView:
        """Remembered values for the attributes ``items`` set (one round trip).

        Also forgets the attributes the batch is about to change (see the module doc). If
        Redis fails, the view is empty: everything is sent, which costs data points but never
        loses an update.
        """
        if not self.enabled:
            return DeltaView()
        writes = _writes_by_user(items)
        if not writes:
            return DeltaView()

        calls: dict[str, _SlotCall] = {}
        for user, (sets, changes) in writes.items():
            key = self.key(user)
            call = calls.setdefault(hash_tag(key), _SlotCall())
            call.add(key, [[part for pair in sets for part in pair], changes])
            call.users.append((user, sets))

        def fill(pipe: Pipeline) -> None:
            for call in calls.values():
                _LOAD_AND_INVALIDATE.queue(pipe, call.keys, [orjson.dumps(call.entries)])

        try:
            replies = await execute_with_scripts(self._redis, fill)
        except RedisError as exc:
            log.warning("delta memory unavailable, sending every attribute: %s", exc)
            return DeltaView()
        view = DeltaView()
        for call, reply in zip(calls.values(), replies, strict=True):
            held = iter(_text(reply))
            for user, sets in call.users:
                # Only the tokens the memory holds matter to the filter: a remembered value
                # equal to none of the batch's tokens compares like no value at all.
                view.remembered[user] = {name: token for name, token in sets if next(held) == "1"}
        return view

    async def never_sent(self, items: Sequence[DeliveryItem]) -> list[ActionResult]:
        """SKIPPED results for the merges whose user to merge this service never sent, and
        for the new aliases this service already created.

        With deltas off, or when Redis fails, nothing is skipped (the request is sent).
        """
        if not self.enabled:
            return []
        checks: list[tuple[DeliveryItem, str, bool, str]] = []  # item, key, skip if set, why
        for item in items:
            if (user := _user_to_merge(item)) is not None:
                checks.append((item, self.sent_key(user), False, NEVER_SENT_REASON))
            elif isinstance(item.objects, AliasObject) and not item.objects.external_id:
                created = self.created_key(item.objects.alias.key)
                checks.append((item, created, True, ALIAS_EXISTS_REASON))
        if not checks:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for _, key, _, _ in checks:
            pipe.exists(key)
        try:
            found = await pipe.execute()
        except RedisError as exc:
            log.warning("delta memory unavailable, sending every merge and alias: %s", exc)
            return []
        return [
            skipped(item.idempotency_key, reason)
            for (item, _, skip_if_set, reason), exists in zip(checks, found, strict=True)
            if bool(exists) == skip_if_set
        ]

    async def record_merges(self, request: PlannedRequest) -> None:
        """After a 2xx /users/merge: the kept users' memory gains what the merged users'
        held (kept values win, as in Braze) and the merged users' memory goes."""
        for item in request.items:
            objects = item.objects
            if not isinstance(objects, MergeObject):
                continue
            merged_key, kept_key = self.key(objects.to_merge.key), self.key(objects.to_keep.key)
            try:
                held = await self._redis.hgetall(merged_key)
                if held:
                    pipe = self._redis.pipeline(transaction=False)
                    for name, token in held.items():
                        pipe.hsetnx(kept_key, name, token)
                    pipe.expire(kept_key, self._ttl_s)
                    await pipe.execute()
                # One key per DELETE: the keys live in different slots on a Redis Cluster.
                await self._redis.delete(merged_key)
                await self._redis.delete(self.sent_key(objects.to_merge.key))
                await self._redis.set(self.sent_key(objects.to_keep.key), 1, ex=self._ttl_s)
            except RedisError as exc:
                log.warning("could not move delta memory of a merged user: %s", exc)

    async def record(
        self, request: PlannedRequest, rejected_attributes: Collection[int] = ()
    ) -> None:
        """Remember what Braze accepted from a 2xx ``request`` (one round trip).

        Args:
            request: The request as sent.
            rejected_attributes: Indexes of ``attributes`` Braze named in ``errors``.
        """
        if not self.enabled:
            return
        if request.endpoint is Endpoint.MERGE:
            await self.record_merges(request)
            return
        sent = sorted(request.users) if request.endpoint is Endpoint.TRACK else []
        if request.endpoint is Endpoint.IDENTIFY:
            sent = [u for u in request.users if u.startswith("external_id:")]
        created = _alias_only_users(request) if request.endpoint is Endpoint.ALIAS_NEW else []
        sent.extend(created)
        cleared = list(request.cleared_users)
        updates: list[tuple[str, dict[str, str], list[str]]] = []
        for index, obj in enumerate(request.attribute_objects):
            if index in rejected_attributes:
                continue
            remember, forget = _accepted(obj)
            if remember or forget:
                updates.append((self.key(obj.user.key), remember, forget))
        if not cleared and not updates and not sent:
            return
        calls: dict[str, _SlotCall] = {}

        def add(key: str, *entry: Any) -> None:
            calls.setdefault(hash_tag(key), _SlotCall()).add(key, list(entry))

        for user in cleared:
            add(self.key(user), "D")
            add(self.sent_key(user), "D")
            if request.endpoint is Endpoint.DELETE:
                add(self.created_key(user), "D")  # identified aliases still exist
        for user in sent:
            add(self.sent_key(user), "S")
        for user in created:
            add(self.created_key(user), "S")
        for key, remember, forget in updates:
            add(key, "H", forget, [part for pair in remember.items() for part in pair])

        def fill(pipe: Pipeline) -> None:
            for call in calls.values():
                _RECORD.queue(pipe, call.keys, [self._ttl_s, orjson.dumps(call.entries)])

        try:
            await execute_with_scripts(self._redis, fill)
        except RedisError as exc:
            # Safe: load() already removed every attribute this request changed.
            log.warning("could not record delta memory (values will be re-sent): %s", exc)


def _alias_only_users(request: PlannedRequest) -> list[str]:
    """Keys of the alias-only users a /users/alias/new request created (no external_id)."""
    return sorted(
        {
            item.objects.alias.key
            for item in request.items
            if isinstance(item.objects, AliasObject) and not item.objects.external_id
        }
    )


def _user_to_merge(item: DeliveryItem) -> str | None:
    objects = item.objects
    if isinstance(objects, MergeObject):
        return objects.to_merge.key
    if isinstance(objects, IdentifyObject) and objects.merged_from_alias:
        return objects.alias.key
    return None


def _accepted(obj: AttributeObject) -> tuple[dict[str, str], list[str]]:
    """(field -> token to remember, fields to forget) for an attribute object Braze accepted."""
    remember: dict[str, str] = {}
    forget: list[str] = []
    for name, op in obj.ops.items():
        if type(op) is SetValue and not obj.update_existing_only:
            remember[name] = op.token  # the common case, without the pair list
            continue
        for field_name, token in _memory_writes(name, op):
            if token is None or obj.update_existing_only:
                forget.append(field_name)
            else:
                remember[field_name] = token
    return remember, forget


def _writes_by_user(
    items: Iterable[DeliveryItem],
) -> Mapping[str, tuple[list[tuple[str, str]], list[str]]]:
    """User key -> (every (field, token) set, in order; fields changed by operations)."""
    writes: dict[str, tuple[list[tuple[str, str]], list[str]]] = {}
    for item in items:
        objects = item.objects
        if not isinstance(objects, TrackObjects) or objects.attributes is None:
            continue
        sets, changes = writes.setdefault(objects.user.key, ([], []))
        for name, op in objects.attributes.ops.items():
            if type(op) is SetValue:
                sets.append((name, op.token))  # the common case, without the pair list
                continue
            for field_name, token in _memory_writes(name, op):
                if token is None:
                    changes.append(field_name)
                else:
                    sets.append((field_name, token))
    return writes
