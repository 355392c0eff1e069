"""The ``crowd`` CLI (``python -m crowd``, a real subprocess) against a real profile server:
publish/get/validate --remote, track, profile, audience size, and failed calls (code,
message and field violations on stderr, exit 1, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

from service_common.server import ManagedServer
from tests.cli.cli_runner import EXAMPLE, cli_env, run_cli_async
from tests.profile_api.helpers import ADMIN_KEY, READ_KEY

BACK_REFERENCE = """\
attributes:
  - id: vip
    scope: visitor
    type: badge
    enrichments:
      - id: assign
        kind: assign_badge
        when: any_event
        rule:
          groups:
            - conditions:
                - {input: {event: q}, operator: matches_regex, value: {constant: '(a)\\1'}}
"""
PATTERN_PATH = (
    "attributes[0].enrichments[0].rule.groups[0].conditions[0].value.constant.string_value"
)


def env_for(server: ManagedServer, key: str = ADMIN_KEY) -> dict[str, str]:
    return cli_env(CROWD_PROFILE_TARGET=server.address, CROWD_API_KEY=key)


async def test_publish_get_track_profile_and_audience(profile_server: ManagedServer) -> None:
    env = env_for(profile_server)
    published = await run_cli_async("defs", "publish", str(EXAMPLE), env=env)
    assert published.code == 0, published.stderr
    version = json.loads(published.stdout)
    assert version["version"]

    current = await run_cli_async("definitions", "get", env=env)
    assert current.code == 0, current.stderr
    assert json.loads(current.stdout)["version"] == version["version"]

    tracked = await run_cli_async(
        "track", "visitor-1", "purchase", "--data", "order_total=600",
        "--data", "customer_id=cu-101",
        env=env,
    )  # fmt: skip
    assert tracked.code == 0, tracked.stderr
    result = json.loads(tracked.stdout)
    assert result["definitions_version"] == version["version"]

    profile = await run_cli_async("profile", "visitor-1", env=env)
    assert profile.code == 0, profile.stderr
    shown = json.loads(profile.stdout)
    assert "visitor-1" in shown["visitor_ids"]
    assert shown["identities"] == {"customer_id": "cu-101"}
    assert "lifetime_order_value" in shown["attributes"]

    size = await run_cli_async("audience", "size", "vip_cart_abandoners", env=env)
    assert size.code == 0, size.stderr
    assert json.loads(size.stdout) == {"audience_id": "vip_cart_abandoners", "size": 0}


async def test_validate_remote_lists_the_servers_errors(
    profile_server: ManagedServer, tmp_path: Path
) -> None:
    env = env_for(profile_server, READ_KEY)
    fine = await run_cli_async("defs", "validate", "--remote", str(EXAMPLE), env=env)
    assert fine.code == 0, fine.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(BACK_REFERENCE, encoding="utf-8")
    refused = await run_cli_async("defs", "validate", "--remote", str(bad), env=env)
    assert refused.code == 1
    assert refused.stdout.startswith(f"{bad}:12:82: {PATTERN_PATH}: invalid regular expression: ")
    assert "Traceback" not in refused.stderr


async def test_a_refused_publish_prints_code_message_and_violations(
    profile_server: ManagedServer, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BACK_REFERENCE, encoding="utf-8")
    refused = await run_cli_async("defs", "publish", str(bad), env=env_for(profile_server))
    assert refused.code == 1
    lines = refused.stderr.splitlines()
    assert lines[0].startswith("error: INVALID_ARGUMENT: ")
    assert any(line.strip().startswith(f"definitions.{PATTERN_PATH}: ") for line in lines[1:])
    assert "Traceback" not in refused.stderr
    assert refused.stdout == ""


async def test_a_wrong_key_exits_3(profile_server: ManagedServer) -> None:
    denied = await run_cli_async(
        "profile", "visitor-1", env=env_for(profile_server, "not-a-key-of-this-server")
    )
    assert denied.code == 3
    assert denied.stderr.startswith("error: UNAUTHENTICATED: ")
    assert "not-a-key-of-this-server" not in denied.stderr
    assert "Traceback" not in denied.stderr
