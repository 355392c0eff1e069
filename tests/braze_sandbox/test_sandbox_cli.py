"""Command line: flags and environment to config, --help, and a real stand-alone run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import aiohttp
import pytest

from braze_sandbox import ALL_PERMISSIONS, BatchMode, RateLimit
from braze_sandbox.cli import build_parser, config_from_args, main

MODULE = "braze_sandbox"


def parse(*argv: str):
    return config_from_args(build_parser().parse_args(list(argv)))


def test_flags_build_the_config():
    config = parse(
        "--api-key",
        "k1:users.track,users.delete",
        "--api-key",
        "k2",
        "--batch-mode",
        "perArray75",
        "--track-rate",
        "100/1",
        "--identity-rate",
        "20000/1m",
        "--export-rate",
        "off",
        "--fail-rate",
        "0.25",
        "--fail-status",
        "502",
        "--latency-ms",
        "15",
        "--seed",
        "3",
        "--down",
        "--partner",
        "acme:pk",
        "--client-secret",
        "s1:acme",
        "--max-object-bytes",
        "0",
        "--reset-header",
        "seconds",
        "--allow-mixed-delete",
    )
    assert config.api_keys == {"k1": {"users.track", "users.delete"}, "k2": ALL_PERMISSIONS}
    assert config.batch_mode is BatchMode.PER_ARRAY75
    assert config.rate_limits["track"] == RateLimit(100, 1)
    assert config.rate_limits["identity"] == RateLimit(20000, 60)
    assert config.rate_limits["export"] is None
    assert (config.faults.fail_rate, config.faults.fail_status) == (0.25, 502)
    assert (config.faults.latency_ms, config.faults.seed, config.faults.down) == (15, 3, True)
    assert config.partners == {"acme": "pk"}
    assert config.client_secrets == {"s1": {"acme"}}
    assert config.max_object_bytes is None
    assert config.reset_header == "seconds"
    assert config.delete_single_id_type is False


def test_defaults_and_environment(monkeypatch):
    default = parse()
    assert default.batch_mode is BatchMode.COMBINED75
    assert default.rate_limits["track"] == RateLimit(3000, 3)
    assert default.max_object_bytes == 100 * 1024
    monkeypatch.setenv("BRAZE_SANDBOX_API_KEYS", "a:users.track;b")
    monkeypatch.setenv("BRAZE_SANDBOX_TRACK_RATE", "10/2")
    monkeypatch.setenv("BRAZE_SANDBOX_BATCH_MODE", "combined50")
    from_env = parse()
    assert set(from_env.api_keys) == {"a", "b"}
    assert from_env.rate_limits["track"] == RateLimit(10, 2)
    assert from_env.batch_mode is BatchMode.COMBINED50
    assert parse("--track-rate", "5/5").rate_limits["track"] == RateLimit(5, 5), "flags win"


def test_api_keys_from_a_file_or_its_environment_variable(tmp_path, monkeypatch):
    key_file = tmp_path / "keys"
    key_file.write_text("# the sandbox's keys\n\nk1:users.track,users.delete\n  k2  \n")
    expected = {"k1": {"users.track", "users.delete"}, "k2": ALL_PERMISSIONS}
    assert parse("--api-keys-file", str(key_file)).api_keys == expected
    with_flag = parse("--api-keys-file", str(key_file), "--api-key", "k3:users.identify")
    assert with_flag.api_keys == {**expected, "k3": {"users.identify"}}, "both count"
    monkeypatch.setenv("BRAZE_SANDBOX_API_KEYS", "from-env")
    assert parse("--api-keys-file", str(key_file)).api_keys == expected, "the file wins"
    monkeypatch.setenv("BRAZE_SANDBOX_API_KEYS_FILE", str(key_file))
    assert parse().api_keys == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read the API key file"), ("secret-in-file:users.fly\n", "users.fly")],
)
def test_a_bad_key_file_is_a_usage_error_that_shows_no_key(tmp_path, capsys, content, expected):
    key_file = tmp_path / "keys"
    if content is not None:
        key_file.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["--api-keys-file", str(key_file)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "secret-in-file" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--api-key", "k:users.fly"],
        ["--track-rate", "fast"],
        ["--batch-mode", "combined99"],
        ["--partner", "nokey"],
        ["--fail-rate", "2"],
    ],
)
def test_bad_flags_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_config_repr_hides_keys():
    config = parse("--api-key", "very-secret-key", "--client-secret", "very-secret-cs")
    assert "very-secret" not in repr(config)


def test_help_runs():
    out = subprocess.run(
        [sys.executable, "-m", MODULE, "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0
    for flag in ("--api-key", "--batch-mode", "--track-rate", "--fail-rate", "--latency-ms"):
        assert flag in out.stdout


async def test_standalone_server_serves_and_logs_without_keys():
    key = "cli-secret-key-123"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        MODULE,
        "--port",
        "0",
        "--api-key",
        f"{key}:users.track",
        "--track-rate",
        "2/60",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    try:
        warning = json.loads(await asyncio.wait_for(proc.stderr.readline(), 20))
        assert warning["level"] == "warning"
        assert "visible to every user in ps" in warning["msg"]
        assert warning["flags"] == ["--api-key"]
        line = await asyncio.wait_for(proc.stderr.readline(), 20)
        started = json.loads(line)
        assert started["msg"] == "braze_sandbox listening"
        url = started["url"]
        async with aiohttp.ClientSession() as http:
            headers = {
                "Authorization": f"Bearer {key}",
                "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
            }
            body = {"attributes": [{"external_id": "u1", "plan": "gold"}]}
            async with http.post(url + "/users/track", json=body, headers=headers) as resp:
                assert resp.status == 201
                assert resp.headers["X-RateLimit-Limit"] == "2"
            async with http.get(url + "/_sandbox/users/u1") as resp:
                assert (await resp.json())["custom_attributes"] == {"plan": "gold"}
        request_log = json.loads(await asyncio.wait_for(proc.stderr.readline(), 10))
        assert request_log["path"] == "/users/track"
        assert request_log["status"] == 201
        assert request_log["traceparent"].startswith("00-111")
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), 20)
        await proc.wait()
    assert proc.returncode == 0
    assert key.encode() not in json.dumps(warning).encode() + line + rest
    assert b"braze_sandbox stopped" in rest
