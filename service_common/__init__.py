"""Server plumbing shared by the crowd services: settings, logging, errors, auth, tracing,
Redis and the gRPC server lifecycle. The names below are the supported API."""

from service_common.auth import ApiKeyStore, AuthInterceptor, Principal, current_principal, key_id
from service_common.client import auth_metadata, create_channel
from service_common.error_mapping import ErrorMappingInterceptor
from service_common.errors import (
    ERROR_DOMAIN,
    Aborted,
    AlreadyExists,
    DecodedError,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Violations,
    abort_with_error,
    decode_error,
)
from service_common.logging import configure_logging, redact, register_secret
from service_common.redis import RedisUnavailableError, create_redis, redact_url
from service_common.server import (
    ManagedServer,
    ServerSpec,
    build_server,
    run_service,
    serve_until_signal,
)
from service_common.settings import ServiceSettings, SettingsError, settings_cli
from service_common.telemetry import (
    client_interceptors,
    server_interceptor,
    setup_tracing,
    shutdown_tracing,
)

__all__ = [
    "ERROR_DOMAIN",
    "Aborted",
    "AlreadyExists",
    "ApiKeyStore",
    "AuthInterceptor",
    "DecodedError",
    "DomainError",
    "ErrorMappingInterceptor",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "ManagedServer",
    "NotFound",
    "PermissionDenied",
    "Principal",
    "RedisUnavailableError",
    "ResourceExhausted",
    "ServerSpec",
    "ServiceSettings",
    "SettingsError",
    "Unauthenticated",
    "Unavailable",
    "Violations",
    "abort_with_error",
    "auth_metadata",
    "build_server",
    "client_interceptors",
    "configure_logging",
    "create_channel",
    "create_redis",
    "current_principal",
    "decode_error",
    "key_id",
    "redact",
    "redact_url",
    "register_secret",
    "run_service",
    "serve_until_signal",
    "server_interceptor",
    "settings_cli",
    "setup_tracing",
    "shutdown_tracing",
]
