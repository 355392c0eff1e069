"""Process helpers for the benchmarks: CPU time of a child, child environment, machine facts."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux ``/proc``); 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, see proc(5)).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (e.g. a supervisor's workers), from ``/proc``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue  # exited meanwhile
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return sorted(found)


def quiet_env(service_prefix: str) -> dict[str, str]:
    """Environment overrides for a service child: no span export (an unreachable collector
    would cost CPU), INFO logs as in production."""
    env = {f"{service_prefix}LOG_LEVEL": "INFO"}
    if service_prefix == "CROWD_PROFILE_":
        # The recommended production setting (README, "Trace history"): the history of 1% of
        # visitors, so memory per visitor is measured as a large deployment would run.
        env["CROWD_PROFILE_TRACE_SAMPLE_RATE"] = "0.01"
    for name in os.environ:
        if name.startswith("OTEL_EXPORTER_OTLP"):
            env[name] = ""
    return env


def machine() -> list[tuple[str, str]]:
    """CPU model, cores, RAM, Python and Redis versions, for the report."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    redis = ""
    binary = shutil.which("redis-server")
    if binary:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        redis = next((p.removeprefix("v=") for p in out.stdout.split() if p.startswith("v=")), "")
    return [
        ("CPU", model or platform.processor() or "unknown"),
        ("cores", str(os.cpu_count())),
        ("RAM", ram or "unknown"),
        ("Python", platform.python_version()),
        ("Redis", redis or "not found"),
    ]
