"""Starts and stops the demo's processes: redis-server, the Braze sandbox and both services.

Every process writes its log to ``<run dir>/<name>.log`` (``.run/`` for the demo; the
benchmark uses its own run dir); on exit (Ctrl-C included) each one gets SIGTERM, then
SIGKILL if it has not stopped within its grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

RUN_DIR = Path(".run")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """One child process and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def check_alive(self) -> None:
        """Raise with the log's tail if the process has exited."""
        if self.popen.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n" + "\n".join(tail))


@dataclass
class Stack:
    """Child processes, stopped in reverse order on exit."""

    processes: list[Process] = field(default_factory=list)
    run_dir: Path = RUN_DIR
    """Where logs (and Redis data) go."""

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        """Start ``argv`` with its output in ``<run dir>/<name>.log``."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.run_dir / f"{name}.log"
        log = log_path.open("wb")
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            # Own process group: Ctrl-C reaches only us, and we stop children in order.
            start_new_session=True,
        )
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for process in reversed(self.processes):
            process.stop()


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


async def wait_serving(process: Process, target: str, within_s: float = 30.0) -> None:
    """Wait until ``target`` answers the gRPC health check with SERVING."""
    deadline = time.monotonic() + within_s
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            process.check_alive()
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{process.name} did not become SERVING on {target}")


PYTHON = sys.executable
