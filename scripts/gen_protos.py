#!/usr/bin/env python3
"""Generate Python code (messages, gRPC stubs, .pyi stubs) from protos/ into an output directory.

Usage:
    python scripts/gen_protos.py [OUT_DIR]          # default OUT_DIR: clients/python
    python scripts/gen_protos.py --check             # regenerate into a temp dir, compare

Run it with the project's venv interpreter (`make proto`): the exact grpcio-tools and mypy-protobuf
versions pinned in pyproject.toml are what make the output reproducible.

Generated files: `*_pb2.py`, `*_pb2.pyi`, `*_pb2_grpc.py`, `*_pb2_grpc.pyi` for every .proto under
protos/crowd, plus an empty `__init__.py` in each generated package directory that lacks one (an
existing `__init__.py`, e.g. clients/python/crowd/__init__.py, is never overwritten) and an empty
PEP 561 `py.typed` marker in clients/python/crowd if missing.

--check compares only generated files (the four suffixes above) under the proto packages, so
hand-written modules next to them (crowd/client.py, crowd/cli.py, ...) are ignored.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
# Only our own protos are compiled; imports of google/protobuf well-known types resolve through
# grpc_tools' bundled include directory.
PROTO_PACKAGE_DIR = PROTO_ROOT / "crowd"
DEFAULT_OUT = REPO_ROOT / "clients" / "python"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def find_protos() -> list[str]:
    """All .proto files under protos/crowd, as paths relative to protos/, sorted (deterministic)."""
    if not PROTO_PACKAGE_DIR.is_dir():
        return []
    return sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_PACKAGE_DIR.rglob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into out_dir; return the generated files (relative to out_dir), sorted."""
    try:
        from grpc_tools import protoc  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        sys.exit("grpc_tools is not installed: run `make venv` and use .venv/bin/python")

    protos = find_protos()
    if not protos:
        sys.exit(f"no .proto files found under {PROTO_PACKAGE_DIR}")

    out_dir.mkdir(parents=True, exist_ok=True)
    # grpc_tools ships the well-known types (google/protobuf/*.proto) next to the module.
    wkt_include = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT.relative_to(REPO_ROOT)}",
        f"-I{wkt_include}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(f"{PROTO_ROOT.relative_to(REPO_ROOT)}/{p}" for p in protos),
    ]
    # protoc resolves the mypy plugins (protoc-gen-mypy, protoc-gen-mypy_grpc) through PATH: put
    # the scripts directory of this interpreter (the venv's bin/) first.
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    if shutil.which("protoc-gen-mypy", path=env["PATH"]) is None:
        sys.exit("protoc-gen-mypy not found: install the dev extra (`make venv`)")

    # cwd = repo root, relative -I/-file paths: nothing machine-specific ends up in the output.
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    # mypy-protobuf reports every file it writes on stderr; keep only real diagnostics.
    noise = ("Writing mypy to ",)
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.strip() and not line.startswith(noise):
            print(line, file=sys.stderr)
    if proc.returncode != 0:
        sys.exit(f"protoc failed with exit code {proc.returncode}")

    generated = sorted(
        p.relative_to(out_dir)
        for p in out_dir.rglob("*")
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    )
    _ensure_init_files(out_dir, generated)
    return generated


def _ensure_init_files(out_dir: Path, generated: list[Path]) -> None:
    """Create an empty __init__.py in every package dir on the way to a generated file."""
    dirs: set[Path] = set()
    for rel in generated:
        parent = rel.parent
        while parent != Path("."):
            dirs.add(parent)
            parent = parent.parent
    for rel_dir in sorted(dirs):
        init = out_dir / rel_dir / "__init__.py"
        if not init.exists():
            init.write_text("")
    # PEP 561 marker: the top-level package ships .pyi stubs and inline types.
    for top in sorted({rel.parts[0] for rel in generated if len(rel.parts) > 1}):
        marker = out_dir / top / "py.typed"
        if not marker.exists():
            marker.write_text("")


def _generated_files(root: Path) -> set[Path]:
    """Generated files (by suffix) under the proto package dirs of root, relative to root."""
    base = root / "crowd"
    if not base.is_dir():
        return set()
    return {
        p.relative_to(root)
        for p in base.rglob("*")
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    }


def check(committed_dir: Path) -> int:
    """Regenerate into a temp dir and compare the generated files with committed_dir."""
    with tempfile.TemporaryDirectory(prefix="crowd-proto-check-") as tmp:
        fresh_dir = Path(tmp)
        generate(fresh_dir)
        fresh = _generated_files(fresh_dir)
        committed = _generated_files(committed_dir)
        problems: list[str] = []
        for rel in sorted(fresh - committed):
            problems.append(f"missing:  {committed_dir / rel}")
        for rel in sorted(committed - fresh):
            problems.append(f"orphaned: {committed_dir / rel} (no .proto generates it)")
        for rel in sorted(fresh & committed):
            if not filecmp.cmp(fresh_dir / rel, committed_dir / rel, shallow=False):
                problems.append(f"differs:  {committed_dir / rel}")
        # Every generated package must be importable as a regular package.
        for rel in sorted({r.parent for r in fresh}):
            parent = rel
            while parent != Path("."):
                if not (committed_dir / parent / "__init__.py").exists():
                    problems.append(f"missing:  {committed_dir / parent / '__init__.py'}")
                parent = parent.parent
        if problems:
            print("generated code is stale: run make proto", file=sys.stderr)
            for line in dict.fromkeys(problems):
                print("  " + line, file=sys.stderr)
            return 1
    print(f"generated code is up to date ({len(fresh)} files)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "out_dir", nargs="?", type=Path, default=DEFAULT_OUT, help="output root (clients/python)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="generate into a temp dir and fail if OUT_DIR's generated files differ",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir.resolve()
    if args.check:
        return check(out_dir)
    # Remove previously generated files first so a deleted/renamed .proto leaves no orphans.
    for rel in sorted(_generated_files(out_dir)):
        (out_dir / rel).unlink()
    files = generate(out_dir)
    print(f"generated {len(files)} files into {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
