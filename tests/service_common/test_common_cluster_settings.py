"""The cluster and WAIT settings shared by both services: defaults, validation without echoing
the value, and the seed list a cluster client starts from."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch_service.settings import DispatchSettings
from profile_service.settings import ProfileSettings
from service_common.redis import cluster_seed_nodes
from service_common.redis_toolkit.replication import WaitPolicy
from service_common.settings import SettingsError


def test_defaults_are_off_for_both_services() -> None:
    for settings in (ProfileSettings.load(), DispatchSettings.load()):
        assert (settings.redis_cluster, settings.redis_cluster_nodes) == (False, "")
        assert WaitPolicy.from_settings(settings) == WaitPolicy(0, 1000)
        assert not WaitPolicy.from_settings(settings).enabled


def test_environment_sets_cluster_nodes_and_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWD_PROFILE_REDIS_CLUSTER", "true")
    monkeypatch.setenv("CROWD_PROFILE_REDIS_CLUSTER_NODES", "10.0.0.1:7000, 10.0.0.2:7001")
    monkeypatch.setenv("CROWD_PROFILE_REDIS_WAIT_REPLICAS", "1")
    monkeypatch.setenv("CROWD_PROFILE_REDIS_WAIT_TIMEOUT_MS", "250")
    settings = ProfileSettings.load(redis_url="redis://10.0.0.3:7002")
    assert WaitPolicy.from_settings(settings) == WaitPolicy(1, 250)
    assert cluster_seed_nodes(settings.redis_url, settings.redis_cluster_nodes) == [
        ("10.0.0.3", 7002),
        ("10.0.0.1", 7000),
        ("10.0.0.2", 7001),
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redis_cluster_nodes", "10.0.0.1"),
        ("redis_cluster_nodes", "10.0.0.1:70000"),
        ("redis_cluster_nodes", ":7000"),
        ("redis_wait_replicas", -1),
        ("redis_wait_timeout_ms", 0),
    ],
)
def test_bad_values_are_refused_naming_the_setting_not_the_value(field: str, value: object) -> None:
    with pytest.raises(SettingsError) as refused:
        overrides: dict[str, Any] = {field: value}
        ProfileSettings.load(**overrides)
    assert field in str(refused.value)
    assert "10.0.0.1" not in str(refused.value)


@pytest.mark.parametrize("url", ["unix:///tmp/redis.sock", "redis://10.0.0.1:7000/2"])
def test_a_cluster_needs_a_tcp_url_with_database_0(url: str) -> None:
    with pytest.raises(SettingsError, match="redis_url: a Redis Cluster"):
        ProfileSettings.load(redis_url=url, redis_cluster=True)
    assert ProfileSettings.load(redis_url=url).redis_url == url  # fine for one Redis
