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
