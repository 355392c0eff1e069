"""service_common.server end to end: real grpc.aio servers on port 0, real channels, no mocks.

The service under test is a tiny generic-handler service over ``StringValue`` with one method
per RPC kind, registered through ``ServerSpec`` like the real services will be.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic_settings import SettingsConfigDict

from service_common import (
    FieldViolation,
    InvalidArgument,
    ManagedServer,
    ServerSpec,
    ServiceSettings,
    auth_metadata,
    build_server,
    create_channel,
    current_principal,
    decode_error,
    key_id,
    serve_until_signal,
    setup_tracing,
)
from service_common.server import _bounded

pytestmark = pytest.mark.asyncio

SERVICE = "test.echo.v1.EchoService"
ECHO_KEY = "echo-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
UNKNOWN_KEY = "nobody-key-0123456789abcdef"

StringValue = wrappers_pb2.StringValue


class EchoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CROWD_ECHOTEST_")


def _m(name: str) -> str:
    return f"/{SERVICE}/{name}"


@dataclass
class Echo:
    """Servicer behaviour, with hooks the tests use to hold an RPC in flight."""

    slow_started: asyncio.Event = field(default_factory=asyncio.Event)
    slow_release: asyncio.Event = field(default_factory=asyncio.Event)
    shutdown_calls: list[str] = field(default_factory=list)

    async def _answer(self, text: str) -> str:
        if text == "invalid":
            raise InvalidArgument(
                [
                    FieldViolation("value", "must not be 'invalid'"),
                    FieldViolation("nested.field", "is required"),
                ],
                reason="ECHO_INVALID",
            )
        if text == "boom":
            # An unexpected failure whose message carries a secret: it must not leak anywhere.
            raise RuntimeError(f"exploded while holding {ECHO_KEY}")
        if text == "whoami":
            principal = current_principal()
            return principal.key_id if principal else "anonymous"
        if text == "slow":
            self.slow_started.set()
            await self.slow_release.wait()
            return "slow done"
        return text

    async def echo(self, request: StringValue, context: Any) -> StringValue:
        return StringValue(value=await self._answer(request.value))

    async def split(self, request: StringValue, context: Any) -> AsyncIterator[StringValue]:
        for part in request.value.split(","):
            yield StringValue(value=await self._answer(part))

    async def join(self, requests: AsyncIterator[StringValue], context: Any) -> StringValue:
        parts = [await self._answer(r.value) async for r in requests]
        return StringValue(value=",".join(parts))

    async def chat(self, requests: AsyncIterator[StringValue], context: Any) -> None:
        # Reader/writer style on purpose: the interceptors must handle it as well as generators.
        async for request in requests:
            await context.write(StringValue(value=await self._answer(request.value)))

    def register(self, server: grpc.aio.Server) -> None:
        kw: dict[str, Any] = {
            "request_deserializer": StringValue.FromString,
            "response_serializer": StringValue.SerializeToString,
        }
        handlers = {
            "Echo": grpc.unary_unary_rpc_method_handler(self.echo, **kw),
            "Split": grpc.unary_stream_rpc_method_handler(self.split, **kw),
            "Join": grpc.stream_unary_rpc_method_handler(self.join, **kw),
            "Chat": grpc.stream_stream_rpc_method_handler(self.chat, **kw),
            "Admin": grpc.unary_unary_rpc_method_handler(self.echo, **kw),
            "Unlisted": grpc.unary_unary_rpc_method_handler(self.echo, **kw),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    async def on_shutdown(self) -> None:
        self.shutdown_calls.append("closed")


SCOPES = {
    _m("Echo"): "echo",
    _m("Split"): "echo",
    _m("Join"): "echo",
    _m("Chat"): "echo",
    _m("Admin"): "admin",
    # "Unlisted" is deliberately absent: it must be refused even to valid keys.
}


@dataclass
class Harness:
    managed: ManagedServer
    echo: Echo
    channel: grpc.aio.Channel
    spans: InMemorySpanExporter
    provider: TracerProvider

    def unary(self, name: str) -> Any:
        return self.channel.unary_unary(
            _m(name), StringValue.SerializeToString, StringValue.FromString
        )

    def unary_stream(self, name: str) -> Any:
        return self.channel.unary_stream(
            _m(name), StringValue.SerializeToString, StringValue.FromString
        )

    def stream_unary(self, name: str) -> Any:
        return self.channel.stream_unary(
            _m(name), StringValue.SerializeToString, StringValue.FromString
        )

    def stream_stream(self, name: str) -> Any:
        return self.channel.stream_stream(
            _m(name), StringValue.SerializeToString, StringValue.FromString
        )


def _settings(**overrides: Any) -> EchoSettings:
    values: dict[str, Any] = {
        "port": 0,
        "api_keys": {ECHO_KEY: ["echo"], ADMIN_KEY: ["admin"]},
        "shutdown_grace_seconds": 10,
    }
    values.update(overrides)
    return EchoSettings.load(**values)


@pytest.fixture
async def harness(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    monkeypatch.delenv("CROWD_CONFIG_FILE", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    spans = InMemorySpanExporter()
    provider = setup_tracing("echo-test", span_exporter=spans)
    echo = Echo()
    spec = ServerSpec(
        service_names=[SERVICE],
        register=echo.register,
        method_scopes=SCOPES,
        on_shutdown=[echo.on_shutdown],
    )
    managed = build_server(_settings(), spec, tracer_provider=provider)
    await managed.start()
    channel = grpc.aio.insecure_channel(managed.address)
    try:
        yield Harness(managed, echo, channel, spans, provider)
    finally:
        await channel.close()
        await managed.stop(0)


ECHO_MD = auth_metadata(ECHO_KEY)


# Health and reflection are called through raw multicallables: their typing stubs declare no
# stub methods.
def health_check(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        health_pb2.HealthCheckRequest.SerializeToString,
        health_pb2.HealthCheckResponse.FromString,
    )


def health_watch(channel: grpc.aio.Channel, service: str) -> Any:
    watch = channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        health_pb2.HealthCheckRequest.SerializeToString,
        health_pb2.HealthCheckResponse.FromString,
    )
    return watch(health_pb2.HealthCheckRequest(service=service))


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


# --- health and reflection --------------------------------------------------------------------


async def test_health_serving_without_key_for_server_and_each_service(harness: Harness) -> None:
    check = health_check(harness.channel)
    for service in ("", SERVICE):
        reply = await check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == SERVING


async def test_health_turns_not_serving_when_stop_begins(harness: Harness) -> None:
    watch = health_watch(harness.channel, SERVICE)
    assert (await watch.read()).status == SERVING

    stopping = asyncio.create_task(harness.managed.stop(5))
    assert (await watch.read()).status == NOT_SERVING
    watch.cancel()  # a watch never ends by itself; let the grace period end early
    await stopping
    assert harness.echo.shutdown_calls == ["closed"]


async def test_reflection_lists_services_without_key(harness: Harness) -> None:
    info = harness.channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        reflection_pb2.ServerReflectionRequest.SerializeToString,
        reflection_pb2.ServerReflectionResponse.FromString,
    )

    async def one_request() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = []
    async for reply in info(one_request()):
        names += [s.name for s in reply.list_services_response.service]
    assert SERVICE in names
    assert "grpc.health.v1.Health" in names
    assert "grpc.reflection.v1alpha.ServerReflection" in names


# --- authentication and scopes ----------------------------------------------------------------


async def test_no_key_is_unauthenticated(harness: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.unary("Echo")(StringValue(value="hi"))
    code, info, _ = decode_error(caught.value)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert info is not None and info.reason == "API_KEY_MISSING" and info.domain == "crowd.dev"


@pytest.mark.parametrize(
    "metadata",
    [
        (("authorization", f"Bearer {UNKNOWN_KEY}"),),
        (("authorization", f"Basic {ECHO_KEY}"),),
        (("authorization", ECHO_KEY),),
        (("authorization", f"Bearer {ECHO_KEY}"), ("authorization", f"Bearer {ECHO_KEY}")),
    ],
    ids=["unknown-key", "basic-scheme", "no-scheme", "two-headers"],
)
async def test_bad_credentials_are_unauthenticated(harness: Harness, metadata: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.unary("Echo")(StringValue(value="hi"), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert ECHO_KEY not in (caught.value.details() or "")


async def test_wrong_scope_is_permission_denied_naming_the_scope(harness: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.unary("Admin")(StringValue(value="hi"), metadata=ECHO_MD)
    code, info, _ = decode_error(caught.value)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert info is not None
    assert info.reason == "SCOPE_MISSING"
    assert info.metadata["scope"] == "admin"
    assert "admin" in (caught.value.details() or "")
    assert ECHO_KEY not in (caught.value.details() or "")


async def test_method_without_scope_is_denied_even_to_valid_keys(harness: Harness) -> None:
    for key in (ECHO_KEY, ADMIN_KEY):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.unary("Unlisted")(StringValue(value="hi"), metadata=auth_metadata(key))
        code, info, _ = decode_error(caught.value)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert info is not None and info.reason == "METHOD_NOT_ALLOWED"


async def test_right_scope_succeeds_and_servicer_sees_key_id_not_key(harness: Harness) -> None:
    reply = await harness.unary("Echo")(StringValue(value="hi"), metadata=ECHO_MD)
    assert reply.value == "hi"
    reply = await harness.unary("Echo")(StringValue(value="whoami"), metadata=ECHO_MD)
    assert reply.value == key_id(ECHO_KEY)
    assert len(reply.value) == 6 and reply.value not in ECHO_KEY
    admin = await harness.unary("Admin")(
        StringValue(value="whoami"), metadata=auth_metadata(ADMIN_KEY)
    )
    assert admin.value == key_id(ADMIN_KEY)


async def test_all_four_rpc_kinds_are_guarded_and_served(harness: Harness) -> None:
    async def requests(*values: str) -> AsyncIterator[StringValue]:
        for v in values:
            yield StringValue(value=v)

    # Refused without a key, whatever the kind.
    attempts = [
        lambda: harness.unary_stream("Split")(StringValue(value="a,b")).read(),
        lambda: harness.stream_unary("Join")(requests("a", "b")),
        lambda: harness.stream_stream("Chat")(requests("a")).read(),
    ]
    for attempt in attempts:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await attempt()
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # Served with the right key.
    split = [
        r.value
        async for r in harness.unary_stream("Split")(StringValue(value="a,b,c"), metadata=ECHO_MD)
    ]
    assert split == ["a", "b", "c"]
    joined = await harness.stream_unary("Join")(requests("x", "whoami"), metadata=ECHO_MD)
    assert joined.value == f"x,{key_id(ECHO_KEY)}"
    chat = [
        r.value async for r in harness.stream_stream("Chat")(requests("p", "q"), metadata=ECHO_MD)
    ]
    assert chat == ["p", "q"]


async def test_auth_disabled_lets_every_method_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROWD_CONFIG_FILE", raising=False)
    echo = Echo()
    spec = ServerSpec(service_names=[SERVICE], register=echo.register)
    provider = setup_tracing("echo-noauth")
    managed = build_server(_settings(auth_enabled=False), spec, tracer_provider=provider)
    async with managed, grpc.aio.insecure_channel(managed.address) as channel:
        call = channel.unary_unary(
            _m("Unlisted"), StringValue.SerializeToString, StringValue.FromString
        )
        assert (await call(StringValue(value="whoami"))).value == "anonymous"


# --- error mapping ----------------------------------------------------------------------------


async def test_invalid_argument_carries_every_field_violation(harness: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.unary("Echo")(StringValue(value="invalid"), metadata=ECHO_MD)
    code, info, violations = decode_error(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert info is not None and info.reason == "ECHO_INVALID" and info.domain == "crowd.dev"
    assert violations == [
        FieldViolation("value", "must not be 'invalid'"),
        FieldViolation("nested.field", "is required"),
    ]
    assert caught.value.details() == "invalid request: value: must not be 'invalid' (and 1 more)"


async def test_errors_in_streams_arrive_after_the_messages_sent_before(harness: Harness) -> None:
    call = harness.unary_stream("Split")(StringValue(value="ok,invalid,never"), metadata=ECHO_MD)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for reply in call:
            received.append(reply.value)
    assert received == ["ok"]
    assert decode_error(caught.value).code == grpc.StatusCode.INVALID_ARGUMENT

    async def requests() -> AsyncIterator[StringValue]:
        yield StringValue(value="fine")
        yield StringValue(value="boom")

    chat = harness.stream_stream("Chat")(requests(), metadata=ECHO_MD)
    assert (await chat.read()).value == "fine"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await chat.read()
    assert caught.value.code() == grpc.StatusCode.INTERNAL


async def test_unexpected_exception_is_internal_generic_and_logged_without_secret(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.unary("Echo")(StringValue(value="boom"), metadata=ECHO_MD)
    code, info, _ = decode_error(caught.value)
    assert code == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error"
    assert info is not None and info.reason == "INTERNAL"
    incident = info.metadata["incident"]

    # Logged server-side with the traceback, the incident id and the acting key id; no key.
    [record] = [r for r in caplog.records if "unhandled RuntimeError" in r.getMessage()]
    assert incident in record.getMessage()
    assert record.exc_text and "RuntimeError: exploded while holding [REDACTED]" in record.exc_text
    assert ECHO_KEY not in caplog.text
    for r in caplog.records:
        assert ECHO_KEY not in r.getMessage()
        assert ECHO_KEY not in (r.exc_text or "")


# --- tracing ----------------------------------------------------------------------------------


def _all_span_text(exporter: InMemorySpanExporter) -> str:
    parts = []
    for span in exporter.get_finished_spans():
        parts.append(span.name)
        parts += [f"{k}={v!r}" for k, v in (span.attributes or {}).items()]
        parts.append(str(span.status.description))
        for event in span.events:
            parts.append(event.name)
            parts += [f"{k}={v!r}" for k, v in (event.attributes or {}).items()]
    return "\n".join(parts)


async def test_spans_never_contain_the_api_key(harness: Harness) -> None:
    client_spans = InMemorySpanExporter()
    client_provider = setup_tracing("echo-client", span_exporter=client_spans)
    async with create_channel(
        harness.managed.address, api_key=ECHO_KEY, tracer_provider=client_provider
    ) as channel:
        call = channel.unary_unary(
            _m("Echo"), StringValue.SerializeToString, StringValue.FromString
        )
        assert (await call(StringValue(value="hello"))).value == "hello"
        for value in ("boom", "invalid"):
            with pytest.raises(grpc.aio.AioRpcError):
                await call(StringValue(value=value))
        bad = channel.unary_unary(
            _m("Admin"), StringValue.SerializeToString, StringValue.FromString
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await bad(StringValue(value="x"))
    client_provider.force_flush()

    server_spans = harness.spans.get_finished_spans()
    assert {s.name for s in server_spans} >= {_m("Echo"), _m("Admin")}
    for exporter in (harness.spans, client_spans):
        text = _all_span_text(exporter)
        assert ECHO_KEY not in text
        assert "authorization" not in text.lower()

    # The client's trace continues on the server (traceparent propagated).
    [client_ok] = [s for s in client_spans.get_finished_spans()][:1]
    server_ok = next(s for s in server_spans if s.name == _m("Echo"))
    assert server_ok.context is not None and client_ok.context is not None
    assert server_ok.context.trace_id == client_ok.context.trace_id

    # Error spans carry the code, and the unexpected exception as a redacted event.
    codes = {s.attributes.get("rpc.grpc.status_code") for s in server_spans if s.attributes}
    assert {grpc.StatusCode.INTERNAL.value[0], grpc.StatusCode.PERMISSION_DENIED.value[0]} <= codes
    events = [e for s in server_spans for e in s.events if e.name == "exception"]
    assert any("[REDACTED]" in str((e.attributes or {}).get("exception.message")) for e in events)


async def test_two_servers_trace_into_their_own_providers(harness: Harness) -> None:
    other_spans = InMemorySpanExporter()
    other_provider = setup_tracing("echo-other", span_exporter=other_spans)
    echo = Echo()
    spec = ServerSpec(service_names=[SERVICE], register=echo.register, method_scopes=SCOPES)
    other = build_server(_settings(), spec, tracer_provider=other_provider)
    async with other, grpc.aio.insecure_channel(other.address) as channel:
        call = channel.unary_unary(
            _m("Echo"), StringValue.SerializeToString, StringValue.FromString
        )
        await call(StringValue(value="to-other"), metadata=ECHO_MD)
    before = len(harness.spans.get_finished_spans())
    await harness.unary("Echo")(StringValue(value="to-first"), metadata=ECHO_MD)

    assert [s.name for s in other_spans.get_finished_spans()] == [_m("Echo")]
    assert len(harness.spans.get_finished_spans()) == before + 1


# --- graceful shutdown ------------------------------------------------------------------------


async def test_stop_lets_in_flight_rpc_finish_and_refuses_new_ones(harness: Harness) -> None:
    slow = asyncio.ensure_future(harness.unary("Echo")(StringValue(value="slow"), metadata=ECHO_MD))
    await harness.echo.slow_started.wait()

    watch = health_watch(harness.channel, "")
    assert (await watch.read()).status == SERVING

    stopping = asyncio.create_task(harness.managed.stop(30))  # as SIGTERM does
    # NOT_SERVING is sent by stop() right before it shuts the server down.
    assert (await watch.read()).status == NOT_SERVING
    watch.cancel()

    async with grpc.aio.insecure_channel(harness.managed.address) as fresh:
        late = fresh.unary_unary(_m("Echo"), StringValue.SerializeToString, StringValue.FromString)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await late(StringValue(value="late"), metadata=ECHO_MD, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not stopping.done()
    assert harness.echo.shutdown_calls == []  # hooks wait for in-flight RPCs

    harness.echo.slow_release.set()
    assert (await slow).value == "slow done"
    await asyncio.wait_for(stopping, timeout=10)  # well before the 30 s grace
    assert harness.echo.shutdown_calls == ["closed"]


async def test_sigterm_drains_in_flight_rpc_then_stops(harness: Harness) -> None:
    serving = asyncio.create_task(serve_until_signal(harness.managed))
    slow = asyncio.ensure_future(harness.unary("Echo")(StringValue(value="slow"), metadata=ECHO_MD))
    await harness.echo.slow_started.wait()
    watch = health_watch(harness.channel, SERVICE)
    assert (await watch.read()).status == SERVING

    # serve_until_signal installed its handler before anything else; without it SIGTERM would
    # kill the test process, so make sure before sending it.
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    os.kill(os.getpid(), signal.SIGTERM)
    assert (await watch.read()).status == NOT_SERVING
    watch.cancel()
    assert not serving.done()

    harness.echo.slow_release.set()
    assert (await slow).value == "slow done"
    await asyncio.wait_for(serving, timeout=10)
    assert harness.echo.shutdown_calls == ["closed"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler removed again


async def test_stop_is_idempotent_and_concurrent_callers_share_it(harness: Harness) -> None:
    await asyncio.gather(harness.managed.stop(1), harness.managed.stop(1))
    await harness.managed.stop()
    assert harness.echo.shutdown_calls == ["closed"]
    await asyncio.wait_for(harness.managed.wait_for_termination(), timeout=5)


async def test_a_stuck_shutdown_hook_is_cancelled_after_its_timeout_and_stop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo = Echo()
    stuck_forever = asyncio.Event()
    cancelled: list[bool] = []

    async def stuck() -> None:
        try:
            await stuck_forever.wait()  # never set: a hook waiting on something that never comes
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    spec = ServerSpec(
        service_names=[SERVICE],
        register=echo.register,
        method_scopes=SCOPES,
        on_shutdown=[stuck, echo.on_shutdown],
    )
    managed = build_server(
        _settings(shutdown_hook_timeout_seconds=0.2), spec, tracer_provider=setup_tracing("x")
    )
    await managed.start()
    with caplog.at_level(logging.ERROR):
        await managed.stop(0)
    assert cancelled == [True]
    assert echo.shutdown_calls == ["closed"]  # the hooks after the stuck one still ran
    assert any("did not finish within" in r.getMessage() for r in caplog.records)


async def test_build_rejects_invalid_method_scopes() -> None:
    echo = Echo()
    spec = ServerSpec(
        service_names=[SERVICE], register=echo.register, method_scopes={"Echo": "echo"}
    )
    with pytest.raises(ValueError, match="full method name"):
        build_server(_settings(), spec, tracer_provider=setup_tracing("x"))


async def test_build_rejects_generated_service_with_unscoped_methods() -> None:
    # Health is a generated service known to the protobuf pool: its methods must all be scoped
    # when a spec lists it as its own service.
    spec = ServerSpec(
        service_names=["grpc.health.v1.Health"],
        register=lambda server: None,
        method_scopes={"/grpc.health.v1.Health/Check": "read"},
    )
    with pytest.raises(ValueError, match=r"/grpc\.health\.v1\.Health/Watch"):
        build_server(_settings(), spec, tracer_provider=setup_tracing("x"))


async def test_a_shutdown_step_that_ignores_cancellation_does_not_hold_the_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                continue  # as a library that swallows cancellation would

    holder = asyncio.ensure_future(stubborn())
    with caplog.at_level(logging.WARNING, logger="service_common.server"):
        await _bounded(holder, 0.05, "gRPC")
    assert not holder.done()  # still running: the stop went on without it
    assert "stopping gRPC took over" in caplog.text and "stubborn" in caplog.text
    released.set()
    await holder


async def test_a_shutdown_step_that_fails_raises_its_error() -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await _bounded(broken(), 5.0, "gRPC")
