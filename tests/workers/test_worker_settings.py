"""The ``workers`` setting of both services and the client's ``channels``."""

from __future__ import annotations

import os

import pytest

from crowd.client import CrowdClient
from dispatch_service.settings import DispatchSettings
from profile_service.settings import ProfileSettings
from service_common.settings import SettingsError, settings_cli


@pytest.mark.parametrize("settings_cls", [ProfileSettings, DispatchSettings])
def test_workers_default_to_the_cores_this_process_may_use(
    settings_cls: type[ProfileSettings | DispatchSettings],
) -> None:
    assert settings_cls.load().workers == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("settings_cls", "env"),
    [(ProfileSettings, "CROWD_PROFILE_WORKERS"), (DispatchSettings, "CROWD_DISPATCH_WORKERS")],
)
def test_workers_come_from_the_environment_and_the_command_line(
    settings_cls: type[ProfileSettings | DispatchSettings],
    env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(env, "3")
    assert settings_cls.load().workers == 3
    assert settings_cli(settings_cls, ["--workers", "5"]).workers == 5


@pytest.mark.parametrize("value", [0, -1, "many"])
def test_a_bad_worker_count_names_the_setting(value: object) -> None:
    with pytest.raises(SettingsError, match=r"workers \(CROWD_PROFILE_WORKERS\)"):
        ProfileSettings.load(workers=value)


@pytest.mark.parametrize("value", ["false", "true", False])
def test_the_old_boolean_dispatch_workers_setting_points_to_background_workers(
    value: object,
) -> None:
    with pytest.raises(SettingsError) as caught:
        DispatchSettings.load(workers=value)
    message = str(caught.value)
    assert "workers (CROWD_DISPATCH_WORKERS)" in message
    assert "background_workers" in message
    assert DispatchSettings.load(background_workers=False).background_workers is False


def test_each_dispatch_worker_gets_its_own_consumer_name() -> None:
    settings = DispatchSettings.load(consumer_name="dispatch-a")
    names = {settings.worker_overrides(i)["consumer_name"] for i in range(3)}
    assert names == {"dispatch-a-0", "dispatch-a-1", "dispatch-a-2"}
    # The default (host:pid) already differs per process.
    assert DispatchSettings.load().worker_overrides(0) == {}


def test_help_lists_the_worker_and_connection_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        settings_cli(ProfileSettings, ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in (
        "--workers INT",
        "--max-connection-age-seconds FLOAT",
        "--max-connection-age-grace-seconds FLOAT",
        "--dispatch-channels INT",
    ):
        assert flag in text


def test_a_client_needs_at_least_one_channel() -> None:
    with pytest.raises(ValueError, match="channels"):
        CrowdClient("127.0.0.1:1", channels=0)
