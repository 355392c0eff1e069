"""What intake accepts is deliverable (issue 8): every action ``SubmitActions`` accepts reaches
the strict Braze sandbox and passes its validation; what Braze would refuse is refused at
intake with the field's path.

The property test generates actions of every payload kind, mostly well-formed with a share of
values on or over Braze's limits, submits each through the real intake (``ActionStore``, the
code behind ``SubmitActions``) to a real Redis, lets a real worker deliver to the sandbox over
HTTP, and checks that every accepted action ends DELIVERED and that the sandbox answered every
request without an error. Deterministic (derandomized) and bounded for a loaded 2-core box.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import TypeVar

import pytest
import pytest_asyncio
from google.protobuf import struct_pb2, timestamp_pb2
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from braze_sandbox import BrazeSandbox
from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2
from dispatch_service.braze import BrazeConnector
from dispatch_service.braze.rules import MAX_STRING_LENGTH
from dispatch_service.queue import ActionStore
from dispatch_service.worker import DispatchWorker
from service_common.errors import InvalidArgument
from tests.dispatch.conftest import PARTITIONS, WorkerFactory, connector_for
from tests.dispatch.helpers import CONNECTOR, track_action
from tests.harness import eventually

DELIVERED = action_pb2.ACTION_STATE_DELIVERED
SKIPPED = action_pb2.ACTION_STATE_SKIPPED
FINAL = {DELIVERED, SKIPPED, action_pb2.ACTION_STATE_FAILED}

_keys = itertools.count()
_T = TypeVar("_T")


# --- strategies ----------------------------------------------------------------------------
# Each part is well-formed most of the time and on or over a Braze limit sometimes, so that
# whole actions are accepted often enough to exercise delivery and refused often enough to
# exercise intake.


def _mostly(
    good: st.SearchStrategy[_T], bad: st.SearchStrategy[_T], odds: int = 6
) -> st.SearchStrategy[_T]:
    """``good`` about ``odds`` times as often as ``bad``. (``one_of`` cannot weigh: it drops
    repeated branches. Hypothesis favours boundary integers, so ``bad`` is not 0 or ``odds``.)"""
    return st.integers(0, odds).flatmap(lambda i: bad if i == 1 else good)


# Short text of any characters, and text right at or just past Braze's 255-character limit.
_edge = st.integers(MAX_STRING_LENGTH - 1, MAX_STRING_LENGTH + 2).map(lambda n: "s" * n)
_text = _mostly(st.text(max_size=12), _edge)
_word = st.text(alphabet="abcdefghij_-", min_size=1, max_size=10)

#: Standard fields (format rules), identifiers and flags, and names Braze would mangle.
_SPECIAL_NAMES = [
    "email", "phone", "gender", "dob", "email_subscribe", "push_subscribe", "current_location",
    "email_open_tracking_disabled", "external_id", "app_id", "$price", " padded", "",
]  # fmt: skip
_names = _mostly(
    st.one_of(st.sampled_from(["tier", "score", "tags", "first_name"]), _word),
    st.one_of(
        st.sampled_from(_SPECIAL_NAMES),
        st.text(min_size=1, max_size=10),
        _edge,
    ),
    odds=3,
)
_numbers = _mostly(
    st.one_of(st.integers(-1000, 1000).map(float), st.floats(-1e6, 1e6)),
    st.floats(allow_nan=True, allow_infinity=True),
)


def _stamps() -> st.SearchStrategy[timestamp_pb2.Timestamp]:
    seconds = _mostly(
        st.integers(1_600_000_000, 1_900_000_000), st.integers(-62_135_596_900, 253_402_300_900)
    )
    nanos = _mostly(st.integers(0, 999_999_999), st.integers(-1, 1_000_000_000))
    return st.builds(lambda s, n: timestamp_pb2.Timestamp(seconds=s, nanos=n), seconds, nanos)


def _values() -> st.SearchStrategy[value_pb2.Value]:
    good = st.one_of(
        st.just(value_pb2.Value(null_value=struct_pb2.NULL_VALUE)),
        _text.map(lambda t: value_pb2.Value(string_value=t)),
        st.sampled_from(["M", "x", "1990-05-17", "opted_in", "a@b.co", "+15555550100"]).map(
            lambda t: value_pb2.Value(string_value=t)
        ),
        _numbers.map(lambda n: value_pb2.Value(number_value=n)),
        st.booleans().map(lambda b: value_pb2.Value(bool_value=b)),
        _stamps().map(lambda t: value_pb2.Value(timestamp_value=t)),
        st.lists(_text, max_size=4).map(
            lambda xs: value_pb2.Value(string_list=value_pb2.StringList(values=xs))
        ),
        st.lists(_numbers, max_size=3).map(
            lambda xs: value_pb2.Value(number_list=value_pb2.NumberList(values=xs))
        ),
        st.lists(st.booleans(), max_size=3).map(
            lambda xs: value_pb2.Value(bool_list=value_pb2.BoolList(values=xs))
        ),
    )
    return _mostly(good, st.just(value_pb2.Value()), odds=20)  # rarely unset


@st.composite
def _attributes(draw: st.DrawFn) -> action_pb2.Attribute:
    attribute = action_pb2.Attribute(name=draw(_names))
    operation = draw(st.sampled_from(["set", "set", "set", "increment", "add", "remove"]))
    if operation == "set":
        attribute.set.CopyFrom(draw(_values()))
    elif operation == "increment":
        attribute.increment = draw(_mostly(st.integers(-5, 5).map(float), _numbers, odds=3))
    else:
        items = draw(_mostly(st.lists(_text, min_size=1, max_size=3), st.just([])))
        getattr(attribute, operation).values.extend(items)
    return attribute


_property_names = _mostly(
    st.one_of(st.sampled_from(["sku", "n"]), _word),
    st.one_of(st.sampled_from(["time", "event_name", "$x", ""]), st.text(max_size=8), _edge),
    odds=4,
)
_properties = st.dictionaries(_property_names, _values(), max_size=3)

_events = st.builds(
    lambda name, stamp, props: action_pb2.TrackEvent(name=name, time=stamp, properties=props),
    _mostly(st.one_of(st.just("viewed"), _word), st.one_of(st.sampled_from([" ", ""]), _text)),
    st.one_of(st.none(), _stamps()),
    _properties,
)
_purchases = st.builds(
    lambda product, currency, price, quantity, props: action_pb2.Purchase(
        product_id=product, currency=currency, price=price, quantity=quantity, properties=props
    ),
    _mostly(st.just("sku-1"), _text),
    _mostly(st.sampled_from(["USD", "EUR"]), st.sampled_from(["usd", "EURO", ""])),
    _numbers,
    _mostly(st.integers(0, 100), st.sampled_from([-1, 101])),
    _properties,
)

_aliases = _mostly(
    st.builds(
        lambda name: action_pb2.UserAlias(alias_name=name, alias_label="crowd_id"),
        st.sampled_from(["anon-1", "anon-2"]),
    ),
    st.sampled_from(
        [action_pb2.UserAlias(alias_name="anon-1"), action_pb2.UserAlias(alias_label="crowd_id")]
    ),
)
_user_ids = _mostly(
    st.one_of(
        st.sampled_from(["u-1", "u-2"]).map(lambda e: action_pb2.UserIds(external_id=e)),
        st.text(min_size=1, max_size=10).map(lambda e: action_pb2.UserIds(external_id=e)),
        st.just(action_pb2.UserIds(braze_id="unknown-braze-id")),
        _aliases.map(lambda a: action_pb2.UserIds(user_alias=a)),
        st.just(action_pb2.UserIds(email="a@b.co")),
        st.just(action_pb2.UserIds(phone="+15555550100")),
    ),
    st.one_of(
        st.sampled_from(["anonymous", " NULL ", "0", "x" * 988]).map(
            lambda e: action_pb2.UserIds(external_id=e)
        ),
        st.sampled_from(["not-an-email", "x@y"]).map(lambda e: action_pb2.UserIds(email=e)),
        st.sampled_from(["12", "call me"]).map(lambda p: action_pb2.UserIds(phone=p)),
        st.just(action_pb2.UserIds()),
    ),
)


def _track() -> st.SearchStrategy[action_pb2.Action]:
    return st.builds(
        lambda user, attributes, events, purchases, only: action_pb2.Action(
            track_user=action_pb2.TrackUser(
                user=user,
                attributes=attributes,
                events=events,
                purchases=purchases,
                update_existing_only=only,
            )
        ),
        _user_ids,
        st.lists(_attributes(), min_size=1, max_size=3),
        st.lists(_events, max_size=2),
        st.lists(_purchases, max_size=1),
        st.booleans(),
    )


_audience = _mostly(
    st.one_of(st.sampled_from(["VIP", "Cart abandoners"]), _word),
    st.one_of(st.sampled_from([" ", "$vip", "VIP "]), _text),
)
_others = st.one_of(
    st.builds(
        lambda user, mode, audiences, left: action_pb2.Action(
            update_membership=action_pb2.UpdateMembership(
                user=user, mode=mode, audiences=audiences, left=left
            )
        ),
        _user_ids,
        st.integers(0, 3),
        st.lists(_audience, max_size=3),
        st.lists(_audience, max_size=2),
    ),
    _user_ids.map(lambda u: action_pb2.Action(delete_user=action_pb2.DeleteUser(user=u))),
    st.builds(
        lambda external_id, alias: action_pb2.Action(
            identify_user=action_pb2.IdentifyUser(external_id=external_id, user_alias=alias)
        ),
        _mostly(st.just("known-1"), st.one_of(st.sampled_from(["anonymous", ""]), _text)),
        _aliases,
    ),
)


@st.composite
def _actions(draw: st.DrawFn) -> action_pb2.Action:
    action = draw(st.one_of(_track(), _track(), _track(), _others))
    action.idempotency_key = f"prop-{next(_keys)}"
    action.connector_id = CONNECTOR
    action.visitor_id = "visitor-1"
    if draw(st.integers(0, 3)) == 0:
        action.fired_at.CopyFrom(draw(_stamps()))
    return action


# --- the property --------------------------------------------------------------------------


@pytest_asyncio.fixture
async def delivery(
    redis_client: object, sandbox: BrazeSandbox, start_worker: WorkerFactory
) -> AsyncIterator[tuple[ActionStore, DispatchWorker, BrazeConnector]]:
    # Deltas off: every accepted action is really sent (none ends SKIPPED as unchanged).
    connector = connector_for(sandbox, deltas=False)
    store = ActionStore(redis_client, PARTITIONS, {CONNECTOR: connector})  # type: ignore[arg-type]
    await store.ensure_queues()
    worker = await start_worker(connector=connector)
    yield store, worker, connector


@settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    # The sandbox, Redis and worker are shared by all examples on purpose (fresh keys each).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=st.lists(_actions(), min_size=1, max_size=4))
async def test_every_action_intake_accepts_is_delivered_and_valid_for_braze(
    delivery: tuple[ActionStore, DispatchWorker, BrazeConnector],
    sandbox: BrazeSandbox,
    actions: list[action_pb2.Action],
) -> None:
    store = delivery[0]
    seen = len(sandbox.requests)
    accepted: list[action_pb2.Action] = []
    for action in actions:
        try:
            await store.submit([action])
        except InvalidArgument as refused:
            # Refused whole, every problem named below the action.
            assert refused.violations
            assert all(v.field.startswith("actions[0]") for v in refused.violations)
            event("refused")
            continue
        event(f"accepted {action.WhichOneof('payload')}")
        accepted.append(action)
    if not accepted:
        return
    keys = [a.idempotency_key for a in accepted]
    statuses = await eventually(
        lambda: store.get_many(keys),
        lambda found: all(s is not None and s.state in FINAL for s in found),
        what="accepted actions to finish",
    )
    for action, status in zip(accepted, statuses, strict=True):
        assert status is not None
        # SKIPPED only for an action with nothing to write (an empty membership update).
        assert status.state in (DELIVERED, SKIPPED), (action, status.reason)
    for request in sandbox.requests[seen:]:
        assert request.status in (201, 202), (request.path, request.response)
        assert "errors" not in (request.response or {}), (request.body, request.response)


# --- regressions -----------------------------------------------------------------------------


async def test_a_300_character_attribute_string_is_refused_at_intake(store: ActionStore) -> None:
    action = track_action("long", attributes={"bio": "b" * 300})
    with pytest.raises(InvalidArgument) as caught:
        await store.submit([action])
    [violation] = caught.value.violations
    assert violation.field == "actions[0].track_user.attributes[0].set.string_value"
    assert "at most 255 characters" in violation.description
    assert await store.get("long") is None


async def test_a_255_character_attribute_string_is_delivered_whole(
    store: ActionStore, sandbox: BrazeSandbox, start_worker: WorkerFactory
) -> None:
    action = track_action("full", external_id="u-full", attributes={"bio": "b" * 255})
    await store.submit([action])
    await start_worker()
    status = await eventually(
        lambda: store.get("full"),
        lambda s: s is not None and s.state in FINAL,
        what="the action to finish",
    )
    assert status is not None and status.state == DELIVERED
    user = sandbox.get_user("u-full")
    assert user is not None and user.attributes["bio"] == "b" * 255
