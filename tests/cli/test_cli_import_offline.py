"""``crowd import`` without a server: a bad mapping is refused with every problem, an
unreachable server exits 3 and leaves no checkpoint; ``--json`` and ``import`` in the help."""

from __future__ import annotations

from pathlib import Path

from tests.cli.cli_runner import run_cli


def test_a_bad_mapping_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("id,total\na,1\n", encoding="utf-8")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("columns:\n  total: {name: t, type: money}\n", encoding="utf-8")
    ran = run_cli("import", str(source), "--mapping", str(mapping))
    assert ran.code == 1
    assert f"{mapping}: visitor.column: required" in ran.stderr
    assert f"{mapping}: columns.total.type: one of string, number" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_an_unreachable_server_exits_3_and_checkpoints_nothing(tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text('{"id": "a", "total": 1}\n', encoding="utf-8")
    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"visitor": {"column": "id"}}', encoding="utf-8")
    ran = run_cli("--profile", "127.0.0.1:1", "import", str(source), "-m", str(mapping))
    assert ran.code == 3
    assert ran.stderr.startswith("error: UNAVAILABLE: ")
    assert not (tmp_path / "rows.jsonl.checkpoint").exists()


def test_help_lists_import_and_the_json_flag() -> None:
    helped = run_cli("--help")
    assert helped.code == 0
    assert "import" in helped.stdout and "--json" in helped.stdout
    assert "--install-completion" in helped.stdout


def test_validate_json_gives_line_and_column_per_violation(tmp_path: Path) -> None:
    import json

    bad = tmp_path / "bad.yaml"
    bad.write_text("attributes:\n  - {id: a, scope: forever, type: number}\n", encoding="utf-8")
    ran = run_cli("defs", "validate", "--json", str(bad))
    assert ran.code == 1
    assert [json.loads(line) for line in ran.stdout.splitlines()] == [
        {
            "file": str(bad),
            "line": 2,
            "column": 20,
            "path": "attributes[0].scope",
            "message": 'unknown attribute scope "forever"; expected one of visit, visitor',
        }
    ]
