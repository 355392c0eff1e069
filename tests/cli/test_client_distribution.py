"""The client is its own distribution: ``pip install clients/python`` into a fresh virtualenv
(no system site packages) gives a working ``crowd`` without any service code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.cli_runner import EXAMPLE, REPO, cli_env

pytestmark = pytest.mark.slow


def run(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client-venv")
    # Build from a copy: pip's in-tree build would leave build/ and *.egg-info in the repo
    # (and parallel runs would share them).
    source = root / "src"
    shutil.copytree(
        REPO / "clients" / "python",
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    venv = root / "venv"
    made = run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    installed = run(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "-q",
        source,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    return venv


def test_the_installed_cli_works_without_the_services(client_venv: Path, tmp_path: Path) -> None:
    crowd = client_venv / "bin" / "crowd"
    helped = run(crowd, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "defs" in helped.stdout and "track" in helped.stdout

    version = run(crowd, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "crowd 0.1.0"

    valid = run(crowd, "defs", "validate", EXAMPLE)
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.strip() == f"{EXAMPLE}: valid"

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("attributes:\n  - {id: Bad Id, scope: visitor, type: number}\n")
    refused = run(crowd, "defs", "validate", invalid)
    assert refused.returncode == 1
    assert refused.stdout.startswith(f'{invalid}:2:10: attributes[0].id: the id "Bad Id" is not')
    assert "Traceback" not in refused.stderr


def test_no_service_code_is_importable(client_venv: Path) -> None:
    probe = (
        "import importlib.util, crowd.client, crowd.definitions.validator, crowd.cli\n"
        "for name in ('profile_service', 'dispatch_service', 'service_common'):\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
        "print('ok')\n"
    )
    # From a neutral directory: the repository root on sys.path would find the services.
    checked = subprocess.run(
        [str(client_venv / "bin" / "python"), "-I", "-c", probe],
        capture_output=True,
        text=True,
        cwd=client_venv,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "ok"
