"""The demo runner (`python -m demo`, `make run`) as a production tool: every stop signal stops
every process it started, a child that dies ends the run with one line naming it, no child
outlives a killed runner, and no secret is on any command line.

Each test runs the real runner (real redis-server, sandbox and both services) on free ports with
its own run dir, and checks the processes through the pid files it writes and /proc.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILDREN = ("redis", "braze-sandbox", "dispatch", "profile")
STACK_UP = "== stack up"
"""Printed once every child serves (the demo scenario then starts)."""
START_WITHIN_S = 120.0
STOP_WITHIN_S = 90.0
"""Each child may take its grace period (15 s) to stop, one after the other."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@dataclass(frozen=True)
class ProcessIdentity:
    """A pid and its start time (so that a reused pid is not taken for the same process)."""

    pid: int
    start_time: str

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        stat = _stat_fields(pid)
        assert stat is not None, f"pid {pid} is not running"
        return cls(pid, stat[19])

    def is_gone(self) -> bool:
        """No such process, not even a zombie waiting to be reaped."""
        stat = _stat_fields(self.pid)
        return stat is None or stat[19] != self.start_time


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from the field after the command name on (state, ppid, ...)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _await(condition: Callable[[], bool], what: str, within_s: float, runner: Runner) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{runner.output()}")
        time.sleep(0.1)


@dataclass
class Runner:
    """One runner process (``python -m demo`` or ``make run``) with its own run dir."""

    popen: subprocess.Popen[bytes]
    run_dir: Path
    stdout_path: Path
    stderr_path: Path
    seen: dict[str, ProcessIdentity] = field(default_factory=dict)
    """Every process recorded in a pid file (the runner itself as "demo")."""

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout\n{self.stdout()}\n--- stderr\n{self.stderr()}"

    def wait_until_stack_up(self) -> dict[str, ProcessIdentity]:
        """Wait until every child serves; record each pid file's process."""

        def up() -> bool:
            assert self.popen.poll() is None, f"the runner exited early\n{self.output()}"
            return STACK_UP in self.stdout()

        _await(up, "the stack to come up", START_WITHIN_S, self)
        for name in ("demo", *CHILDREN):
            pid = int((self.run_dir / f"{name}.pid").read_text())
            self.seen[name] = ProcessIdentity.of(pid)
        return self.seen

    def wait_exit(self) -> int:
        try:
            return self.popen.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the runner did not exit\n{self.output()}")

    def still_running(self) -> list[str]:
        return [name for name, identity in self.seen.items() if not identity.is_gone()]


@pytest.fixture
def start_runner(tmp_path: Path) -> Iterator[Callable[..., Runner]]:
    runners: list[Runner] = []

    def start(*argv: str) -> Runner:
        run_dir = tmp_path / f"run{len(runners)}"
        # Nothing of an outer `make test` (jobserver descriptors) or of the caller's own
        # services and tracing leaks into the stack.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CROWD_", "OTEL_", "BRAZE_SANDBOX_"))
            and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
        }
        env |= {"CROWD_DEMO_RUN_DIR": str(run_dir), "PYTHONUNBUFFERED": "1"}
        stdout_path, stderr_path = tmp_path / f"out{len(runners)}", tmp_path / f"err{len(runners)}"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            popen = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                # Like a runner started from another terminal: only what the test sends reaches it.
                start_new_session=True,
            )
        runner = Runner(popen, run_dir, stdout_path, stderr_path)
        runners.append(runner)
        return runner

    yield start
    for runner in runners:  # a failed test must not leave its stack running
        if runner.popen.poll() is None:
            runner.popen.kill()
            runner.popen.wait()
        for identity in runner.seen.values():
            if not identity.is_gone():
                os.kill(identity.pid, signal.SIGKILL)


def _assert_no_secret_on_a_command_line(runner: Runner) -> None:
    api_key = (runner.run_dir / "api-key").read_text()
    sandbox_pid = runner.seen["braze-sandbox"].pid
    environ = Path(f"/proc/{sandbox_pid}/environ").read_bytes().split(b"\0")
    sandbox_keys = next(v for v in environ if v.startswith(b"BRAZE_SANDBOX_API_KEYS="))
    braze_key = sandbox_keys.partition(b"=")[2].partition(b":")[0].decode()
    assert len(api_key) >= 16 and len(braze_key) >= 16
    for name, identity in runner.seen.items():
        argv = Path(f"/proc/{identity.pid}/cmdline").read_bytes().decode()
        for secret in (api_key, braze_key):
            assert secret not in argv, f"a key is on the command line of {name}"
        assert "--api-key" not in argv
    assert api_key not in runner.stdout() and braze_key not in runner.stdout()
    assert (runner.run_dir / "api-key").stat().st_mode & 0o077 == 0, "owner-only key file"


