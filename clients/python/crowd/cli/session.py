"""What every command shares: the targets, the API key, the output, and running one call.

A call that fails prints its gRPC code, message and field violations and exits 1 (3 when the
server is unavailable or refuses the key); it never shows a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
import typer

from crowd.cli.output import Output
from crowd.client import CrowdClient
from crowd.definitions.errors import DefinitionsError
from crowd.definitions.loader import load_definitions_file
from crowd.definitions.positions import compose, locate
from crowd.profile.v1 import definitions_pb2

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
"""Invalid input (a document, a value) or a failed call."""
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
"""The server cannot be reached in time, or refused the API key (unauthenticated, denied)."""

_UNAVAILABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)


CoroutineRunner = Callable[[Coroutine[Any, Any, Any]], Any]

coroutine_runner: CoroutineRunner = asyncio.run
"""How commands run their async work: ``asyncio.run``, a fresh event loop per command. A
host that already runs an event loop in another thread (tests that drive the CLI in process
beside real servers, see tests/cli/in_process.py) sets a runner that submits the work to
that loop instead, so that grpc.aio, which keeps per-loop state, never sees a second loop."""


@dataclass
class Session:
    """The global options, as given to every command through ``ctx.obj``."""

    profile_target: str
    dispatch_target: str
    api_key: str = field(repr=False)  # never printed
    output: Output

    def call(self, work: Callable[[CrowdClient], Awaitable[T]]) -> T:
        """Run ``work`` with a connected client; a failed call exits 1, or 3 when the server is
        unavailable or refuses the key."""

        async def run() -> T:
            async with CrowdClient(
                self.profile_target, self.dispatch_target, api_key=self.api_key
            ) as client:
                return await work(client)

        try:
            result: T = coroutine_runner(run())
            return result
        except grpc.aio.AioRpcError as error:
            self.output.rpc_error(error)
            unavailable = error.code() in _UNAVAILABLE_CODES
            raise typer.Exit(EXIT_UNAVAILABLE if unavailable else EXIT_FAILED) from None

    def load(self, path: Path) -> definitions_pb2.Definitions:
        """Load a YAML/JSON definitions file; a bad one prints every problem and exits 1."""
        try:
            return load_definitions_file(path)
        except DefinitionsError as error:
            self.output.definition_errors(error.errors, positions_in(path))
            self.output.problem(
                f"{path}: cannot load the definitions ({len(error.errors)} error(s))"
            )
            raise typer.Exit(EXIT_FAILED) from None


def positions_in(path: Path) -> Callable[[str], str]:
    """``where(error_path)`` -> ``"FILE:LINE:COLUMN: "`` of that path in the file's YAML text
    (``""`` when the file cannot be read or parsed)."""
    try:
        root = compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        root = None

    def where(error_path: str) -> str:
        found = locate(root, error_path)
        return f"{path}:{found[0]}:{found[1]}: " if found else ""

    return where


def session_of(ctx: typer.Context) -> Session:
    """The `Session` the top-level callback stored."""
    session = ctx.find_root().obj
    assert isinstance(session, Session)
    return session
