"""``python -m bench.noop_server``: a ProfileService that does nothing, for the ingest baseline.

Same proto, same gRPC stack as the real profile service (``service_common.server``:
grpc.aio, the tracing, auth and error-mapping interceptors, health, reflection, the same
settings class and environment ``CROWD_PROFILE_*``), but ``TrackEvents`` only decodes the
request and answers an empty ``TrackEventsResponse`` without touching Redis. The ratio of the
real service's events/s to this one's is what the engine and storage cost on top of the RPC.

The handler is registered the way the generated ``add_ProfileServiceServicer_to_server``
does it (a generic handler for the service), with only ``TrackEvents``: every other method
answers UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
from opentelemetry.sdk.trace import TracerProvider

from crowd.profile.v1 import profile_service_pb2
from profile_service.api.scopes import METHOD_SCOPES, PROFILE_SERVICE
from profile_service.settings import ProfileSettings
from service_common.server import ManagedServer, ServerSpec, build_server, run_service


async def track_events(
    request: profile_service_pb2.TrackEventsRequest,
    context: grpc.aio.ServicerContext[Any, Any],
) -> profile_service_pb2.TrackEventsResponse:
    """Do nothing: an empty response."""
    return profile_service_pb2.TrackEventsResponse()


def _register(server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        PROFILE_SERVICE,
        {
            "TrackEvents": grpc.unary_unary_rpc_method_handler(
                track_events,
                request_deserializer=profile_service_pb2.TrackEventsRequest.FromString,
                response_serializer=profile_service_pb2.TrackEventsResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))


async def create_noop_server(
    settings: ProfileSettings, *, tracer_provider: TracerProvider | None = None
) -> ManagedServer:
    """Build the do-nothing server (not started)."""
    return build_server(
        settings,
        ServerSpec(
            service_names=[PROFILE_SERVICE], register=_register, method_scopes=METHOD_SCOPES
        ),
        tracer_provider=tracer_provider,
    )


def main() -> None:
    """Serve until SIGTERM/SIGINT."""
    run_service(ProfileSettings, create_noop_server, prog="python -m bench.noop_server")


if __name__ == "__main__":
    main()
