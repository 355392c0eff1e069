"""Every tuning knob of the services is a typed setting from the environment or the config
file, and reaches the worker it tunes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatch_service.settings import DispatchSettings
from profile_service.settings import ProfileSettings
from service_common.settings import SettingsError, build_parser


def test_dispatch_worker_tuning_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CROWD_DISPATCH_CLAIM_IDLE_MS", "5000")
    monkeypatch.setenv("CROWD_DISPATCH_WORKER_READ_COUNT", "250")
    monkeypatch.setenv("CROWD_DISPATCH_COHORT_MAX_ACTIVE", "3")
    settings = DispatchSettings.load()
    worker = settings.worker_settings()
    cohorts = settings.cohort_worker_settings()
    assert (worker.claim_idle_ms, worker.read_count) == (5000, 250)
    # One takeover time for both queues.
    assert (cohorts.claim_idle_ms, cohorts.max_active) == (5000, 3)


def test_defaults_are_the_workers_defaults() -> None:
    settings = DispatchSettings.load()
    assert settings.claim_idle_ms == 30_000
    assert settings.worker_settings().record_retry_s == 30.0
    assert settings.redis_watchdog_interval_seconds == 1.0


def test_profile_tuning_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "profile.yaml"
    config.write_text(
        "outbox_poll_interval_seconds: 0.25\nreconcile_interval_seconds: 60\n"
        "commit_max_attempts: 8\nredis_watchdog_interval_seconds: 2\n"
    )
    settings = ProfileSettings.load(config)
    assert settings.outbox_poll_interval_seconds == 0.25
    assert settings.reconcile_interval_seconds == 60
    assert settings.commit_max_attempts == 8
    assert settings.redis_watchdog_interval_seconds == 2


def test_a_bad_knob_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWD_DISPATCH_CLAIM_IDLE_MS", "10")
    with pytest.raises(SettingsError, match="claim_idle_ms"):
        DispatchSettings.load()


def test_help_lists_the_takeover_time() -> None:
    text = build_parser(DispatchSettings).format_help()
    assert "--claim-idle-ms" in text
    assert "CROWD_DISPATCH_CLAIM_IDLE_MS" in text
