"""A service started as a real process with ``--workers N --port 0``, as an operator would.

Everything a test learns comes from public surfaces: the JSON log lines (the supervisor's
``supervising … on host:port`` with the port, each worker's ``serving`` and ``stopped`` lines
with its ``pid`` and, on stop, its ``rpcs`` count), the process table (``/proc``) and the
gRPC health service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.profile_api.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING


def children_of(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``, from ``/proc``."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def health(address: str) -> int | None:
    """The overall health status at ``address``, or None if nothing answers yet."""
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2
            )
        except grpc.aio.AioRpcError:
            return None
    return int(reply.status)


@dataclass
class SupervisedService:
    """``python -m <module> --workers N --port 0`` with its JSON log in a file."""

    module: str
    env: dict[str, str]
    log_path: Path
    workers: int = 2
    args: list[str] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("wb") as log:  # the children keep their own descriptors
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                "--workers",
                str(self.workers),
                "--port",
                "0",
                "--log-format",
                "json",
                *self.args,
                cwd=REPO,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=log,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def records(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue  # a line being written right now
        return found

    def messages(self, prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if str(r.get("msg", "")).startswith(prefix)]

    def _check_running(self) -> None:
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(
                f"{self.module} exited ({self.process.returncode}):\n{self.log_path.read_text()}"
            )

    @property
    def port(self) -> int:
        supervising = self.messages("supervising")
        assert supervising, self.log_path.read_text()
        return int(supervising[0]["port"])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def worker_pids(self) -> set[int]:
        return children_of(self.pid)

    async def wait_serving(self) -> set[int]:
        """Wait until every worker logged ``serving`` and health says SERVING; their pids."""

        async def ready() -> set[int] | None:
            self._check_running()
            pids = {int(r["pid"]) for r in self.messages("serving")} & self.worker_pids()
            if len(pids) < self.workers or await health(self.address) != SERVING:
                return None
            return pids

        pids = await wait_for(ready, f"{self.workers} {self.module} workers to serve", 60)
        assert pids is not None
        return pids

    async def stop(self, within_s: float = 60) -> int:
        """SIGTERM the supervisor and return its exit status."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), within_s)
        except TimeoutError:
            raise AssertionError(f"no exit after SIGTERM:\n{self.log_path.read_text()}") from None

    async def kill(self) -> None:
        """SIGKILL the supervisor and its workers (cleanup after a failed test)."""
        if self.process is None or self.process.returncode is not None:
            return
        workers = self.worker_pids()
        self.process.kill()
        await self.process.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def rpcs_by_worker(self) -> dict[int, int]:
        """Each stopped worker's pid → application RPCs it handled (its ``stopped`` line)."""
        return {int(r["pid"]): int(r["rpcs"]) for r in self.messages("stopped") if "rpcs" in r}