STOP_SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]


@pytest.mark.parametrize("stop_signal", STOP_SIGNALS, ids=lambda s: s.name)
def test_a_stop_signal_stops_every_process_it_started(start_runner, stop_signal):
    runner = start_runner(sys.executable, "-m", "demo")
    runner.wait_until_stack_up()
    _assert_no_secret_on_a_command_line(runner)

    runner.popen.send_signal(stop_signal)

    assert runner.wait_exit() == 0, runner.output()
    assert f"stopping ({stop_signal.name})" in runner.stdout()
    # The runner reaps each child before it exits: none is left, not even as a zombie.
    assert runner.still_running() == [], runner.output()
    assert runner.stderr() == ""


def _make_run_is_ready() -> str | None:
    """Why `make run` cannot run here without installing anything, or None if it can."""
    if shutil.which("make") is None or shutil.which("redis-server") is None:
        return "needs make and redis-server"
    stale = subprocess.run(["make", "-q", ".venv/.installed"], cwd=REPO_ROOT, check=False)
    if stale.returncode != 0:
        return "the venv stamp is stale: `make run` would reinstall the venv"
    return None


@pytest.mark.skipif(_make_run_is_ready() is not None, reason=str(_make_run_is_ready()))
@pytest.mark.parametrize("stop_signal", STOP_SIGNALS, ids=lambda s: s.name)
def test_a_stop_signal_to_make_run_stops_every_process(start_runner, stop_signal):
    """Sent to make's pid alone: make forwards only SIGTERM; the runner notices the others."""
    runner = start_runner("make", "--no-print-directory", "run")
    runner.wait_until_stack_up()
    assert runner.seen["demo"].pid != runner.popen.pid
    demo_stat = _stat_fields(runner.seen["demo"].pid)
    assert demo_stat is not None and demo_stat[1] == str(runner.popen.pid), "make's own child"
    runner.seen["make"] = ProcessIdentity.of(runner.popen.pid)

    runner.popen.send_signal(stop_signal)

    runner.wait_exit()
    # SIGTERM arrives forwarded by make; SIGINT and SIGHUP are noticed as "<signal> to make".
    assert f"stopping ({stop_signal.name}" in runner.stdout(), runner.output()
    assert runner.still_running() == [], runner.output()


def test_a_child_that_dies_ends_the_run_with_one_line_naming_it(start_runner):
    runner = start_runner(sys.executable, "-m", "demo")
    seen = runner.wait_until_stack_up()

    os.kill(seen["braze-sandbox"].pid, signal.SIGKILL)

    assert runner.wait_exit() == 1, runner.output()
    lines = runner.stderr().splitlines()
    assert len(lines) == 1, runner.output()
    assert "braze-sandbox" in lines[0]
    assert "killed by signal 9 (SIGKILL)" in lines[0]
    assert runner.still_running() == [], runner.output()


def test_no_child_outlives_a_killed_runner(start_runner):
    runner = start_runner(sys.executable, "-m", "demo")
    runner.wait_until_stack_up()

    runner.popen.kill()  # no cleanup of its own: the kernel kills its children
    runner.popen.wait()

    _await(lambda: runner.still_running() == [], "every child to be gone", STOP_WITHIN_S, runner)


def test_the_demo_plays_to_its_end_and_exits_cleanly(start_runner):
    runner = start_runner(sys.executable, "-m", "demo", "--exit")
    runner.wait_until_stack_up()

    assert runner.wait_exit() == 0, runner.output()
    out = runner.stdout()
    assert "audiences: ['vip_cart_abandoners']" in out
    assert "the same trace reached Braze" in out
    # Where the metrics are, then a `crowd stats` summary of the run read from them.
    assert "metrics (Prometheus" in out
    assert "profile:  http://127.0.0.1:" in out and "dispatch: http://127.0.0.1:" in out
    assert "crowd stats" in out and "events ingested" in out and "braze requests" in out
    assert runner.still_running() == [], runner.output()
    for name in CHILDREN:
        assert (runner.run_dir / f"{name}.log").exists()
