"""Command line: `python -m simulator run | scenarios | fleet | backfill` (see --help of each)."""

from __future__ import annotations

import base64
import dataclasses
import logging
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Any

import click
import orjson

from app.clitypes import FiniteFloat
from app.config import ConfigError, parse_mqtt_url
from app.domain.localtime import LATEST
from app.domain.telemetry import DEFAULT_PREFIX, ContractError, floor_interval, parse_time
from app.domain.vee import Plausibility
from simulator.faults import FaultRates
from simulator.fleet import Meter, build_fleet
from simulator.incidents import Incident, cut_to_shard
from simulator.publisher import CONNECTIONS, FleetPublisher
from simulator.scenario import (
    MAX_SPAN,
    MAX_SPEED,
    Scenario,
    ScenarioError,
    list_scenarios,
    load_scenario,
)

log = logging.getLogger("simulator")

DEFAULT_METERS = 200
DEFAULT_SEED = 42
DEFAULT_SPEED = 900.0
# The history a backfill may write: nothing before the ingest's earliest plausible interval,
# nothing so late that a day's rollups leave the calendar.
EARLIEST = Plausibility().earliest


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


class _Shard(click.ParamType[tuple[int, int]]):
    name = "I/N"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            i, n = (int(part) for part in str(value).split("/"))
        except ValueError:
            self.fail(f"{value!r} is not I/N, e.g. 0/4", param, ctx)
        if not (n >= 1 and 0 <= i < n):
            self.fail(f"{value!r}: need N >= 1 and 0 <= I < N", param, ctx)
        return i, n


