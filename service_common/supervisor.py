"""Several worker processes on one port: the supervisor behind ``--workers N``.

One Python process runs one event loop, so it uses one core. With ``workers`` > 1,
:func:`service_common.server.run_service` does not serve itself but calls
:func:`run_supervised`, which

* reserves the port first (a socket bound with ``SO_REUSEPORT``, never listening), so that
  ``--port 0`` still means one free port chosen once, which every worker then shares;
* starts N workers by running this program's own command line again with ``--workers 1
  --port P`` (plus each worker's own overrides, e.g. a distinct ``consumer_name``); each is an
  ordinary single-process service with its own event loop and gRPC server, all listening on
  the same port through ``SO_REUSEPORT`` (the kernel spreads new connections over them);
* restarts a worker that was **killed by a signal** (the OOM killer, a crash, ``kill -9``)
  or **stopped gracefully** by a SIGTERM of its own (a rolling restart, one worker at a
  time) after a capped backoff, and stops everything, exiting with the worker's status,
  when a worker **fails on its own** (a non-zero exit: a failed start such as a
  partition-count mismatch, which a restart would only repeat);
* on SIGTERM or SIGINT sends SIGTERM to every worker, waits while each drains gracefully
  (``shutdown_grace_seconds`` plus its shutdown steps), SIGKILLs any that is still running
  long after that, and exits 0 when every worker stopped cleanly (1 otherwise).

The kernel kills the workers if the supervisor itself dies (``PR_SET_PDEATHSIG``), so no
worker outlives it. The supervisor opens no Redis connection and serves no RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from service_common.settings import ServiceSettings

__all__ = ["RestartPolicy", "Supervisor", "describe_exit", "run_supervised", "worker_command"]

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

#: Extra seconds past a worker's own worst-case stop before the supervisor SIGKILLs it.
KILL_MARGIN_S = 5.0


@dataclass(frozen=True)
class RestartPolicy:
    """When a worker killed by a signal is started again."""

    initial_backoff_s: float = 1.0
    """Delay before the first restart; it doubles with each further crash in a row."""
    max_backoff_s: float = 30.0
    """Cap of the delay."""
    stable_after_s: float = 60.0
    """A worker that ran this long before it was killed starts the doubling afresh."""

    def delay(self, crashes_in_a_row: int) -> float:
        """Seconds to wait before the restart after ``crashes_in_a_row`` (1 = the first)."""
        exponent = min(max(crashes_in_a_row - 1, 0), 30)
        return float(min(self.max_backoff_s, self.initial_backoff_s * 2**exponent))


def describe_exit(returncode: int) -> str:
    """``exited with status 3`` or ``was killed by signal 9 (SIGKILL)``."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = f" ({signal.Signals(-returncode).name})"
    except ValueError:
        name = ""
    return f"was killed by signal {-returncode}{name}"


def _program() -> list[str]:
    """The interpreter and program part of this process's command line.

    ``python -m profile_service --workers 2`` gives ``[python, -m, profile_service]``;
    ``crowd-profile --workers 2`` gives ``[python, …/bin/crowd-profile]``.
    """
    arguments = len(sys.argv) - 1
    original = list(sys.orig_argv)
    program = original[: len(original) - arguments] if arguments else original
    # orig_argv[0] is the interpreter as it was typed (maybe found on PATH): use its real path.
    return [sys.executable, *program[1:]]


def _as_flags(overrides: Mapping[str, object]) -> list[str]:
    flags: list[str] = []
    for name, value in overrides.items():
        flags += ["--" + name.replace("_", "-"), str(value)]
    return flags


