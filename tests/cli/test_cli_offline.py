"""The ``crowd`` CLI without a server: offline validation, exit codes, usage errors, --version,
a closed pipe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli.cli_runner import CONSOLE_SCRIPT, EXAMPLE, cli_env, run_cli

INVALID = """\
attributes:
  - id: total
    scope: visitor
    type: number
    enrichments:
      - id: add
        kind: increment
        when: any_event
        operands: [{attribute: no_such_attribute}]
  - id: total
    scope: visitor
    type: number
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("group", ["defs", "definitions"])
def test_a_valid_example_validates_offline(group: str) -> None:
    ran = run_cli(group, "validate", str(EXAMPLE))
    assert ran.code == 0, ran.stderr
    assert ran.stdout.strip() == f"{EXAMPLE}: valid"


def test_an_invalid_document_lists_each_problem_once_and_exits_1(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", INVALID)
    ran = run_cli("defs", "validate", str(bad))
    assert ran.code == 1
    assert sorted(ran.stdout.splitlines()) == [
        f'{bad}:10:9: attributes[1].id: id "total" is already used by attributes[0]',
        f"{bad}:9:32: attributes[0].enrichments[0].operands[0].attribute: "
        'unknown attribute "no_such_attribute"',
    ]
    assert "2 error(s)" in ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout


def test_a_bad_enum_value_is_a_violation_not_a_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path, "enum.yaml", "attributes:\n  - {id: a, scope: forever, type: number}\n")
    ran = run_cli("defs", "validate", str(bad))
    assert ran.code == 1
    assert ran.stdout.splitlines() == [
        f"{bad}:2:20: attributes[0].scope: "
        'unknown attribute scope "forever"; expected one of visit, visitor'
    ]
    assert "Traceback" not in ran.stderr


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    ran = run_cli("defs", "validate", str(write(tmp_path, "syntax.yaml", "attributes: [\n  - a\n")))
    assert ran.code == 1
    assert ran.stdout.startswith("YAML syntax error at line 2, column 3: ")
    assert len(ran.stdout.splitlines()) == 1
    assert "Traceback" not in ran.stderr


def test_regex_patterns_re2_cannot_compile_are_refused_offline(tmp_path: Path) -> None:
    document = INVALID.split("  - id: total\n    scope: visitor\n    type: number\n")[0]
    document += """\
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
    ran = run_cli("defs", "validate", str(write(tmp_path, "regex.yaml", document)))
    assert ran.code == 1
    assert (
        f"{tmp_path / 'regex.yaml'}:12:82: "
        "attributes[0].enrichments[0].rule.groups[0].conditions[0].value.constant.string_value: "
        "invalid regular expression: invalid escape sequence: \\1 "
        "(RE2 does not support back-references)"
    ) in ran.stdout.splitlines()


def test_a_missing_file_exits_1_without_traceback(tmp_path: Path) -> None:
    ran = run_cli("defs", "validate", str(tmp_path / "absent.yaml"))
    assert ran.code == 1
    assert "cannot read" in ran.stdout
    assert "Traceback" not in ran.stderr


def test_version_and_help() -> None:
    version = run_cli("--version")
    assert version.code == 0
    assert version.stdout.startswith("crowd ")
    helped = run_cli("--help")
    assert helped.code == 0
    for command in ("track", "profile", "delete", "trace", "defs", "definitions", "audience"):
        assert command in helped.stdout
    assert "actions" in helped.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["defs", "validate"],
        ["defs", "validate", "a.yaml", "--no-such-option"],
        ["track", "visitor-1", "view", "--data", "no-equals-sign"],
        ["track", "visitor-1", "view", "--json", "[1, 2]"],
        ["--output", "xml", "defs", "get"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    ran = run_cli(*args)
    assert ran.code == 2, (ran.stdout, ran.stderr)
    assert "Traceback" not in ran.stderr


def test_an_unavailable_server_exits_3_with_the_code_and_no_traceback() -> None:
    # Nothing listens on port 1: the call fails with UNAVAILABLE.
    ran = run_cli("--profile", "127.0.0.1:1", "audience", "size", "vips")
    assert ran.code == 3
    assert ran.stderr.startswith("error: UNAVAILABLE: ")
    assert "Traceback" not in ran.stderr


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # Far more output than a pipe buffers, read by `head -n 1`, which then exits.
    attributes = "".join(
        f"  - {{id: attribute_{n}, scope: nowhere, type: nothing}}\n" for n in range(1500)
    )
    big = write(tmp_path, "big.yaml", "attributes:\n" + attributes)
    script = f'set -o pipefail; "{CONSOLE_SCRIPT}" defs validate "{big}" | head -n 1'
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=cli_env(), timeout=60
    )
    assert done.stdout.startswith(f"{big}:2:30: attributes[0].")
    assert len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert "Broken pipe" not in done.stderr
    assert done.returncode == 0


def test_the_clients_load_definitions_file_reads_the_friendly_form() -> None:
    from crowd.client import load_definitions_file

    definitions = load_definitions_file(EXAMPLE)  # "30m", short enum names
    assert definitions.settings.visit_timeout.seconds == 30 * 60
    assert definitions.attributes[0].id == "customer_id"
