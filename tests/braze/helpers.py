"""Helpers of the Braze delivery tests: action builders and constants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.struct_pb2 import NULL_VALUE
from google.protobuf.timestamp_pb2 import Timestamp

from crowd.common.v1.value_pb2 import StringList, TraceContext, Value
from crowd.dispatch.v1.action_pb2 import (
    Action,
    Attribute,
    DeleteUser,
    IdentifyUser,
    Purchase,
    TrackEvent,
    TrackUser,
    UpdateMembership,
    UserAlias,
    UserIds,
)

#: A key that looks like nothing else in the tests, so a leak is easy to grep for.
API_KEY = "sk-live-7f3c9a1e5b2d4c6a8e0f1a2b3c4d5e6f"
CONNECTOR_ID = "braze-test"
FIRED_AT = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def value(raw: Any) -> Value:
    """A crowd Value from a Python value (str, bool, int/float, list[str], datetime, None)."""
    if raw is None:
        return Value(null_value=NULL_VALUE)
    if isinstance(raw, bool):
        return Value(bool_value=raw)
    if isinstance(raw, int | float):
        return Value(number_value=float(raw))
    if isinstance(raw, str):
        return Value(string_value=raw)
    if isinstance(raw, datetime):
        stamp = Timestamp()
        stamp.FromDatetime(raw)
        return Value(timestamp_value=stamp)
    if isinstance(raw, list):
        return Value(string_list=StringList(values=raw))
    raise TypeError(raw)


def stamp(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


def track_action(
    external_id: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    events: Sequence[str] = (),
    purchases: int = 0,
    traceparent: str = "",
    update_existing_only: bool = False,
    operations: Sequence[Attribute] = (),
) -> Action:
    """A Track User action for ``external_id`` setting ``attributes``."""
    attrs = [Attribute(name=k, set=value(v)) for k, v in (attributes or {}).items()]
    attrs.extend(operations)
    return Action(
        connector_id=CONNECTOR_ID,
        visitor_id=f"v-{external_id}",
        fired_at=stamp(FIRED_AT),
        trace_context=TraceContext(traceparent=traceparent),
        track_user=TrackUser(
            user=UserIds(external_id=external_id),
            attributes=attrs,
            events=[TrackEvent(name=name) for name in events],
            purchases=[
                Purchase(product_id=f"sku-{i}", currency="EUR", price=9.5) for i in range(purchases)
            ],
            update_existing_only=update_existing_only,
        ),
    )


def membership_action(
    external_id: str, audiences: Sequence[str], left: Sequence[str] = ()
) -> Action:
    return Action(
        connector_id=CONNECTOR_ID,
        update_membership=UpdateMembership(
            user=UserIds(external_id=external_id), audiences=audiences, left=left
        ),
    )


def delete_action(ids: UserIds) -> Action:
    return Action(connector_id=CONNECTOR_ID, delete_user=DeleteUser(user=ids))


def identify_action(external_id: str, alias_name: str, alias_label: str = "crowd_id") -> Action:
    return Action(
        connector_id=CONNECTOR_ID,
        identify_user=IdentifyUser(
            external_id=external_id,
            user_alias=UserAlias(alias_name=alias_name, alias_label=alias_label),
        ),
    )
