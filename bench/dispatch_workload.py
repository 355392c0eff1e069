"""The dispatch benchmark's actions: Track User updates with mostly repeated attribute values.

Every user has ``attributes`` custom attributes. Version 0 of a user's update sets them all
(the "first sync": the state Braze already holds in a running system); each later version
changes exactly ``changed`` of them and repeats the others unchanged, so with 10 attributes
and 2 changes 80% of the values repeat the user's previous update.

One of the changed attributes is always ``last_order_id``, which holds the action's global
sequence number: it identifies, at the sandbox, which action an arriving object carries
(objects of one user merged in one request carry the latest one). The other changed
attribute rotates through the remaining ones.

Actions are submitted in rounds (version v of every user, users shuffled, then v + 1), so
one user's consecutive updates are a whole round apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2

SEQ_ATTRIBUTE = "last_order_id"
OTHER_ATTRIBUTES = (
    "tier",
    "city",
    "lifetime_value",
    "visits",
    "email_opt_in",
    "favorite_category",
    "score",
    "segment",
    "language",
    "loyalty_points",
    "plan",
    "last_channel",
)
_NUMBERS = frozenset({"lifetime_value", "visits", "score", "loyalty_points"})
_BOOLEANS = frozenset({"email_opt_in"})


@dataclass(frozen=True)
class PlannedAction:
    """One action and what identifies it at the sandbox."""

    seq: int
    external_id: str
    action: action_pb2.Action


def user_id(index: int) -> str:
    """The Braze external_id of user ``index``."""
    return f"bench-user-{index:06d}"


def seq_of(value: object) -> int | None:
    """The sequence number in a ``last_order_id`` value, or ``None``."""
    if isinstance(value, str) and value.startswith("o"):
        try:
            return int(value[1:])
        except ValueError:
            return None
    return None


def _value(name: str, user: int, changes: int) -> value_pb2.Value:
    if name in _NUMBERS:
        return value_pb2.Value(number_value=float(user % 1000 + 10 * changes))
    if name in _BOOLEANS:
        return value_pb2.Value(bool_value=(user + changes) % 2 == 0)
    return value_pb2.Value(string_value=f"{name}-{user % 97}-{changes}")


class UpdatePlan:
    """Builds each user's successive updates (see the module docstring)."""

    def __init__(self, *, users: int, attributes: int, changed: int, connector_id: str) -> None:
        if not 1 <= changed <= attributes <= len(OTHER_ATTRIBUTES) + 1:
            raise ValueError("need 1 <= changed <= attributes <= 13")
        self.users = users
        self.names = (SEQ_ATTRIBUTE, *OTHER_ATTRIBUTES[: attributes - 1])
        self.changed = changed
        self.connector_id = connector_id
        # changes[user][attribute index]: how often that attribute has changed so far.
        self._changes = [[0] * len(self.names) for _ in range(users)]
        self._version = [0] * users

    def _update(self, user: int, seq: int) -> PlannedAction:
        version = self._version[user]
        counts = self._changes[user]
        if version > 0:
            # Besides last_order_id, changed - 1 attributes rotate through the others.
            others = len(self.names) - 1
            for k in range(self.changed - 1):
                counts[1 + (user + version * (self.changed - 1) + k) % others] += 1
        self._version[user] += 1
        external_id = user_id(user)
        track = action_pb2.TrackUser(user=action_pb2.UserIds(external_id=external_id))
        track.attributes.append(
            action_pb2.Attribute(name=SEQ_ATTRIBUTE, set=value_pb2.Value(string_value=f"o{seq}"))
        )
        for index, name in enumerate(self.names[1:], start=1):
            track.attributes.append(
                action_pb2.Attribute(name=name, set=_value(name, user, counts[index]))
            )
        action = action_pb2.Action(
            idempotency_key=f"{self.connector_id}-{external_id}-v{version}",
            connector_id=self.connector_id,
            visitor_id=external_id,
            action_id="bench_track_user",
            track_user=track,
        )
        return PlannedAction(seq, external_id, action)

    def round(self, first_seq: int, seed: int) -> list[PlannedAction]:
        """The next update of every user, users in a shuffled order."""
        order = list(range(self.users))
        random.Random(seed).shuffle(order)
        return [self._update(user, first_seq + n) for n, user in enumerate(order)]
