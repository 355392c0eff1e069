"""The package boundaries of docs/architecture.md hold: `lint-imports` keeps every contract."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

EXPECTED_CONTRACTS = {
    "clients-import-no-service",
    "services-independent",
    "shared-layer-imports-no-service",
    "sandbox-standalone",
    "services-do-not-import-sandbox",
    "no-cycles",
}


def test_pyproject_declares_every_boundary_contract() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert {c["id"] for c in config["contracts"]} == EXPECTED_CONTRACTS
    assert set(config["root_packages"]) == {
        "crowd",
        "profile_service",
        "dispatch_service",
        "service_common",
        "braze_sandbox",
    }


def test_lint_imports_keeps_every_contract() -> None:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
