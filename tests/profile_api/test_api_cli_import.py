"""``crowd import`` (a real subprocess) against a real profile server: an interrupted import
resumed from its checkpoint applies every row once, a replay without the checkpoint is all
duplicates, bad rows are reported with their line numbers and the good rows are imported."""

from __future__ import annotations

import json
from pathlib import Path

from crowd.client import CrowdClient
from crowd.definitions.loader import load_definitions_file
from service_common.server import ManagedServer
from tests.cli.cli_runner import EXAMPLE, cli_env, run_cli_async
from tests.profile_api.helpers import ADMIN_KEY

MAPPING = """\
event: purchase
visitor: {column: customer, attribute: customer_id}
columns:
  total: {name: order_total, type: number}
  tags: {name: tags, type: string_list}
"""


def write_inputs(tmp_path: Path, rows: list[str]) -> tuple[Path, Path]:
    source = tmp_path / "orders.csv"
    source.write_text("customer,total,tags\n" + "".join(f"{row}\n" for row in rows), "utf-8")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    return source, mapping


def read_checkpoint(source: Path) -> dict[str, object]:
    saved = json.loads(source.with_name(source.name + ".checkpoint").read_text(encoding="utf-8"))
    assert isinstance(saved, dict)
    return saved


async def lifetime_value(client: CrowdClient, customer: str) -> float:
    found = await client.get_profile(attribute_id="customer_id", value=customer)
    return found.attributes["lifetime_order_value"].number_value


async def test_interrupted_import_resumes_and_applies_every_row_once(
    profile_server: ManagedServer, client: CrowdClient, tmp_path: Path
) -> None:
    await client.publish_definitions(load_definitions_file(EXAMPLE))
    source, mapping = write_inputs(tmp_path, [f"cust-r,{n},[]" for n in range(1, 26)])
    env = cli_env(CROWD_PROFILE_TARGET=profile_server.address, CROWD_API_KEY=ADMIN_KEY)
    args = ("import", str(source), "--mapping", str(mapping), "--chunk-size", "4")

    first = await run_cli_async(*args, "--stop-after-chunks", "3", env=env)
    assert first.code == 0, first.stderr
    stopped = json.loads(first.stdout)
    assert (stopped["imported"], stopped["complete"]) == (12, False)
    saved = read_checkpoint(source)
    assert saved["line"] == 13  # the header is line 1
    assert await lifetime_value(client, "cust-r") == sum(range(1, 13))

    resumed = await run_cli_async(*args, env=env)
    assert resumed.code == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["skipped_lines"] == 12
    assert (summary["imported"], summary["duplicates"], summary["complete"]) == (13, 0, True)
    assert await lifetime_value(client, "cust-r") == sum(range(1, 26))

    # Without the checkpoint every record id is known to the server: nothing applies twice.
    replay = await run_cli_async(*args, "--checkpoint", str(tmp_path / "other.ckpt"), env=env)
    assert replay.code == 0, replay.stderr
    assert (json.loads(replay.stdout)["imported"], json.loads(replay.stdout)["duplicates"]) == (
        0,
        25,
    )
    assert await lifetime_value(client, "cust-r") == sum(range(1, 26))


async def test_bad_rows_are_reported_by_line_and_good_rows_imported(
    profile_server: ManagedServer, client: CrowdClient, tmp_path: Path
) -> None:
    await client.publish_definitions(load_definitions_file(EXAMPLE))
    source, mapping = write_inputs(
        tmp_path,
        ["cust-b,10,[]", "cust-b,ten,[]", ",5,[]", 'cust-b,7,"[""a"",""b""]"', "cust-b,3,{}"],
    )
    errors = tmp_path / "errors.csv"
    env = cli_env(CROWD_PROFILE_TARGET=profile_server.address, CROWD_API_KEY=ADMIN_KEY)
    ran = await run_cli_async(
        "import", str(source), "-m", str(mapping), "--errors", str(errors), env=env
    )
    assert ran.code == 1
    assert json.loads(ran.stdout)["imported"] == 2
    assert f"{source}:3: total: not a number: 'ten'" in ran.stderr
    assert f"{source}:4: customer: the visitor id is empty" in ran.stderr
    assert f"{source}:6: tags: not a JSON array" in ran.stderr
    assert "Traceback" not in ran.stderr
    report = errors.read_text(encoding="utf-8").splitlines()
    assert [line.split(",")[0] for line in report] == ["line", "3", "4", "6"]
    assert await lifetime_value(client, "cust-b") == 17.0
    found = await client.get_profile(attribute_id="customer_id", value="cust-b")
    assert found.visitor_ids  # the profile exists; _source_file rode on each event's data
