"""Settings from the environment and MQTT URL parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, MqttEndpoint, Settings, check_share_group, parse_mqtt_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", MqttEndpoint("127.0.0.1", 1883)),
        ("mqtt://broker", MqttEndpoint("broker", 1883)),
        ("tcp://broker:1884", MqttEndpoint("broker", 1884)),
        ("mqtts://broker", MqttEndpoint("broker", 8883, tls=True)),
        ("mqtt://user:p%40ss@broker:1883", MqttEndpoint("broker", 1883, "user", "p@ss")),
    ],
)
def test_parse_mqtt_url(url: str, expected: MqttEndpoint) -> None:
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://broker", "mqtt://", "mqtt://broker:notaport", "broker:1883"]
)
def test_bad_mqtt_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="MQTT URL"):
        parse_mqtt_url(url)


def test_endpoint_url_hides_the_password() -> None:
    endpoint = parse_mqtt_url("mqtt://user:secret@broker:1883")
    assert endpoint.url == "mqtt://user@broker:1883"
    assert "secret" not in repr(endpoint)


def test_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env({"WATTLINE_INSTANCE": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'wattline.db'}"
    assert settings.mqtt_url is None
    assert settings.topic_prefix == "wattline/v1"
    assert settings.secret_key == ""
    assert not settings.demo_mode
    assert (settings.port, settings.demo_meters, settings.demo_speed) == (5000, 200, 900.0)
    assert settings.ingest_share_group is None


def test_demo_mode_keeps_a_generated_secret(tmp_path: Path) -> None:
    env = {"WATTLINE_INSTANCE": str(tmp_path), "WATTLINE_DEMO": "1"}
    first = Settings.from_env(env).secret_key
    assert len(first) >= 32
    assert Settings.from_env(env).secret_key == first
    assert Settings.from_env({**env, "SECRET_KEY": "given"}).secret_key == "given"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("DEMO_METERS", "0"),
        ("DEMO_SPEED", "0.5"),
        ("DEMO_SPEED", "nan"),
        # Past what the pieces accept: these failed only after the demo had started.
        ("PORT", "70000"),
        ("DEMO_SPEED", "100000"),
        ("DEMO_SPEED", "inf"),
        ("INGEST_FUTURE_TOLERANCE_S", "inf"),
        ("MQTT_URL", "ftp://x"),
        ("INGEST_SHARE_GROUP", "a/b"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name if name != "MQTT_URL" else "MQTT URL"):
        Settings.from_env({"WATTLINE_INSTANCE": str(tmp_path), name: value})


def test_share_group_is_read_and_checked(tmp_path: Path) -> None:
    env = {"WATTLINE_INSTANCE": str(tmp_path)}
    assert Settings.from_env({**env, "INGEST_SHARE_GROUP": "ingest"}).ingest_share_group == (
        "ingest"
    )
    assert Settings.from_env({**env, "INGEST_SHARE_GROUP": ""}).ingest_share_group is None


@pytest.mark.parametrize("name", ["", "a/b", "a+", "#", "x\0y"])
def test_share_group_names_mqtt_refuses_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="shared subscription group"):
        check_share_group(name)


def test_share_group_names_mqtt_accepts_pass() -> None:
    assert check_share_group("wattline-ingest.eu_1") == "wattline-ingest.eu_1"


def test_https_behind_a_proxy_is_opt_in(tmp_path: Path) -> None:
    env = {"WATTLINE_INSTANCE": str(tmp_path)}
    assert Settings.from_env(env).https is False
    assert Settings.from_env({**env, "WATTLINE_HTTPS": "1"}).https is True
    assert Settings.from_env({**env, "WATTLINE_HTTPS": "off"}).https is False
