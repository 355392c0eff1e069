"""``python -m bench.lean_server``: the design floor of the profile service, for the ingest ratios.

What any stateful engine of this design must do per event, and nothing more: the same proto
and gRPC stack as the real profile service (``service_common.server.build_server``: grpc.aio,
the tracing, auth, error-mapping and request-decoding interceptors, health, reflection, the
Redis readiness gate, the same settings class and environment ``CROWD_PROFILE_*``), and

* ``TrackEvents``: one pipeline reads the profile of every visitor of the batch (``HMGET``
  of state and version), a trivial per-event update runs (a counter per event name and the
  last value of each event field become attributes), one pipeline writes every changed
  profile back with a compare-and-set script (version checked, state and TTL written), and
  the answer holds one `EventResult` per event with its changed attributes, or without them
  when the request's ``result_view`` is BASIC (as the real service, so that the bench's
  BASIC clients compare like for like);
* ``GetProfile``: one ``HMGET`` and the profile message built from the stored state.

No definitions, dedup, visits, audiences, outbox or trace. Keys are ``lean:{<visitor id>}``
(one hash tag per visitor, so the script is cluster-safe), so it can share the real service's
Redis without touching its keys. Every other method answers UNIMPLEMENTED.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any, cast

import grpc
import grpc.aio
import orjson
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis

from crowd.profile.v1 import event_pb2, profile_pb2, profile_service_pb2
from profile_service.api.scopes import METHOD_SCOPES, PROFILE_SERVICE
from profile_service.settings import ProfileSettings
from service_common.errors import FieldViolation, InvalidArgument, NotFound
from service_common.readiness import RedisReadiness
from service_common.redis import connect_settings_redis
from service_common.redis_toolkit.scripts import LuaScript, execute_with_scripts, load_scripts
from service_common.server import ManagedServer, ServerSpec, build_server, run_service

__all__ = ["LEAN_VERSION", "LeanProfiles", "create_lean_server", "lean_key"]

LEAN_VERSION = "lean"
"""The ``definitions_version`` of the lean server's results."""

RETENTION_MS = 30 * 24 * 3600 * 1000
MAX_ATTEMPTS = 5

# KEYS[1] the profile hash {s = state, v = version}; ARGV: expected version ("" = none yet),
# new version, state, TTL in ms. 1 if written, 0 if the version moved meanwhile.
_COMPARE_AND_SET = LuaScript(
    """
local current = redis.call('HGET', KEYS[1], 'v') or ''
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[3], 'v', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
""",
    name="lean_compare_and_set",
)

_versions = itertools.count()


def lean_key(visitor_id: str) -> str:
    """The profile hash of ``visitor_id`` (its own hash tag)."""
    return f"lean:{{{visitor_id}}}"


def _attribute_value(value: Any) -> event_pb2.AttributeValue:
    if isinstance(value, bool):
        return event_pb2.AttributeValue(bool_value=value)
    if isinstance(value, int | float):
        return event_pb2.AttributeValue(number_value=float(value))
    return event_pb2.AttributeValue(string_value=str(value))


def _plain(value: Any) -> Any:
    """An event field (``crowd.common.v1.Value``) as a JSON-able value."""
    kind = value.WhichOneof("kind")
    if kind in ("string_value", "number_value", "bool_value"):
        return getattr(value, kind)
    return None  # lists, times and nulls are not kept by the floor


def _apply(attributes: dict[str, Any], event: event_pb2.Event) -> list[str]:
    """The floor's per-event work: count the event, keep its fields; the changed ids."""
    changed: list[str] = []
    counter = f"{event.name}_count"
    attributes[counter] = attributes.get(counter, 0) + 1
    changed.append(counter)
    for field, value in event.data.items():
        plain = _plain(value)
        if plain is not None and attributes.get(field) != plain:
            attributes[field] = plain
            changed.append(field)
    return changed


