"""Small networking helpers for tests: free loopback ports, waiting for a listener."""

from __future__ import annotations

import socket
import time

__all__ = ["free_port", "wait_for_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on host a moment ago (bind port 0, read it, close).

    Another process can still take it before the caller binds: callers that start a server on it
    must retry with a new port on "address already in use" (RedisServer does).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