def _mqtt_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_mqtt_url(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _scenario(ctx: click.Context, param: click.Parameter, value: str | None) -> Scenario | None:
    if value is None or value == "":
        return None
    try:
        return load_scenario(value)
    except ScenarioError as exc:
        raise click.BadParameter(str(exc)) from None


_RATE = FiniteFloat(0.0, 1.0)


def _common(func: Any) -> Any:
    """Options shared by run, fleet and backfill: the fleet and its scenario."""
    options = [
        click.option(
            "--scenario",
            show_envvar=True,
            envvar="SIM_SCENARIO",
            default=None,
            callback=_scenario,
            help="Scenario name (see `scenarios`) or path to a YAML file: fleet + incidents.",
        ),
        click.option(
            "--meters",
            show_envvar=True,
            envvar="SIM_METERS",
            type=click.IntRange(min=1),
            default=None,
            help=f"Catalogue meters to build before filters/sharding  [default: scenario's or {DEFAULT_METERS}]",
        ),
        click.option(
            "--seed",
            show_envvar=True,
            envvar="SIM_SEED",
            type=int,
            default=None,
            help=f"Seed for the fleet, loads, radio and faults  [default: scenario's or {DEFAULT_SEED}]",
        ),
        click.option(
            "--start",
            show_envvar=True,
            envvar="SIM_START",
            type=_Rfc3339(),
            default=None,
            help="Simulated start (RFC 3339, floored to 15 min)  [default: scenario's, else now - 7 days]",
        ),
        click.option(
            "--shard",
            show_envvar=True,
            envvar="SIM_SHARD",
            type=_Shard(),
            default="0/1",
            show_default=True,
            help="Simulate only meters with index % N == I (split a fleet over processes/hosts).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@dataclasses.dataclass(frozen=True, slots=True)
class Setup:
    """What a command simulates: meters, seed, start and bound incidents."""

    meters: list[Meter]
    seed: int
    start: datetime
    incidents: list[Incident]
    scenario: Scenario | None
    whole: list[Meter]  # the fleet this shard is part of (all of it when not sharded)


def resolve(
    scenario: Scenario | None,
    meters: int | None,
    seed: int | None,
    start: datetime | None,
    shard: tuple[int, int],
    now: datetime,
) -> Setup:
    """Combine flags and scenario defaults into the fleet, seed, start and incidents."""
    seed = (
        seed
        if seed is not None
        else (scenario.seed if scenario and scenario.seed is not None else DEFAULT_SEED)
    )
    count = meters or (scenario.meters if scenario and scenario.meters else DEFAULT_METERS)
    fleet = build_fleet(count, seed)
    begin = floor_interval(
        start
        or (scenario.start if scenario and scenario.start else None)
        or (scenario.default_start(now) if scenario else now - timedelta(days=7))
    )
    incidents = []
    if scenario is not None:
        fleet = scenario.select_fleet(fleet)
        try:
            scenario.check_meters({m.id for m in fleet})
            # Chosen over the whole fleet, then cut to this shard's meters: the shards
            # together play exactly what one process would (a `count: 1` tamper hit one
            # meter in each of four shards when each shard chose its own).
            incidents = scenario.bind(fleet, begin, seed)
        except ScenarioError as exc:
            raise click.ClickException(str(exc)) from None
    i, n = shard
    shard_fleet = [m for m in fleet if m.index % n == i]
    return Setup(
        shard_fleet, seed, begin, cut_to_shard(incidents, fleet, shard_fleet), scenario, fleet
    )


def record_line(topic: str, payload: bytes, retain: bool) -> bytes:
    """Return one published message as a `--record` JSON line, its payload byte for byte."""
    line: dict[str, object] = {"topic": topic, "retain": retain}
    try:
        line["payload"] = payload.decode()
    except UnicodeDecodeError:
        # Replacement characters hid the 0xFF a corrupted payload actually carried, and the
        # record is there to diff against.
        line["payload_base64"] = base64.b64encode(payload).decode()
    return orjson.dumps(line) + b"\n"


@click.group()
@click.option(
    "--log-level",
    show_envvar=True,
    envvar="SIM_LOG_LEVEL",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Logging threshold.",
)
def cli(log_level: str) -> None:
    """Simulate wireless C&I meters speaking the Wattline MQTT contract (docs/protocol.md).

    Every option can also be set with the environment variable shown in its help.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@cli.command()
@_common
@click.option(
    "--speed",
    show_envvar=True,
    envvar="SIM_SPEED",
    type=FiniteFloat(min=0, min_open=True, max=MAX_SPEED),
    default=None,
    help=f"Simulated seconds per wall second (1 = real time, 900 = an interval a second)  [default: scenario's or {DEFAULT_SPEED:g}]",
)
@click.option(
    "--mqtt-url",
    show_envvar=True,
    envvar="MQTT_URL",
    default="mqtt://127.0.0.1:1883",
    show_default=True,
    callback=_mqtt_url,
    help="Broker, mqtt://[user:password@]host:port (mqtts:// for TLS).",
)
@click.option(
    "--duration",
    show_envvar=True,
    envvar="SIM_DURATION",
    default=0.0,
    show_default=True,
    type=FiniteFloat(min=0),
    help="Wall seconds of simulated time to publish (duration x speed / 900 intervals); 0 runs until Ctrl-C / SIGTERM.",
)
@click.option(
    "--prefix",
    show_envvar=True,
    envvar="MQTT_TOPIC_PREFIX",
    default=DEFAULT_PREFIX,
    show_default=True,
    help="Topic prefix.",
)
@click.option(
    "--connections",
    show_envvar=True,
    envvar="SIM_CONNECTIONS",
    type=click.Choice(CONNECTIONS),
    default="shared",
    show_default=True,
    help="shared: one gateway connection; per-meter: one connection per meter with its own last will.",
)
@click.option(
    "--drop-rate",
    show_envvar=True,
    envvar="SIM_DROP_RATE",
    type=_RATE,
    default=0.0,
    show_default=True,
    help="Fault: share of messages silently dropped.",
)
@click.option(
    "--duplicate-rate",
    show_envvar=True,
    envvar="SIM_DUPLICATE_RATE",
    type=_RATE,
    default=0.0,
    show_default=True,
    help="Fault: share of messages sent twice.",
)
@click.option(
    "--reorder-rate",
    show_envvar=True,
    envvar="SIM_REORDER_RATE",
    type=_RATE,
    default=0.0,
    show_default=True,
    help="Fault: share of messages swapped with the one before.",
)
@click.option(
    "--delay-rate",
    show_envvar=True,
    envvar="SIM_DELAY_RATE",
    type=_RATE,
    default=0.0,
    show_default=True,
    help="Fault: share of messages held back 1-4 intervals.",
)
@click.option(
    "--corrupt-rate",
    show_envvar=True,
    envvar="SIM_CORRUPT_RATE",
    type=_RATE,
    default=0.0,
    show_default=True,
    help="Fault: share of payloads damaged (truncated, not JSON, bad number, wrong meter).",
)
@click.option(
    "--clock-skew-rate",
    show_envvar=True,
    envvar="SIM_CLOCK_SKEW_RATE",
    type=_RATE,
    default=0.0,
    show_default=True,
    help="Fault: share of meters whose clock is 90-900 s off (clock_drift events; fix with time_sync).",
)
@click.option(
    "--reconnect-rate",
    show_envvar=True,
    envvar="SIM_RECONNECT_RATE",
    type=_RATE,
    default=0.0,
    show_default=True,
    help="Fault: chance per interval that every connection drops at once and reconnects.",
)
@click.option(
    "--backlog-days",
    show_envvar=True,
    envvar="SIM_BACKLOG_DAYS",
    type=FiniteFloat(0, 60),
    default=0.0,
    show_default=True,
    help="Start with this many days of undelivered intervals in every meter: the first calls upload them as a backlog (history over MQTT).",
)
@click.option(
    "--record",
    show_envvar=True,
    envvar="SIM_RECORD",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help=(
        "Also write every published message to this file as JSON lines (topic, retain, "
        "payload; payload_base64 for bytes that are not UTF-8)."
    ),
)
def run(
    scenario: Scenario | None,
    meters: int | None,
    seed: int | None,
    start: datetime | None,
    shard: tuple[int, int],
    speed: float | None,
    mqtt_url: str,
    duration: float,
    prefix: str,
    connections: str,
    drop_rate: float,
    duplicate_rate: float,
    reorder_rate: float,
    delay_rate: float,
    corrupt_rate: float,
    clock_skew_rate: float,
    reconnect_rate: float,
    backlog_days: float,
    record: Path | None,
) -> None:
    """Publish the fleet's intervals, events and statuses and answer commands until stopped."""
    setup = resolve(scenario, meters, seed, start, shard, datetime.now(UTC))
    if not setup.meters:
        raise click.ClickException("the scenario's filters and the shard leave no meters")
    rate = speed or (scenario.speed if scenario and scenario.speed else DEFAULT_SPEED)
    faults = FaultRates(
        drop=drop_rate,
        duplicate=duplicate_rate,
        reorder=reorder_rate,
        delay=delay_rate,
        corrupt=corrupt_rate,
        clock_skew=clock_skew_rate,
        reconnect=reconnect_rate,
    )
    sink: IO[bytes] | None = record.open("wb") if record else None

    def write(topic: str, payload: bytes, retain: bool) -> None:
        assert sink is not None  # noqa: S101 - only installed when the file is open
        sink.write(record_line(topic, payload, retain))

    publisher = FleetPublisher(
        setup.meters,
        mqtt_url=mqtt_url,
        seed=setup.seed,
        start=setup.start,
        speed=rate,
        prefix=prefix,
        incidents=setup.incidents,
        faults=faults,
        connections=connections,  # type: ignore[arg-type]
        record=write if sink else None,
        backlog_days=backlog_days,
        whole=setup.whole,
    )

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: finishing the current interval and marking meters offline", signum)
        publisher.stop()
        # A second Ctrl-C interrupts the drain instead of waiting for it.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    if setup.incidents:
        for inc in setup.incidents:
            log.info(
                "incident %s (%s) at %s on %d meters",
                inc.name,
                inc.kind,
                inc.start,
                int(inc.rows.sum()),
            )
    try:
        stats = publisher.run(duration)
    except (OSError, ConnectionError) as exc:
        raise click.ClickException(f"cannot reach the MQTT broker at {mqtt_url}: {exc}") from None
    finally:
        if sink:
            sink.close()
    log.info("simulator stopped: %s", stats.summary())


@cli.command()
def scenarios() -> None:
    """List the bundled scenarios (simulator/scenarios/*.yaml)."""
    for name, _ in list_scenarios():
        s = load_scenario(name)
        kinds = ", ".join(sorted({i.kind for i in s.incidents})) or "none"
        click.echo(f"{name:<16} {s.meters or DEFAULT_METERS:>6} meters  incidents: {kinds}")
        click.echo(f"{'':<16} {s.description}")


@cli.command()
@_common
def fleet(
    scenario: Scenario | None,
    meters: int | None,
    seed: int | None,
    start: datetime | None,
    shard: tuple[int, int],
) -> None:
    """Print the fleet (after scenario filters and sharding) as JSON lines."""
    setup = resolve(scenario, meters, seed, start, shard, datetime.now(UTC))
    out = sys.stdout.buffer
    for meter in setup.meters:
        out.write(orjson.dumps(dataclasses.asdict(meter)) + b"\n")
    out.flush()


@cli.command()
@_common
@click.option(
    "--days",
    show_envvar=True,
    envvar="SIM_BACKFILL_DAYS",
    type=FiniteFloat(min=0, min_open=True, max=MAX_SPAN.days),
    required=True,
    help="Days of history to write, ending where `run` starts (its --start: the scenario's, else now - 7 days).",
)
@click.option(
    "--database-url",
    show_envvar=True,
    envvar="DATABASE_URL",
    default=None,
    help="SQLAlchemy URL  [default: sqlite:///instance/wattline.db, as the portal]",
)
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Run the database migrations first.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def backfill(
    scenario: Scenario | None,
    meters: int | None,
    seed: int | None,
    start: datetime | None,
    shard: tuple[int, int],
    days: float,
    database_url: str | None,
    migrate: bool,
    quiet: bool,
) -> None:
    """Write the fleet's interval history straight to the database (idempotent, resumable).

    The scenario's incidents are replayed from the start of the backfilled period.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from app.config import Settings
    from app.db import migrate as migrations
    from app.db.session import make_engine
    from simulator import backfill as writer

    url = database_url or Settings.from_env().database_url
    logging.getLogger("alembic").setLevel(logging.WARNING)
    live = resolve(scenario, meters, seed, start, shard, datetime.now(UTC))
    if not live.meters:
        raise click.ClickException("the scenario's filters and the shard leave no meters")
    intervals = days * 96
    if abs(intervals - round(intervals)) > 1e-9:
        raise click.BadParameter(
            f"{days:g} days is {intervals:g} intervals; give a whole number of 15 minutes",
            param_hint="--days",
        )
    span = timedelta(minutes=15 * round(intervals))
    if live.start - EARLIEST < span or live.start > LATEST:
        raise click.BadParameter(
            f"{days:g} days before {live.start:%Y-%m-%d %H:%M} is outside {EARLIEST:%Y} to "
            f"{LATEST:%Y} (the ingest refuses intervals before 2000)",
            param_hint="--start/--days",
        )
    begin = live.start - span
    # Over the whole fleet, cut to the shard, as `run` does: shards write one fleet's history.
    incidents = (
        cut_to_shard(scenario.bind(live.whole, begin, live.seed), live.whole, live.meters)
        if scenario is not None
        else []
    )
    if migrate:
        migrations.upgrade(url)
    engine = make_engine(url)
    total = len(live.meters) * round(days * 96)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("intervals"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, disable=quiet) as bar:
            task = bar.add_task(f"backfill {len(live.meters)} meters", total=total)
            stats = writer.backfill(
                engine,
                live.meters,
                live.seed,
                begin,
                days,
                incidents,
                progress=lambda n: bar.advance(task, n),
            )
    finally:
        engine.dispose()
    rate = stats.intervals / stats.generate_seconds if stats.generate_seconds else 0.0
    click.echo(
        f"{stats.intervals:,} intervals from {begin:%Y-%m-%d %H:%M}Z for {len(live.meters)} meters: "
        f"{stats.written:,} new rows; generated at {rate:,.0f}/s, "
        f"written in {stats.write_seconds:.1f} s"
    )