def worker_command(argv: Sequence[str], port: int, overrides: Mapping[str, object]) -> list[str]:
    """The command line of one worker: this program again, as a single process on ``port``.

    Flags given later win (argparse), so the worker's ``--workers 1 --port P`` beat the ones
    the supervisor was started with; settings from the environment or the config file reach
    it unchanged (secrets are never on a command line).
    """
    return [*_program(), *argv, *_as_flags({**overrides, "workers": 1, "port": port})]


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (never listen) a ``SO_REUSEPORT`` socket on ``host:port`` and return it.

    Held for the supervisor's life: with port 0 it picks the free port every worker then
    joins, and a port some other program holds fails here, before any worker starts. A
    socket that does not listen receives no connections.
    """
    bare = host.strip("[]")
    family, kind, proto, _, address = socket.getaddrinfo(
        bare or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the worker when the supervisor dies.

    As if the supervisor and its workers were one process: killing it (``kill -9``) ends
    them all, and work they held is redelivered from Redis as after any crash.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


async def _wait_exit(process: subprocess.Popen[bytes]) -> int:
    """Wait for ``process`` to exit without blocking the loop; its return code."""
    try:
        fd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # no pidfd (not Linux ≥ 5.3): a thread waits instead
        return await asyncio.to_thread(process.wait)
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def exited() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, exited)
    try:
        await readable
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return process.wait()


class Supervisor:
    """Starts, watches, restarts and stops the workers (see the module docstring)."""

    def __init__(
        self,
        workers: int,
        command: Callable[[int], list[str]],
        *,
        stop_timeout_s: float,
        policy: RestartPolicy | None = None,
    ) -> None:
        """
        Args:
            workers: How many worker processes to keep running.
            command: The command line of worker ``index`` (0-based).
            stop_timeout_s: How long a worker may take to stop after SIGTERM before SIGKILL.
            policy: Restart backoff for killed workers.
        """
        self._count = workers
        self._command = command
        self._stop_timeout_s = stop_timeout_s
        self._policy = policy or RestartPolicy()
        self._live: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = asyncio.Event()
        self._failure: int | None = None
        self._unclean_stop = False
        self._preexec = _die_with_parent()

    @property
    def pids(self) -> list[int]:
        """The workers running now."""
        return [process.pid for process in self._live.values()]

    def request_stop(self) -> None:
        """Stop every worker gracefully (from a signal handler)."""
        if not self._stopping.is_set():
            logger.info("termination signal received")
        self._stopping.set()

    async def run(self) -> int:
        """Run the workers until a stop is requested or one fails; the exit status."""
        slots = [asyncio.ensure_future(self._run_slot(index)) for index in range(self._count)]
        await self._stopping.wait()
        logger.info("stopping %d workers", len(self._live))
        for process in self._live.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        _, late = await asyncio.wait(slots, timeout=self._stop_timeout_s)
        if late:
            self._unclean_stop = True
            for index, process in self._live.items():
                logger.error(
                    "worker %d (pid %d) did not stop within %.0fs: killed",
                    index,
                    process.pid,
                    self._stop_timeout_s,
                )
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await asyncio.wait(slots)
        for slot in slots:
            slot.result()  # a bug in the supervisor itself surfaces here
        if self._failure is not None:
            return self._failure
        status = 1 if self._unclean_stop else 0
        logger.info("all workers stopped", extra={"status": status})
        return status

    def _start(self, index: int) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            self._command(index), stdin=subprocess.DEVNULL, preexec_fn=self._preexec
        )
        self._live[index] = process
        logger.info("worker %d started (pid %d)", index, process.pid, extra={"pid": process.pid})
        return process

    async def _run_slot(self, index: int) -> None:
        """Keep worker ``index`` running until the stop (restarting it if it is killed)."""
        loop = asyncio.get_running_loop()
        crashes = 0
        while not self._stopping.is_set():
            process = self._start(index)
            started = loop.time()
            returncode = await _wait_exit(process)
            del self._live[index]
            if self._stopping.is_set():
                # Killed by our SIGTERM itself: it had not yet installed its handler (still
                # starting), so it held no work. Any other end is unclean.
                if returncode not in (0, -signal.SIGTERM, -signal.SIGINT):
                    self._unclean_stop = True
                    logger.warning(
                        "worker %d (pid %d) %s while stopping",
                        index,
                        process.pid,
                        describe_exit(returncode),
                    )
                return
            if returncode > 0:
                # On its own: a failed start (or a bug) that a restart would only repeat.
                logger.error(
                    "worker %d (pid %d) %s: stopping the other workers",
                    index,
                    process.pid,
                    describe_exit(returncode),
                )
                if self._failure is None:
                    self._failure = returncode or 1
                self._stopping.set()
                return
            if loop.time() - started >= self._policy.stable_after_s:
                crashes = 0
            crashes += 1
            delay = self._policy.delay(crashes)
            # Status 0: it was stopped gracefully (someone sent it SIGTERM, e.g. a rolling
            # restart of the workers one by one): start it again, from the program on disk.
            logger.log(
                logging.INFO if returncode == 0 else logging.WARNING,
                "worker %d (pid %d) %s: restarting it in %.1fs",
                index,
                process.pid,
                "stopped" if returncode == 0 else describe_exit(returncode),
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)


def _stop_timeout(settings: ServiceSettings) -> float:
    """A worker's worst-case graceful stop: RPC grace, its shutdown steps, then a margin."""
    return (
        settings.shutdown_grace_seconds + 3 * settings.shutdown_hook_timeout_seconds + KILL_MARGIN_S
    )


def run_supervised(settings: ServiceSettings, argv: Sequence[str]) -> int:
    """Serve ``settings.workers`` worker processes on one port until SIGTERM/SIGINT.

    Args:
        settings: The loaded settings (``workers`` > 1).
        argv: The command-line arguments the settings came from (passed on to each worker).

    Returns:
        The exit status: 0 after a clean stop, a failed worker's status, or 1.
    """
    try:
        reservation = reserve_port(settings.host, settings.port)
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        return 1
    with reservation:
        port: int = reservation.getsockname()[1]

        def command(index: int) -> list[str]:
            return worker_command(argv, port, settings.worker_overrides(index))

        async def main() -> int:
            supervisor = Supervisor(
                settings.workers, command, stop_timeout_s=_stop_timeout(settings)
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, supervisor.request_stop)
            logger.info(
                "supervising %d workers on %s:%d",
                settings.workers,
                settings.host,
                port,
                extra={"port": port, "workers": settings.workers},
            )
            return await supervisor.run()

        return asyncio.run(main())
