"""One Settings object, read from the environment; every process builds it the same way."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.domain.telemetry import DEFAULT_PREFIX

ROOT = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}


class ConfigError(ValueError):
    """Raise when an environment variable holds an unusable value."""


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where a broker listens, parsed from an `mqtt://user:pass@host:port` URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    @property
    def url(self) -> str:
        """Render the URL without the password."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttEndpoint:
    """Parse `mqtt://`, `tcp://` or `mqtts://` URLs into an endpoint."""
    parts = urlsplit(url)
    if parts.scheme not in {"mqtt", "tcp", "mqtts", "ssl"}:
        raise ConfigError(f"MQTT URL {url!r} must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"MQTT URL {url!r} has no host")
    tls = parts.scheme in {"mqtts", "ssl"}
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ConfigError(f"MQTT URL {url!r} has an invalid port") from None
    return MqttEndpoint(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


def check_share_group(name: str) -> str:
    """Return `name` if it can name an MQTT shared-subscription group, else raise ConfigError."""
    # MQTT 5 (4.8.2): a ShareName is at least one character and holds no "/", "+" or "#".
    if not name or any(c in name for c in "/+#\0"):
        raise ConfigError(
            f"shared subscription group {name!r} must be non-empty without '/', '+' or '#'"
        )
    return name


MAX_DAYS = 3660  # ten years: the most any day count of the operator tools may reach back
# The ingest's --future-tolerance limit, which INGEST_FUTURE_TOLERANCE_S also sets.
MAX_TOLERANCE_S = MAX_DAYS * 86400


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value}")
    return value


def _float(
    env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float
) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not minimum <= value <= maximum:  # NaN and infinity fail this too
        raise ConfigError(f"{name} must be between {minimum:g} and {maximum:g}, got {raw}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Configuration shared by the portal, the ingest worker, the simulator and the demo."""

    database_url: str
    mqtt_url: str | None
    topic_prefix: str
    secret_key: str = field(repr=False)
    demo_mode: bool
    demo_password: str = field(repr=False)
    port: int
    demo_meters: int
    demo_speed: float
    demo_seed: int
    instance_path: Path
    # Ingest workers sharing this group split the stream ($share/<group>/...); None: one worker.
    ingest_share_group: str | None = None
    # How far after its receipt an interval may start (the ingest's --future-tolerance); the
    # portal judges a dead letter's replay by it at the letter's own receive time.
    ingest_future_tolerance_s: float = 3600.0
    # Served over HTTPS by a reverse proxy (one hop): secure cookies, HSTS, and the proxy's
    # X-Forwarded-For/-Proto/-Host trusted (the login throttle counts the client's address).
    https: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (see the README's configuration table)."""
        env = os.environ if environ is None else environ
        instance = Path(env.get("WATTLINE_INSTANCE") or ROOT / "instance")
        demo_mode = env.get("WATTLINE_DEMO", "").lower() in _TRUE
        secret = env.get("SECRET_KEY", "")
        if not secret and demo_mode:
            secret = _demo_secret(instance)
        mqtt_url = env.get("MQTT_URL") or None
        if mqtt_url:
            parse_mqtt_url(mqtt_url)
        share_group = env.get("INGEST_SHARE_GROUP") or None
        if share_group is not None:
            try:
                check_share_group(share_group)
            except ConfigError as exc:
                raise ConfigError(f"INGEST_SHARE_GROUP: {exc}") from None
        return cls(
            database_url=env.get("DATABASE_URL") or f"sqlite:///{instance / 'wattline.db'}",
            mqtt_url=mqtt_url,
            topic_prefix=env.get("MQTT_TOPIC_PREFIX") or DEFAULT_PREFIX,
            secret_key=secret,
            demo_mode=demo_mode,
            demo_password=env.get("DEMO_PASSWORD") or "demo",
            port=_int(env, "PORT", 5000, minimum=0, maximum=65535),
            demo_meters=_int(env, "DEMO_METERS", 200, minimum=1),
            # The simulator's own limit (a day a second): refused here before anything starts.
            demo_speed=_float(env, "DEMO_SPEED", 900.0, minimum=1.0, maximum=86_400.0),
            demo_seed=_int(env, "DEMO_SEED", 42),
            instance_path=instance,
            ingest_share_group=share_group,
            ingest_future_tolerance_s=_float(
                env, "INGEST_FUTURE_TOLERANCE_S", 3600.0, minimum=0.0, maximum=MAX_TOLERANCE_S
            ),
            https=env.get("WATTLINE_HTTPS", "").lower() in _TRUE,
        )


def _demo_secret(instance: Path) -> str:
    # Demo mode only: keep a random key in instance/ so a restart keeps people logged in.
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
