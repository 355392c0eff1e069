"""``crowd defs diff`` and ``crowd defs try`` (a real subprocess) against a real profile
server."""

from __future__ import annotations

import json
from pathlib import Path

from crowd.client import CrowdClient
from crowd.definitions.loader import load_definitions_file
from service_common.server import ManagedServer
from tests.cli.cli_runner import EXAMPLE, cli_env, run_cli_async
from tests.profile_api.helpers import READ_KEY


def edited_example(tmp_path: Path) -> Path:
    """The seed example with the VIP threshold raised, the feed removed and an attribute added."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "{constant: 500}" in text
    text = text.replace("{constant: 500}", "{constant: 900}")
    head, feeds = text.split("event_feeds:\n")
    _, actions = feeds.split("actions:\n")
    head = head.replace(
        "attributes:\n",
        "attributes:\n  - {id: favourite_colour, scope: visitor, type: string}\n",
        1,
    )
    edited = tmp_path / "edited.yaml"
    edited.write_text(head + "actions:\n" + actions, encoding="utf-8")
    return edited


async def test_diff_lists_added_removed_and_changed(
    profile_server: ManagedServer, client: CrowdClient, tmp_path: Path
) -> None:
    env = cli_env(CROWD_PROFILE_TARGET=profile_server.address, CROWD_API_KEY=READ_KEY)
    before = await run_cli_async("--json", "defs", "diff", str(EXAMPLE), env=env)
    assert before.code == 0, before.stderr  # nothing published: everything is added
    assert {"collection": "attributes", "id": "vip", "change": "added", "fields": []} in [
        json.loads(line) for line in before.stdout.splitlines()
    ]

    await client.publish_definitions(load_definitions_file(EXAMPLE))
    same = await run_cli_async("--json", "defs", "diff", str(EXAMPLE), env=env)
    assert (same.code, same.stdout) == (0, "")

    edited = edited_example(tmp_path)
    ran = await run_cli_async("defs", "diff", "--json", str(edited), env=env)
    assert ran.code == 0, ran.stderr
    changes = [json.loads(line) for line in ran.stdout.splitlines()]
    assert {
        "collection": "attributes",
        "id": "favourite_colour",
        "change": "added",
        "fields": [],
    } in changes
    assert {
        "collection": "attributes",
        "id": "vip",
        "change": "changed",
        "fields": ["enrichments"],
    } in changes
    assert [c["change"] for c in changes if c["collection"] == "event_feeds"] == ["removed"]
    assert len(changes) == 3

    pretty = await run_cli_async("-o", "pretty", "defs", "diff", str(edited), env=env)
    assert pretty.code == 0, pretty.stderr
    for word in ("favourite_colour", "added", "vip", "changed", "removed", "enrichments"):
        assert word in pretty.stdout


PURCHASES = [
    {"visitor_id": "try-1", "name": "purchase", "data": {"order_total": 300, "customer_id": "c-9"}},
    {"visitor_id": "try-1", "name": "purchase", "data": {"order_total": 300}},
    {"visitor_id": "try-2", "name": "page_view"},
]


async def test_try_reports_each_event_and_writes_nothing(
    profile_server: ManagedServer, client: CrowdClient, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in PURCHASES), encoding="utf-8")
    env = cli_env(CROWD_PROFILE_TARGET=profile_server.address, CROWD_API_KEY=READ_KEY)

    ran = await run_cli_async("--json", "defs", "try", str(EXAMPLE), str(events), env=env)
    assert ran.code == 0, ran.stderr
    results = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [r.get("index", 0) for r in results] == [0, 1, 2]
    first, second, third = results
    assert first["new_visitor"] is True
    changed = {c["attribute_id"]: c["value"] for c in second["changed_attributes"]}
    assert changed["lifetime_order_value"] == {"number_value": 600.0}
    assert "vip" in second["badges_assigned"]  # over 500 on the second purchase
    assert "badges_assigned" not in first
    assert third["new_visitor"] is True  # each visitor id starts fresh

    pretty = await run_cli_async("-o", "pretty", "defs", "try", str(EXAMPLE), str(events), env=env)
    assert pretty.code == 0, pretty.stderr
    assert "#2 try-1 purchase" in pretty.stdout
    assert "attribute lifetime_order_value = 600" in pretty.stdout
    assert "+ badge vip" in pretty.stdout

    # Nothing was stored: no profile, no published version.
    missing = await run_cli_async("profile", "try-1", env=env)
    assert missing.code == 1 and "NOT_FOUND" in missing.stderr
    assert (await run_cli_async("defs", "get", env=env)).code == 1


async def test_try_refuses_bad_definitions_and_bad_events(
    profile_server: ManagedServer, tmp_path: Path
) -> None:
    env = cli_env(CROWD_PROFILE_TARGET=profile_server.address, CROWD_API_KEY=READ_KEY)
    events = tmp_path / "events.jsonl"
    events.write_text('{"visitor_id": "", "name": "x"}\n', encoding="utf-8")
    empty_visitor = await run_cli_async("defs", "try", str(EXAMPLE), str(events), env=env)
    assert empty_visitor.code == 1
    assert empty_visitor.stderr.startswith("error: INVALID_ARGUMENT: ")
    assert "events[0].visitor_id: is required" in empty_visitor.stderr

    events.write_text('{"visitor_id": "v", "name": "x"}\nnot json\n', encoding="utf-8")
    bad_line = await run_cli_async("defs", "try", str(EXAMPLE), str(events), env=env)
    assert bad_line.code == 1
    assert f"{events}:2: " in bad_line.stderr
    assert "Traceback" not in bad_line.stderr


async def test_try_definitions_rpc_bounds_and_validation(client: CrowdClient) -> None:
    import grpc
    import pytest

    from crowd.client import make_event, violations
    from crowd.profile.v1 import definitions_pb2

    too_many = [make_event("v", "e") for _ in range(1001)]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.try_definitions(load_definitions_file(EXAMPLE), too_many)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations(raised.value) == [("events", "must contain at most 1000 events")]

    bad = definitions_pb2.Definitions()
    bad.attributes.add(id="Bad Id")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.try_definitions(bad, [make_event("v", "e")])
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert any(f.startswith("definitions.attributes[0]") for f, _ in violations(raised.value))
