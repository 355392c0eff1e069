"""``crowd trace`` (a real subprocess) against a real profile server: one readable line per
entry with its kind, JSON lines with --json; Ctrl-C (a real SIGINT) ends it quietly."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from crowd.client import CrowdClient
from crowd.definitions.loader import load_definitions_file
from service_common.server import ManagedServer
from tests.cli.cli_runner import EXAMPLE, cli_env, run_cli_async
from tests.profile_api.helpers import READ_KEY


async def follow_until(args: list[str], env: dict[str, str], needle: str) -> tuple[str, int]:
    """Run ``crowd ARGS``, read stdout until a line holds ``needle``, then SIGINT it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crowd", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    seen: list[str] = []

    async def read() -> None:
        assert process.stdout is not None
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "the trace ended before the expected entry"
            seen.append(line)
            if needle in line:
                return

    await asyncio.wait_for(read(), timeout=30)
    process.send_signal(signal.SIGINT)
    stderr = await asyncio.wait_for(process.stderr.read(), timeout=30)
    code = await asyncio.wait_for(process.wait(), timeout=30)
    assert "Traceback" not in stderr.decode()
    return "".join(seen), code


async def test_trace_lines_are_readable_and_json_parses(
    profile_server: ManagedServer, client: CrowdClient
) -> None:
    await client.publish_definitions(load_definitions_file(EXAMPLE))
    await client.track_event("trace-cli", "purchase", {"order_total": 600.0, "customer_id": "t"})
    env = cli_env(CROWD_PROFILE_TARGET=profile_server.address, CROWD_API_KEY=READ_KEY)

    pretty, code = await follow_until(
        ["-o", "pretty", "trace", "trace-cli"], env, "attributes_changed"
    )
    assert code == 0
    lines = pretty.splitlines()
    assert lines[0].split()[1:3] == ["event_received", "event"]
    assert any(line.split()[1] == "new_visitor" for line in lines)

    raw, _ = await follow_until(["--json", "trace", "trace-cli"], env, "ATTRIBUTES_CHANGED")
    kinds = [json.loads(line)["kind"] for line in raw.splitlines()]
    assert kinds[0] == "TRACE_ENTRY_KIND_EVENT_RECEIVED"
    assert "TRACE_ENTRY_KIND_ATTRIBUTES_CHANGED" in kinds


async def test_profile_shows_tables_on_a_terminal_and_json_otherwise(
    profile_server: ManagedServer, client: CrowdClient
) -> None:
    await client.publish_definitions(load_definitions_file(EXAMPLE))
    await client.track_event(
        "table-cli", "purchase", {"order_total": 600.0, "customer_id": "cust-t2"}
    )
    env = cli_env(CROWD_PROFILE_TARGET=profile_server.address, CROWD_API_KEY=READ_KEY)
    pretty = await run_cli_async("-o", "pretty", "profile", "table-cli", env=env)
    assert pretty.code == 0, pretty.stderr
    assert "attributes" in pretty.stdout
    row = next(line for line in pretty.stdout.splitlines() if "lifetime_order_value" in line)
    assert "600" in row
    assert "vip" in next(line for line in pretty.stdout.splitlines() if "badges" in line)

    machine = await run_cli_async("--json", "profile", "table-cli", env=env)
    assert machine.code == 0, machine.stderr
    assert json.loads(machine.stdout)["identities"] == {"customer_id": "cust-t2"}
