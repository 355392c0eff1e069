"""Connector settings: instance endpoints, keys by reference, loader, and no key leaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatch_service.braze import (
    INSTANCE_ENDPOINTS,
    BatchMode,
    BrazeConnector,
    ConnectorConfigError,
    RateGroup,
    load_connectors,
    load_connectors_from_env,
    parse_connectors,
)
from tests.braze.helpers import API_KEY

ENV = "CROWD_TEST_BRAZE_KEY"


@pytest.mark.parametrize(
    ("instance", "url"),
    [
        ("US-01", "https://rest.iad-01.braze.com"),
        ("US-02", "https://rest.iad-02.braze.com"),
        ("US-03", "https://rest.iad-03.braze.com"),
        ("US-04", "https://rest.iad-04.braze.com"),
        ("US-05", "https://rest.iad-05.braze.com"),
        ("US-06", "https://rest.iad-06.braze.com"),
        ("US-07", "https://rest.iad-07.braze.com"),
        ("US-08", "https://rest.iad-08.braze.com"),
        ("US-10", "https://rest.us-10.braze.com"),
        ("EU-01", "https://rest.fra-01.braze.eu"),
        ("EU-02", "https://rest.fra-02.braze.eu"),
        ("AU-01", "https://rest.au-01.braze.com"),
        ("ID-01", "https://rest.id-01.braze.com"),
        ("JP-01", "https://rest.jp-01.braze.com"),
        ("KR-01", "https://rest.kr-01.braze.com"),
    ],
)
def test_instance_endpoints(instance: str, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, API_KEY)
    connector = BrazeConnector(id="c", instance=instance, api_key_env=ENV)
    assert connector.base_url == url
    assert len(INSTANCE_ENDPOINTS) == 15
    lower = BrazeConnector(id="c", instance=instance.lower().replace("-", ""), api_key_env=ENV)
    assert lower.base_url == url


def test_custom_url_wins_and_defaults_match_braze(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, f"  {API_KEY}\n")
    connector = BrazeConnector(
        id="c", instance="EU-01", url="http://127.0.0.1:8080/", api_key_env=ENV
    )
    assert connector.base_url == "http://127.0.0.1:8080"
    assert connector.api_key.get_secret_value() == API_KEY
    assert connector.batch_mode is BatchMode.COMBINED75
    assert (connector.track_rate.requests, connector.track_rate.per_seconds) == (3000, 3.0)
    assert connector.rate_for(RateGroup.ADMIN).requests == 20000
    assert connector.rate_for(RateGroup.ADMIN).per_seconds == 60.0
    assert (connector.linger_ms, connector.deltas, connector.delta_ttl_days) == (500, True, 30)
    assert connector.max_attempts == 200


def test_key_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "braze.key"
    secret.write_text(API_KEY + "\n")
    connector = BrazeConnector(id="c", instance="US-03", api_key_file=secret)
    assert connector.api_key.get_secret_value() == API_KEY


def test_key_never_shows_in_repr_str_dump_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, API_KEY)
    connector = BrazeConnector(id="c", instance="US-01", api_key_env=ENV)
    for text in (repr(connector), str(connector), json.dumps(connector.redacted())):
        assert API_KEY not in text
    assert connector.redacted()["api_key_env"] == ENV
    with pytest.raises(ConnectorConfigError) as caught:
        parse_connectors([{"id": "c", "instance": "US-99", "api_key_env": ENV}])
    assert API_KEY not in str(caught.value)
    assert "connectors[0].instance" in str(caught.value)


def test_missing_key_names_the_variable_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ConnectorConfigError, match=f"environment variable {ENV}"):
        parse_connectors([{"id": "c", "instance": "US-01", "api_key_env": ENV}])


def test_inline_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConnectorConfigError) as caught:
        parse_connectors([{"id": "c", "instance": "US-01", "api_key": API_KEY}])
    assert "by reference" in str(caught.value)
    assert API_KEY not in str(caught.value)


def test_load_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, API_KEY)
    path = tmp_path / "connectors.yaml"
    path.write_text(
        f"""
connectors:
  - id: main
    instance: EU-02
    api_key_env: {ENV}
    batch_mode: per_array75
    track_rate: 1000/3s
    admin_rate: 100/1m
    linger_ms: 200
    deltas: false
  - id: sandbox
    url: http://127.0.0.1:4000
    api_key_env: {ENV}
"""
    )
    connectors = load_connectors(path)
    assert list(connectors) == ["main", "sandbox"]
    main = connectors["main"]
    assert main.base_url == "https://rest.fra-02.braze.eu"
    assert main.batch_mode is BatchMode.PER_ARRAY75
    assert (main.track_rate.requests, main.track_rate.per_seconds) == (1000, 3.0)
    assert (main.admin_rate.requests, main.admin_rate.per_seconds) == (100, 60.0)
    assert (main.linger_ms, main.deltas) == (200, False)


def test_load_from_env_json_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, API_KEY)
    document = {"connectors": [{"id": "c1", "url": "https://braze.test", "api_key_env": ENV}]}
    connectors = load_connectors_from_env({"CROWD_BRAZE_CONNECTORS": json.dumps(document)})
    assert connectors["c1"].base_url == "https://braze.test"
    assert load_connectors_from_env({}) == {}
    with pytest.raises(ConnectorConfigError) as caught:
        parse_connectors(
            [
                {"id": "c1", "url": "https://a.test", "api_key_env": ENV, "linger_ms": 5000},
                {"id": "c1", "url": "https://a.test", "api_key_env": ENV},
                {"id": "c2", "api_key_env": ENV},
            ]
        )
    message = str(caught.value)
    assert "connectors[0].linger_ms" in message
    assert "set either instance" in message
    assert API_KEY not in message


def test_partner_cohort_secrets_resolve_by_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, API_KEY)
    monkeypatch.setenv("CROWD_TEST_PARTNER_KEY", "partner-secret-123")
    monkeypatch.setenv("CROWD_TEST_CLIENT_SECRET", "client-secret-456")
    [connector] = parse_connectors(
        [
            {
                "id": "c",
                "instance": "US-01",
                "api_key_env": ENV,
                "partner_name": "crowd",
                "partner_api_key_env": "CROWD_TEST_PARTNER_KEY",
                "client_secret_env": "CROWD_TEST_CLIENT_SECRET",
            }
        ]
    ).values()
    assert connector.partner_api_key is not None and connector.client_secret is not None
    assert connector.partner_api_key.get_secret_value() == "partner-secret-123"
    assert connector.client_secret.get_secret_value() == "client-secret-456"
    shown = repr(connector) + json.dumps(connector.redacted())
    assert "partner-secret-123" not in shown and "client-secret-456" not in shown
