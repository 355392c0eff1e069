"""run_service end to end in a real process: CLI/env settings, JSON logs, serving, SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import grpc
from google.protobuf import wrappers_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "entrypoint-key-0123456789abcdef"

SERVICE_SCRIPT = """
import logging

import grpc
from google.protobuf import wrappers_pb2
from pydantic_settings import SettingsConfigDict

from service_common import ServerSpec, ServiceSettings, build_server, run_service

SV = wrappers_pb2.StringValue


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CROWD_DEMO_")


async def echo(request, context):
    return request


def register(server):
    handler = grpc.unary_unary_rpc_method_handler(echo, SV.FromString, SV.SerializeToString)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("demo.v1.DemoService", {"Echo": handler}),)
    )


async def closing():
    logging.getLogger("demo").info("shutdown hook ran")


async def create_server(settings):
    return build_server(settings, ServerSpec(
        service_names=["demo.v1.DemoService"],
        register=register,
        method_scopes={"/demo.v1.DemoService/Echo": "echo"},
        on_shutdown=[closing],
    ))


if __name__ == "__main__":
    run_service(DemoSettings, create_server)
"""


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _next_json(lines: queue.Queue[str], deadline: float) -> dict[str, Any]:
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        try:
            parsed: dict[str, Any] = json.loads(line)
            return parsed
        except ValueError:
            continue  # e.g. a warning printed by a library outside logging


def test_service_process_serves_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "demo_service.py"
    script.write_text(SERVICE_SCRIPT)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CROWD_", "OTEL_"))},
        "PYTHONPATH": str(REPO_ROOT),
        "CROWD_DEMO_API_KEYS": json.dumps({API_KEY: ["echo"]}),
    }
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--log-format", "json", "--log-level", "info"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    pump = threading.Thread(target=_pump, args=(proc.stderr, lines), daemon=True)
    pump.start()
    records: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 30
        while not records or not records[-1]["msg"].startswith("serving"):
            records.append(_next_json(lines, deadline))
        port = records[-1]["port"]

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(
                "/demo.v1.DemoService/Echo",
                wrappers_pb2.StringValue.SerializeToString,
                wrappers_pb2.StringValue.FromString,
            )
            reply = call(
                wrappers_pb2.StringValue(value="ping"),
                metadata=(("authorization", f"Bearer {API_KEY}"),),
                timeout=10,
            )
            assert reply.value == "ping"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    pump.join(timeout=10)  # the process has exited: its stderr is at EOF
    proc.stderr.close()
    while not lines.empty():
        line = lines.get_nowait()
        if line.startswith("{"):
            records.append(json.loads(line))
    messages = [r["msg"] for r in records]
    assert "termination signal received" in messages
    assert messages.index("shutdown hook ran") < messages.index("stopped")
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    assert API_KEY not in json.dumps(records)
