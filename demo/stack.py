"""Starts and stops the demo's processes: redis-server, the Braze sandbox and both services.

Every process writes its log to ``<run dir>/<name>.log`` and its pid to ``<run dir>/<name>.pid``
(``.run/`` for the demo; the benchmark uses its own run dir); on exit each one gets SIGTERM,
then SIGKILL if it has not stopped within its grace period. Should the runner itself die
without that cleanup (SIGKILL, a crash of the interpreter), the kernel kills its children.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crowd.channels import OWN_CONNECTION

RUN_DIR = Path(".run")
STOP_GRACE_S = 15.0
"""How long a child may take to stop after SIGTERM before it gets SIGKILL; longer than the
services' own ``shutdown_grace_seconds`` (10 s by default)."""
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_range(count: int) -> int:
    """A first port such that it and the ``count - 1`` after it are free on loopback now
    (a service's ``metrics_port``: worker *i* serves on ``metrics_port + i``)."""
    while True:
        base = free_port()
        if base + count > 65535:
            continue
        free = True
        for port in range(base + 1, base + count):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return base


class ChildExited(RuntimeError):
    """A child process of the stack has exited while it should be running."""

    def __init__(self, process: Process, message: str) -> None:
        super().__init__(message)
        self.process = process


def describe_exit(returncode: int) -> str:
    """``exited with status 3`` or ``killed by signal 9 (SIGKILL)``, from a Popen returncode."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = f" ({signal.Signals(-returncode).name})"
    except ValueError:
        name = ""
    return f"killed by signal {-returncode}{name}"


@dataclass
class Process:
    """One child process and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, grace: float = 10.0) -> bool:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; False if SIGKILL was needed."""
        if self.popen.poll() is not None:
            return True
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            return False
        return True

    def check_alive(self) -> None:
        """Raise :class:`ChildExited` with the log's tail if the process has exited."""
        if self.popen.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
            raise ChildExited(
                self, f"{self.name} exited ({self.popen.returncode}):\n" + "\n".join(tail)
            )


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when this process dies.

    The children run in sessions of their own (a terminal's Ctrl-C reaches only the runner,
    which stops them in order), so nothing else would stop them if the runner were SIGKILLed.
    Linux only; elsewhere the runner's own cleanup is all there is.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the runner died before prctl took effect
            os._exit(1)

    return preexec


@dataclass
class Stack:
    """Child processes, stopped in reverse order on exit."""

    processes: list[Process] = field(default_factory=list)
    run_dir: Path = RUN_DIR
    """Where logs, pid files (and Redis data) go."""
    stop_grace_s: float = STOP_GRACE_S
    on_forced_stop: Callable[[Process], None] | None = None
    """Called for each child that needed SIGKILL to stop."""

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        """Start ``argv`` with its output in ``<run dir>/<name>.log``, its pid in ``<name>.pid``."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.run_dir / f"{name}.log"
        with log_path.open("wb") as log:  # the child has its own copy of the descriptor
            popen = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                # Own process group: Ctrl-C reaches only us, and we stop children in order.
                start_new_session=True,
                # Calls only prctl and getppid in the child: safe even with threads running.
                preexec_fn=_die_with_parent(),
            )
        process = Process(name, popen, log_path)
        self.processes.append(process)
        (self.run_dir / f"{name}.pid").write_text(f"{popen.pid}\n")
        return process

    def first_exited(self) -> Process | None:
        """The first child (in start order) that is no longer running, if any."""
        return next((p for p in self.processes if p.popen.poll() is not None), None)

    def stop(self) -> None:
        """Stop every child, in reverse start order (the services before what they use)."""
        for process in reversed(self.processes):
            if not process.stop(self.stop_grace_s) and self.on_forced_stop is not None:
                self.on_forced_stop(process)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_redis(stack: Stack, *, fresh: bool = False) -> str:
    """Start a private redis-server (AOF on, data in ``<run dir>/redis``) and return its URL.

    ``fresh`` deletes the data left there by an earlier run first (the benchmark's empty
    dataset); the demo keeps it.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (make run installs it with apt-get)")
    port = free_port()
    data_dir = stack.run_dir / "redis"
    if fresh:
        shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    process = stack.start(
        "redis",
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data_dir.resolve()),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        process.check_alive()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise RuntimeError("redis-server did not answer PING within 15 s")


async def wait_serving(
    process: Process, target: str, within_s: float = 30.0, connections: int = 16
) -> None:
    """Wait until ``target`` answers the gRPC health check with SERVING on ``connections``
    connections of their own at once: with several worker processes behind one port
    (SO_REUSEPORT) the kernel hands each connection to one of them, and a worker still
    preparing answers UNAVAILABLE, so one connection's SERVING says nothing about the
    others (16 connections all reaching the same one of 2 workers: 1 in 32,768)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        process.check_alive()
        if await _all_serving(target, connections):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{process.name} did not become SERVING on {target}")


async def _all_serving(target: str, connections: int) -> bool:
    channels = [
        grpc.aio.insecure_channel(target, options=[OWN_CONNECTION]) for _ in range(connections)
    ]
    try:
        replies = await asyncio.gather(
            *(
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1.0
                )
                for channel in channels
            ),
            return_exceptions=True,
        )
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))
    return all(
        isinstance(reply, health_pb2.HealthCheckResponse)
        and reply.status == health_pb2.HealthCheckResponse.SERVING
        for reply in replies
    )


PYTHON = sys.executable
