"""Every ``crowd`` command driven in process (typer's ``CliRunner``) against real servers: a
profile and a dispatch service on port 0 with their /metrics on, delivering to the Braze
sandbox over real HTTP. The subprocess tests (tests/cli, tests/profile_api/test_api_cli*)
keep covering the installed entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from braze_sandbox import BrazeSandbox
from tests.cli.cli_runner import EXAMPLE
from tests.cli.in_process import invoke, invoke_sync
from tests.metrics.conftest import Stack

# The metrics suite's `stack` fixture (profile + dispatch + sandbox, /metrics on), re-exported.
from tests.metrics.conftest import stack as stack
from tests.profile_api.helpers import ADMIN_KEY, DISPATCH_KEY, READ_KEY, wait_for
from tests.profile_api.shop import VIP_ACTION, VIPS, shop_document

VISITOR = "cli-shopper"


def shop_file(tmp_path: Path, threshold: int = 500) -> Path:
    """The seed, the audience ``vips`` (VIP badge) and a Braze action when it is joined."""
    document = shop_document()
    text = yaml.safe_dump(document, sort_keys=False)
    text = text.replace("constant: 500", f"constant: {threshold}")
    path = tmp_path / f"shop-{threshold}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def env_for(stack: Stack, key: str = ADMIN_KEY) -> dict[str, str]:
    return {
        "CROWD_PROFILE_TARGET": stack.profile.address,
        "CROWD_DISPATCH_TARGET": stack.dispatch.address,
        "CROWD_API_KEY": key,
    }


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_version_help_and_offline_validation(tmp_path: Path) -> None:
    version = invoke_sync("--version")
    assert version.code == 0 and version.stdout.startswith("crowd ")
    helped = invoke_sync("--help")
    assert helped.code == 0
    for command in ("defs", "track", "profile", "trace", "import", "stats", "backfill"):
        assert command in helped.stdout
    assert invoke_sync("defs", "validate", str(EXAMPLE)).code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("audiences:\n  - id: a\n    expression: {}\n", encoding="utf-8")
    refused = invoke_sync("defs", "validate", str(bad))
    assert refused.code == 1
    assert refused.stdout.startswith(f"{bad}:3:17: audiences[0].expression: ")
    assert invoke_sync("track").code == 2  # usage error


async def test_definitions_commands(stack: Stack, tmp_path: Path) -> None:
    env = env_for(stack)
    shop = shop_file(tmp_path)
    remote = await invoke("defs", "validate", "--remote", str(shop), env=env_for(stack, READ_KEY))
    assert remote.code == 0, remote.stderr

    published = await invoke("--json", "defs", "publish", str(shop), env=env)
    assert published.code == 0, published.stderr
    version = json.loads(published.stdout)["version"]
    got = await invoke("--json", "definitions", "get", env=env)
    assert json.loads(got.stdout)["version"] == version

    unchanged = await invoke("--json", "defs", "diff", str(shop), env=env)
    assert (unchanged.code, unchanged.stdout) == (0, "")
    diff = await invoke("--json", "defs", "diff", str(shop_file(tmp_path, 900)), env=env)
    assert diff.code == 0, diff.stderr
    assert json_lines(diff.stdout) == [
        {"collection": "attributes", "id": "vip", "change": "changed", "fields": ["enrichments"]}
    ]

    events = tmp_path / "events.jsonl"
    events.write_text(
        json.dumps({"visitor_id": "try-me", "name": "purchase", "data": {"order_total": 600}})
        + "\n",
        encoding="utf-8",
    )
    tried = await invoke("--json", "defs", "try", str(shop), str(events), env=env)
    assert tried.code == 0, tried.stderr
    (result,) = json_lines(tried.stdout)
    assert "vip" in result["badges_assigned"]
    assert VIPS in result["audiences_joined"]
    missing = await invoke("profile", "try-me", env=env)  # try wrote nothing
    assert missing.code == 1 and "NOT_FOUND" in missing.stderr

    backfill = await invoke("--json", "backfill", "status", env=env)
    assert backfill.code == 0, backfill.stderr
    assert json.loads(backfill.stdout)["state"] in {"idle", "running", "done"}


async def test_event_profile_audience_trace_and_action_commands(
    stack: Stack, sandbox: BrazeSandbox, tmp_path: Path
) -> None:
    env = env_for(stack)
    assert (await invoke("defs", "publish", str(shop_file(tmp_path)), env=env)).code == 0

    tracked = await invoke(
        "--json", "track", VISITOR, "purchase",
        "--data", "order_total=750", "--data", "customer_id=cust-cli",
        env=env,
    )  # fmt: skip
    assert tracked.code == 0, tracked.stderr
    fired = json.loads(tracked.stdout)["actions_fired"]
    assert [a["action_id"] for a in fired] == [VIP_ACTION]
    key = fired[0]["idempotency_key"]
    ops = env_for(stack, DISPATCH_KEY)  # the actions commands talk to the dispatch service

    shown = await invoke("--json", "profile", VISITOR, env=env)
    assert json.loads(shown.stdout)["identities"] == {"customer_id": "cust-cli"}
    pretty = await invoke("-o", "pretty", "profile", VISITOR, env=env)
    assert pretty.code == 0 and "lifetime_order_value" in pretty.stdout

    size = await invoke("--json", "audience", "size", VIPS, env=env)
    assert json.loads(size.stdout) == {"audience_id": VIPS, "size": 1}
    members = await invoke("--json", "audience", "members", VIPS, env=env)
    assert members.code == 0, members.stderr
    assert VISITOR in members.stdout

    traced = await invoke("--json", "trace", VISITOR, "--limit", "2", env=env)
    assert traced.code == 0, traced.stderr
    entries = json_lines(traced.stdout)
    assert len(entries) == 2 and entries[0]["kind"] == "TRACE_ENTRY_KIND_EVENT_RECEIVED"

    async def delivered() -> dict[str, Any] | None:
        ran = await invoke("--json", "actions", "get", key, env=ops)
        if ran.code != 0:  # not handed over to the dispatch service yet
            assert "NOT_FOUND" in ran.stderr
            return None
        status: dict[str, Any] = json.loads(ran.stdout)
        return status if status.get("state") == "ACTION_STATE_DELIVERED" else None

    await wait_for(delivered, "the VIP action to be delivered")
    failed = await invoke("--json", "actions", "failed", env=ops)
    assert (failed.code, failed.stdout) == (0, "")
    retried = await invoke("--json", "actions", "retry", key, env=ops)
    assert retried.code == 0, retried.stderr
    assert not json.loads(retried.stdout).get("requeued")  # delivered: nothing to requeue
    assert (await invoke("actions", "retry", env=ops)).code == 2  # no keys, no --all

    unbound = await invoke("cohort", "resync", VIPS, env=env)
    assert unbound.code == 1 and unbound.stderr.startswith("error: ")
    assert "Traceback" not in unbound.stderr

    deleted = await invoke("--json", "delete", VISITOR, env=env)
    assert deleted.code == 0, deleted.stderr
    gone = await invoke("profile", VISITOR, env=env)
    assert gone.code == 1 and "NOT_FOUND" in gone.stderr

    denied = await invoke("profile", VISITOR, env=env_for(stack, "not-a-key"))
    assert denied.code == 3 and denied.stderr.startswith("error: UNAUTHENTICATED")


async def test_import_and_stats(stack: Stack, tmp_path: Path) -> None:
    env = env_for(stack)
    assert (await invoke("defs", "publish", str(shop_file(tmp_path)), env=env)).code == 0
    source = tmp_path / "orders.csv"
    source.write_text("customer,total\ncust-i,10\ncust-i,not-a-number\ncust-i,5\n", "utf-8")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "event: purchase\nvisitor: {column: customer, attribute: customer_id}\n"
        "columns:\n  total: {name: order_total, type: number}\n",
        encoding="utf-8",
    )
    imported = await invoke("--json", "import", str(source), "--mapping", str(mapping), env=env)
    assert imported.code == 1, imported.stderr  # a bad row: reported, the good rows kept
    summary = json_lines(imported.stdout)[-1]
    assert (summary["imported"], summary["complete"]) == (2, True)
    assert f"{source}:3: total: not a number: 'not-a-number'" in imported.stderr
    shown = await invoke(
        "--json", "profile", "--attribute", "customer_id", "--value", "cust-i", env=env
    )  # fmt: skip
    assert shown.code == 0, shown.stderr
    value = json.loads(shown.stdout)["attributes"]["lifetime_order_value"]
    assert value == {"number_value": 15.0}

    urls = [
        "--profile-metrics", f"http://127.0.0.1:{stack.profile_port}/metrics",
        "--dispatch-metrics", f"http://127.0.0.1:{stack.dispatch_port}/metrics",
    ]  # fmt: skip
    stats = await invoke("stats", "--once", "--json", *urls)
    assert stats.code == 0, stats.stderr
    snapshot = json.loads(stats.stdout)
    assert set(snapshot["queue_depth"]) == {"actions", "cohorts"}
    assert snapshot["events_ingested"] >= 2
    # The stack is shared with the metrics tests (which suppress actions): a count, not 0.
    assert isinstance(snapshot["actions_suppressed"], float | int)
    assert set(snapshot["backfill"]) == {
        "running", "partitions_done", "partitions_total", "profiles_scanned", "joins_found"
    }  # fmt: skip
    screen = await invoke("-o", "pretty", "stats", "--once", *urls)
    assert screen.code == 0
    for row in ("queue actions", "braze requests", "actions suppressed", "backfill"):
        assert row in screen.stdout
    down = await invoke("stats", "--once", "--profile-metrics", "http://127.0.0.1:9/metrics")
    assert down.code == 3
