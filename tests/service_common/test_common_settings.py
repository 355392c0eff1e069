"""service_common.settings: env, file, CLI precedence, secrets, and the generated --help."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from service_common import ServiceSettings, SettingsError, redact, settings_cli

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"


class DemoSettings(ServiceSettings):
    """Settings of the demo service."""

    model_config = SettingsConfigDict(env_prefix="CROWD_DEMO_")

    batch_size: int = Field(75, ge=1, description="Objects per request.")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CROWD_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = DemoSettings.load()
    assert (s.host, s.port, s.redis_url, s.redis_cluster) == (
        "127.0.0.1",
        0,
        "redis://127.0.0.1:6379/0",
        False,
    )
    assert s.auth_enabled is True
    assert s.shutdown_grace_seconds == 10
    assert (s.log_level, s.log_format, s.api_keys) == ("INFO", "json", {})


def test_env_overrides_file_and_file_overrides_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "demo.yaml"
    config.write_text("host: 0.0.0.0\nport: 1234\nlog_format: text\nbatch_size: 50\n")
    monkeypatch.setenv("CROWD_DEMO_PORT", "5678")
    monkeypatch.setenv("CROWD_DEMO_LOG_LEVEL", "debug")

    s = DemoSettings.load(config)
    assert s.port == 5678  # env beats file
    assert s.host == "0.0.0.0"  # file beats default
    assert s.log_format == "text"
    assert s.batch_size == 50  # a subclass field comes from the file too
    assert s.log_level == "DEBUG"

    # The same file named by CROWD_CONFIG_FILE, as JSON this time.
    json_config = tmp_path / "demo.json"
    json_config.write_text(json.dumps({"host": "::", "redis_cluster": True}))
    monkeypatch.setenv("CROWD_CONFIG_FILE", str(json_config))
    s = DemoSettings.load()
    assert (s.host, s.redis_cluster, s.port) == ("::", True, 5678)


def test_keyword_overrides_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWD_DEMO_PORT", "5678")
    assert DemoSettings.load(port=9).port == 9


def test_api_keys_from_env_json_and_file_are_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(f"{KEY_A}: [track]\n{KEY_B}: [read, track]\n")
    monkeypatch.setenv("CROWD_DEMO_API_KEYS", json.dumps({KEY_A: ["admin"]}))
    monkeypatch.setenv("CROWD_DEMO_API_KEYS_FILE", str(keys_file))

    s = DemoSettings.load()
    scopes = {k.get_secret_value(): v for k, v in s.api_keys.items()}
    assert scopes == {KEY_A: frozenset({"admin"}), KEY_B: frozenset({"read", "track"})}
    for text in (repr(s), str(s), s.model_dump_json()):
        assert KEY_A not in text and KEY_B not in text
    # Loading registered the keys with the log redactor.
    assert redact(f"k={KEY_B}") == "k=[REDACTED]"


def test_redis_password_is_hidden_and_registered() -> None:
    s = DemoSettings.load(redis_url="redis://:hunter2hunter2@cache:6380/1")
    assert "hunter2hunter2" not in repr(s)
    assert redact("auth hunter2hunter2 failed") == "auth [REDACTED] failed"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"redis_url": "http://x"}, "redis_url (CROWD_DEMO_REDIS_URL)"),
        ({"port": 70000}, "port (CROWD_DEMO_PORT)"),
        ({"log_format": "xml"}, "log_format (CROWD_DEMO_LOG_FORMAT)"),
        ({"api_keys": {"short": ["read"]}}, "api_keys (CROWD_DEMO_API_KEYS) [an entry]"),
        ({"api_keys": {KEY_A: ["Bad Scope"]}}, "api_keys (CROWD_DEMO_API_KEYS) [an entry]"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_settings_name_the_setting_never_the_value(
    overrides: dict[str, Any], needle: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        DemoSettings.load(**overrides)
    message = str(caught.value)
    assert needle in message
    assert "short" not in message.replace("shorter", "")
    assert KEY_A not in message


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        DemoSettings.load(tmp_path / "nope.yaml")


def test_cli_overrides_beat_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("port: 1\nhost: 10.0.0.1\n")
    monkeypatch.setenv("CROWD_DEMO_PORT", "2")
    s = settings_cli(
        DemoSettings,
        ["--config", str(config), "--port", "50051", "--no-auth-enabled", "--log-format", "text"],
    )
    assert (s.port, s.host, s.auth_enabled, s.log_format) == (50051, "10.0.0.1", False, "text")


def test_cli_rejects_bad_values_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        settings_cli(DemoSettings, ["--port", "not-a-number"])
    assert caught.value.code == 2
    assert "port (CROWD_DEMO_PORT)" in capsys.readouterr().err


def test_help_lists_every_setting_with_env_type_default_and_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        settings_cli(DemoSettings, ["--help"], prog="crowd-demo")
    assert caught.value.code == 0
    out = capsys.readouterr().out
    # Collapse argparse's line wrapping so phrases can be matched whole.
    text = " ".join(out.split())
    for name in DemoSettings.model_fields:
        assert f"CROWD_DEMO_{name.upper()}" in text, name
    assert "CROWD_CONFIG_FILE" in text
    assert "--port INT" in text
    assert "env: CROWD_DEMO_PORT; type: int; default: 0" in text
    assert "TCP port to listen on; 0 picks a free one." in text
    assert "--batch-size INT Objects per request. [env: CROWD_DEMO_BATCH_SIZE" in text
    assert "--auth-enabled, --no-auth-enabled" in text
    assert "type: json|text; default: json" in text
    # Secrets are documented but cannot be passed on the command line.
    assert "--api-keys " not in text
    assert "Secret settings (environment or config file only): CROWD_DEMO_API_KEYS" in text
