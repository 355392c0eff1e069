"""A real `redis-server` process for tests: loopback only, free port, private temp dir.

    server = RedisServer()                 # no persistence (appendonly no, save "")
    server.start()
    url = server.url                       # redis://127.0.0.1:PORT/0
    server.restart()                       # same port, same dir
    server.cleanup()                       # stop + remove the temp dir

    durable = RedisServer(appendonly=True) # AOF with appendfsync always: every acknowledged
    durable.start()                        # write survives kill() + start()/restart()

Readiness is detected by polling PING until it answers (a server still loading its AOF answers
LOADING and is polled again), never by sleeping a fixed time.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType

import redis

from .net import free_port

__all__ = ["RedisServer", "RedisServerError", "find_redis_server"]

LOOPBACK = "127.0.0.1"
# Override the binary with CROWD_REDIS_SERVER=/path/to/redis-server.
BINARY_ENV = "CROWD_REDIS_SERVER"

_live: weakref.WeakSet[RedisServer] = weakref.WeakSet()


class RedisServerError(RuntimeError):
    """redis-server could not be found, started or stopped."""


def find_redis_server() -> str:
    """Path of the redis-server binary, or a RedisServerError saying how to get one."""
    override = os.environ.get(BINARY_ENV)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise RedisServerError(f"{BINARY_ENV}={override!r} is not an executable file")
        return override
    found = shutil.which("redis-server")
    if found is None:
        raise RedisServerError(
            "redis-server not found on PATH: run `make redis-server` (installs Debian's "
            f"redis-server) or set {BINARY_ENV} to its path"
        )
    return found


class RedisServer:
    """One redis-server subprocess bound to 127.0.0.1 on a free port, with its own data dir."""

    def __init__(
        self,
        *,
        appendonly: bool = False,
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 15.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.appendonly = appendonly
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        # A port given by the caller is never changed; otherwise one is picked at first start()
        # and then kept, so restart() comes back on the same address.
        self._port: int | None = port
        self._port_fixed = port is not None
        self._owns_dir = data_dir is None
        self._dir = Path(data_dir) if data_dir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        # After a first successful start the port is part of the server's identity.
        self._had_success = False
        self._output_offsets: dict[str, int] = {}

    # -- properties ------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        if self._port is None:
            raise RedisServerError("server has not been started yet: no port assigned")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        if self._dir is None:
            raise RedisServerError("server has not been started yet: no data dir")
        return self._dir

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING. Returns self."""
        if self.is_running:
            raise RedisServerError(f"redis-server already running on port {self._port}")
        binary = find_redis_server()
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="crowd-redis-"))
        self._dir.mkdir(parents=True, exist_ok=True)

        attempts = 10
        last_error = ""
        for attempt in range(attempts):
            if self._port is None:
                self._port = free_port()
            self._spawn(binary)
            error = self._wait_ready()
            if error is None:
                _live.add(self)
                return self
            last_error = error
            self._reap()
            if "address already in use" not in error.lower():
                break
            # The port was taken between probing and binding (or, on restart, is still held by
            # something else): pick a new one unless the caller or a previous start pinned it.
            if not self._port_fixed and not self._had_success:
                self._port = None
            else:
                time.sleep(0.05 * (attempt + 1))
        raise RedisServerError(f"redis-server failed to start on port {self._port}: {last_error}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a clean shutdown: AOF flushed), wait; SIGKILL if it does not exit in time."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._reap()

    def kill(self) -> None:
        """SIGKILL: a crash. Only what was fsynced (appendonly + appendfsync always) survives."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        self._reap()

    def restart(self, *, kill: bool = False) -> RedisServer:
        """Stop (or kill) and start again on the same port with the same data dir."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop the server and remove its data dir if this object created it."""
        self.stop()
        _live.discard(self)
        if self._owns_dir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def client(self, **kwargs: object) -> redis.Redis:
        """A synchronous redis-py client for this server (caller closes it)."""
        return redis.Redis(host=LOOPBACK, port=self.port, db=0, **kwargs)  # type: ignore[arg-type]

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<RedisServer {LOOPBACK}:{self._port} {state} appendonly={self.appendonly}>"

    # -- internals -------------------------------------------------------------------------------

    def _args(self, binary: str) -> list[str]:
        assert self._port is not None and self._dir is not None
        args = [
            binary,
            "--port", str(self._port),
            "--bind", LOOPBACK,
            "--dir", str(self._dir),
            "--logfile", str(self._dir / "redis.log"),
            "--daemonize", "no",
            "--save", "",  # no RDB snapshots
            "--appendonly", "yes" if self.appendonly else "no",
            "--loglevel", "notice",
        ]  # fmt: skip
        if self.appendonly:
            args += ["--appendfsync", "always"]
        args += list(self.extra_args)
        return args

    def _spawn(self, binary: str) -> None:
        assert self._dir is not None
        self._output_offsets = {
            name: (self._dir / name).stat().st_size if (self._dir / name).exists() else 0
            for name in ("redis.stdout", "redis.log")
        }
        out = open(self._dir / "redis.stdout", "ab")  # noqa: SIM115 - owned by the child
        try:
            self._proc = subprocess.Popen(
                self._args(binary),
                cwd=self._dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own process group: a Ctrl-C aimed at pytest does not hit the server first.
                start_new_session=True,
            )
        finally:
            out.close()

    def _wait_ready(self) -> str | None:
        """Poll PING until it answers; return None when ready, else why it failed."""
        assert self._proc is not None and self._port is not None
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.005
        while True:
            code = self._proc.poll()
            if code is not None:
                return f"exited with code {code}; {self._output_tail()}"
            pid = _ping_pid(self._port)
            if pid == self._proc.pid:
                self._had_success = True
                return None
            if pid is not None:  # someone else's redis took the port before ours could bind
                self._proc.wait(timeout=self.startup_timeout)
                return f"address already in use (by redis pid {pid}); {self._output_tail()}"
            if time.monotonic() >= deadline:
                self._proc.kill()
                self._proc.wait(timeout=10)
                return f"no PING answer within {self.startup_timeout}s; {self._output_tail()}"
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _output_tail(self, lines: int = 15) -> str:
        chunks = []
        for name in ("redis.stdout", "redis.log"):
            path = self._dir / name if self._dir is not None else None
            if path is not None and path.exists():
                with path.open("rb") as f:
                    f.seek(self._output_offsets.get(name, 0))
                    data = f.read().decode(errors="replace")
                text = data.strip().splitlines()[-lines:]
                if text:
                    chunks.append(f"{name}:\n  " + "\n  ".join(text))
        return "\n".join(chunks) if chunks else "no output"

    def _reap(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None


def _ping_pid(port: int, timeout: float = 0.5) -> int | None:
    """Raw RESP PING then INFO server (no client-library retries or backoff).

    Returns the answering server's process_id once it replies +PONG, else None (not listening
    yet, or -LOADING while it replays its AOF). The pid tells our server apart from a foreign one
    that grabbed the port first.
    """
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            reader = sock.makefile("rb")
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            if reader.readline() != b"+PONG\r\n":
                return None
            sock.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            header = reader.readline()
            if not header.startswith(b"$"):
                return None
            body = reader.read(int(header[1:]) + 2).decode(errors="replace")
            for line in body.splitlines():
                if line.startswith("process_id:"):
                    return int(line.split(":", 1)[1])
            return None
    except (OSError, ValueError):
        return None


@atexit.register
def _kill_leftovers() -> None:
    """Never leave redis-server processes behind, even if a test forgot cleanup()."""
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.kill()