class LeanProfiles:
    """The lean server's two operations on Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def prepare(self) -> None:
        """Load the script (start-up, once Redis answers)."""
        await load_scripts(self._redis, [_COMPARE_AND_SET])

    async def _read(self, visitor_ids: Sequence[str]) -> list[tuple[dict[str, Any] | None, str]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for visitor_id in visitor_ids:
                pipe.hmget(lean_key(visitor_id), ["s", "v"])
            replies = await pipe.execute()
        out: list[tuple[dict[str, Any] | None, str]] = []
        for state, version in replies:
            decoded = orjson.loads(state) if state is not None else None
            out.append((decoded, version.decode() if version is not None else ""))
        return out

    async def track(
        self,
        events: Sequence[event_pb2.Event],
        view: event_pb2.EventResultView.ValueType = event_pb2.EVENT_RESULT_VIEW_FULL,
    ) -> list[event_pb2.EventResult]:
        """Apply ``events`` in order; one result per event (``view``: with or without
        the attribute changes)."""
        if not events:
            raise InvalidArgument([FieldViolation("events", "must hold at least one event")])
        for index, event in enumerate(events):
            if not event.visitor_id or not event.name:
                raise InvalidArgument(
                    [FieldViolation(f"events[{index}]", "needs a visitor_id and a name")]
                )
        results = [event_pb2.EventResult() for _ in events]
        pending = list(dict.fromkeys(event.visitor_id for event in events))
        for _ in range(MAX_ATTEMPTS):
            pending = await self._attempt(events, pending, results, view)
            if not pending:
                return results
        raise RuntimeError(f"{len(pending)} lean profiles kept conflicting")

    async def _attempt(
        self,
        events: Sequence[event_pb2.Event],
        visitor_ids: list[str],
        results: list[event_pb2.EventResult],
        view: event_pb2.EventResultView.ValueType,
    ) -> list[str]:
        """Read, update and compare-and-set ``visitor_ids``; those that conflicted."""
        loaded = await self._read(visitor_ids)
        wanted = set(visitor_ids)
        now_ms = int(time.time() * 1000)
        states: dict[str, dict[str, Any]] = {}
        versions: dict[str, str] = {}
        for visitor_id, (state, version) in zip(visitor_ids, loaded, strict=True):
            states[visitor_id] = state if state is not None else {"a": {}, "c": now_ms}
            versions[visitor_id] = version
        for index, event in enumerate(events):
            if event.visitor_id not in wanted:
                continue
            state = states[event.visitor_id]
            attributes = state["a"]
            new_visitor = not versions[event.visitor_id] and not attributes
            changed = _apply(attributes, event)
            result = results[index]
            result.Clear()
            result.index = index
            result.event_id = event.event_id
            result.profile_id = event.visitor_id
            result.new_visitor = new_visitor
            result.visit_started = new_visitor
            result.definitions_version = LEAN_VERSION
            if view == event_pb2.EVENT_RESULT_VIEW_BASIC:
                continue
            for attribute_id in changed:
                change = result.changed_attributes.add(attribute_id=attribute_id)
                change.value.CopyFrom(_attribute_value(attributes[attribute_id]))
            state["u"] = now_ms

        def fill(pipe: Any) -> None:
            for visitor_id in visitor_ids:
                _COMPARE_AND_SET.queue(
                    pipe,
                    [lean_key(visitor_id)],
                    [
                        versions[visitor_id],
                        f"{next(_versions):x}",
                        orjson.dumps(states[visitor_id]),
                        RETENTION_MS,
                    ],
                )

        written = await execute_with_scripts(self._redis, fill)
        return [v for v, ok in zip(visitor_ids, written, strict=True) if not int(ok)]

    async def profile(self, visitor_id: str) -> profile_pb2.Profile:
        """The stored profile of ``visitor_id``."""
        ((state, _),) = await self._read([visitor_id])
        if state is None:
            raise NotFound(f"no profile for visitor {visitor_id!r}", reason="PROFILE_NOT_FOUND")
        profile = profile_pb2.Profile(profile_id=visitor_id, visitor_ids=[visitor_id])
        for attribute_id, value in state["a"].items():
            profile.attributes[attribute_id].CopyFrom(_attribute_value(value))
        profile.created_at.FromMilliseconds(state["c"])
        profile.updated_at.FromMilliseconds(state.get("u", state["c"]))
        return profile


def _register(profiles: LeanProfiles, server: grpc.aio.Server) -> None:
    async def track_events(
        request: profile_service_pb2.TrackEventsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> profile_service_pb2.TrackEventsResponse:
        results = await profiles.track(request.events, request.result_view)
        return profile_service_pb2.TrackEventsResponse(results=results)

    async def get_profile(
        request: profile_service_pb2.GetProfileRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> profile_service_pb2.GetProfileResponse:
        visitor_id = request.visitor.visitor_id
        if not visitor_id:
            raise InvalidArgument([FieldViolation("visitor.visitor_id", "must be set")])
        return profile_service_pb2.GetProfileResponse(profile=await profiles.profile(visitor_id))

    handler = grpc.method_handlers_generic_handler(
        PROFILE_SERVICE,
        {
            "TrackEvents": grpc.unary_unary_rpc_method_handler(
                track_events,
                request_deserializer=profile_service_pb2.TrackEventsRequest.FromString,
                response_serializer=profile_service_pb2.TrackEventsResponse.SerializeToString,
            ),
            "GetProfile": grpc.unary_unary_rpc_method_handler(
                get_profile,
                request_deserializer=profile_service_pb2.GetProfileRequest.FromString,
                response_serializer=profile_service_pb2.GetProfileResponse.SerializeToString,
            ),
        },
    )
    server.add_generic_rpc_handlers((handler,))


async def create_lean_server(
    settings: ProfileSettings, *, tracer_provider: TracerProvider | None = None
) -> ManagedServer:
    """Build the lean server (not started); it reports SERVING once Redis answers."""
    redis = cast(Redis, connect_settings_redis(settings))
    profiles = LeanProfiles(redis)
    readiness = RedisReadiness.for_settings(redis, settings, [profiles.prepare])
    return build_server(
        settings,
        ServerSpec(
            service_names=[PROFILE_SERVICE],
            register=lambda server: _register(profiles, server),
            method_scopes=METHOD_SCOPES,
            on_shutdown=[redis.aclose],
            readiness=readiness,
        ),
        tracer_provider=tracer_provider,
    )


def main() -> None:
    """Serve until SIGTERM/SIGINT."""
    run_service(ProfileSettings, create_lean_server, prog="python -m bench.lean_server")


if __name__ == "__main__":
    main()
