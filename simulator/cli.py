"""Command line: `python -m simulator run` publishes a fleet; `python -m simulator fleet` lists it."""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import click
import orjson

from app.config import ConfigError, parse_mqtt_url
from app.domain.telemetry import DEFAULT_PREFIX, ContractError, floor_interval, parse_time
from simulator.fleet import build_fleet
from simulator.publisher import FleetPublisher

log = logging.getLogger("simulator")


class _Rfc3339(click.ParamType[datetime]):
    name = "RFC3339"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(value, "start")
        except ContractError as exc:
            self.fail(str(exc), param, ctx)


def _mqtt_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_mqtt_url(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.group()
@click.option(
    "--log-level",
    envvar="SIM_LOG_LEVEL",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def cli(log_level: str) -> None:
    """Simulate wireless C&I meters speaking the Wattline MQTT contract."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@cli.command()
@click.option(
    "--meters", envvar="SIM_METERS", default=200, show_default=True, type=click.IntRange(min=1)
)
@click.option("--seed", envvar="SIM_SEED", default=42, show_default=True, type=int)
@click.option(
    "--speed",
    envvar="SIM_SPEED",
    default=900.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Simulated seconds per wall second.",
)
@click.option(
    "--mqtt-url",
    envvar="MQTT_URL",
    default="mqtt://127.0.0.1:1883",
    show_default=True,
    callback=_mqtt_url,
)
@click.option(
    "--duration",
    envvar="SIM_DURATION",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Wall seconds to run; 0 runs until Ctrl-C / SIGTERM.",
)
@click.option(
    "--start",
    envvar="SIM_START",
    type=_Rfc3339(),
    default=None,
    help="Simulated start (RFC 3339, floored to 15 min)  [default: now - 7 days]",
)
@click.option("--prefix", envvar="MQTT_TOPIC_PREFIX", default=DEFAULT_PREFIX, show_default=True)
def run(
    meters: int,
    seed: int,
    speed: float,
    mqtt_url: str,
    duration: float,
    start: datetime | None,
    prefix: str,
) -> None:
    """Publish every meter's 15-minute intervals and answer commands until stopped."""
    begin = floor_interval(start or datetime.now(UTC) - timedelta(days=7))
    publisher = FleetPublisher(
        build_fleet(meters, seed),
        mqtt_url=mqtt_url,
        seed=seed,
        start=begin,
        speed=speed,
        prefix=prefix,
    )

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: finishing the current interval and marking meters offline", signum)
        publisher.stop()
        # A second Ctrl-C interrupts the drain instead of waiting for it.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        stats = publisher.run(duration)
    except (OSError, ConnectionError) as exc:
        raise click.ClickException(f"cannot reach the MQTT broker at {mqtt_url}: {exc}") from None
    log.info("simulator stopped: %s", stats.summary())


@cli.command()
@click.option(
    "--meters", envvar="SIM_METERS", default=200, show_default=True, type=click.IntRange(min=0)
)
@click.option("--seed", envvar="SIM_SEED", default=42, show_default=True, type=int)
def fleet(meters: int, seed: int) -> None:
    """Print the fleet as JSON lines."""
    out = sys.stdout.buffer
    for meter in build_fleet(meters, seed):
        out.write(orjson.dumps(dataclasses.asdict(meter)) + b"\n")
    out.flush()
