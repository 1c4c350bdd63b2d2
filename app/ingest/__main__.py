"""`python -m app.ingest`: run the ingest worker until SIGINT/SIGTERM; `vee` runs VEE."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clitypes import MAX_DAYS, FiniteFloat, run
from app.config import ConfigError, Settings, check_share_group
from app.db import models, queries
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry, vee
from app.domain.localtime import EARLIEST, LATEST, zone_for, zone_named
from app.domain.telemetry import DEFAULT_PREFIX
from app.exports import csvio, greenbutton
from app.exports.series import interval_from_row
from app.ingest.estimation import run_vee
from app.ingest.importer import store_intervals
from app.ingest.worker import IngestWorker, tune_gc, tune_malloc

log = logging.getLogger(__name__)


def _share_group(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if not value:
        return None
    try:
        return check_share_group(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


MAX_VEE_WINDOW = timedelta(days=366)  # as the API's ranges: a pass holds a window's readings


@click.group(invoke_without_command=True)
@click.option("--mqtt-url", envvar="MQTT_URL", default="mqtt://127.0.0.1:1883", show_default=True)
@click.option("--database-url", envvar="DATABASE_URL", default=None, help="default: Settings")
@click.option("--prefix", envvar="MQTT_TOPIC_PREFIX", default=DEFAULT_PREFIX, show_default=True)
@click.option(
    "--client-id", envvar="INGEST_CLIENT_ID", default="wattline-ingest", show_default=True
)
@click.option(
    "--share-group",
    envvar="INGEST_SHARE_GROUP",
    default=None,
    callback=_share_group,
    help="split the stream with every worker in this group ($share/GROUP/...); "
    "each worker needs its own stable --client-id",
)
@click.option(
    "--future-tolerance",
    envvar="INGEST_FUTURE_TOLERANCE_S",
    type=FiniteFloat(min=0, max=MAX_DAYS * 86400),
    default=3600.0,
    show_default=True,
    help="seconds an interval may start after its receive time before it is dead-lettered",
)
@click.option("--log-level", envvar="LOG_LEVEL", default="INFO", show_default=True)
@click.pass_context
def main(
    ctx: click.Context,
    mqtt_url: str,
    database_url: str | None,
    prefix: str,
    client_id: str,
    share_group: str | None,
    future_tolerance: float,
    log_level: str,
) -> None:
    """Subscribe to meter telemetry and store it exactly once (subcommands: see --help)."""
    _logging(log_level)
    url = database_url or Settings.from_env().database_url
    ctx.obj = url
    if ctx.invoked_subcommand is not None:
        return
    limits = vee.Plausibility(future_tolerance=timedelta(seconds=future_tolerance))
    tune_gc()
    tune_malloc()
    worker = IngestWorker(
        mqtt_url, url, prefix=prefix, client_id=client_id, limits=limits, share_group=share_group
    )
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        worker.start()
    except OSError as exc:
        raise click.ClickException(f"cannot reach the MQTT broker at {mqtt_url}: {exc}") from exc
    shared = f", share group {share_group} as {client_id}" if share_group else ""
    click.echo(f"ingest: {mqtt_url} → {url.split('@')[-1]} (prefix {prefix}{shared})", err=True)
    done.wait()
    worker.stop()


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        if len(value) == 10:  # a plain date: midnight UTC
            found = datetime.fromisoformat(value).replace(tzinfo=UTC)
        else:
            found = telemetry.floor_interval(telemetry.parse_time(value, param.name or "time"))
    except (ValueError, telemetry.ContractError) as exc:
        raise click.BadParameter(f"{value!r} is not a date or RFC 3339 time ({exc})") from None
    # Windows and look-backs are computed around it: near year 1 or 9999 they overflow.
    if not EARLIEST <= found <= LATEST:
        raise click.BadParameter(f"{value!r} is not between {EARLIEST:%Y} and {LATEST:%Y}")
    return found


def _interval(ctx: click.Context, param: click.Parameter, value: str) -> datetime | None:
    """Parse one interval's start exactly: `edit` must not move a correction to another one."""
    found = _time(ctx, param, value)
    try:
        exact = telemetry.parse_time(value, "start") if len(value) != 10 else found
    except telemetry.ContractError:
        exact = found
    if exact != found:
        raise click.BadParameter(f"{value!r} is not the start of a 15-minute interval")
    return found


_F = TypeVar("_F", bound=Callable[..., object])
_VEE_DEFAULTS = vee.VeeConfig()
# The other VeeConfig thresholds as `vee` options named after their fields (timedeltas in
# minutes), each with a VEE_<FIELD> environment variable; defaults come from VeeConfig.
_VEE_THRESHOLDS: tuple[tuple[str, click.ParamType[Any, Any], str], ...] = (
    ("spike_ratio", FiniteFloat(min=1, min_open=True), "spike: times the nearby median"),
    ("spike_window", click.IntRange(min=2), "spike: intervals around one for the median"),
    ("spike_min_kwh", FiniteFloat(min=0), "spike: the least kWh that can be one"),
    ("zero_run_intervals", click.IntRange(min=1), "zeros in a row on an active meter"),
    ("sum_tolerance_kwh", FiniteFloat(min=0), "sum check: allowed kWh difference"),
    ("sum_tolerance_ratio", FiniteFloat(min=0), "sum check: or this share of the delta"),
    ("demand_tolerance_kw", FiniteFloat(min=0), "kW vs kWh x 4: allowed difference"),
    ("demand_tolerance_ratio", FiniteFloat(min=0), "kW vs kWh x 4: or this share"),
    (
        "clock_tolerance",
        FiniteFloat(min=0, max=MAX_DAYS * 1440),
        "minutes an interval may end after now",
    ),
    ("reference_days", click.IntRange(min=1, max=MAX_DAYS), "reference days averaged"),
    ("reference_lookback_days", click.IntRange(min=1, max=MAX_DAYS), "days back to find them in"),
)


def _vee_threshold_options(command: _F) -> _F:
    for name, kind, text in reversed(_VEE_THRESHOLDS):
        default = getattr(_VEE_DEFAULTS, name)
        minutes = isinstance(default, timedelta)
        command = click.option(
            f"--{name.replace('_', '-')}",
            envvar=f"VEE_{name.upper()}{'_MIN' if minutes else ''}",
            show_envvar=True,
            type=kind,
            default=default.total_seconds() / 60 if minutes else default,
            show_default=True,
            help=text,
        )(command)
    return command


@main.command("vee")
@click.option("--meter", "meter_ids", multiple=True, help="meter id (repeatable); default: all")
@click.option("--start", callback=_time, help="YYYY-MM-DD or RFC 3339 (UTC)")
@click.option("--end", callback=_time, help="exclusive; YYYY-MM-DD or RFC 3339")
@click.option(
    "--last-days",
    envvar="VEE_LAST_DAYS",
    show_envvar=True,
    type=click.IntRange(min=1, max=MAX_VEE_WINDOW.days),
    default=None,
    help="instead of --start/--end: the N whole UTC days before today",
)
@click.option(
    "--every",
    envvar="VEE_EVERY_S",
    show_envvar=True,
    type=FiniteFloat(min=0, min_open=True, max=MAX_DAYS * 86400),
    default=None,
    help="with --last-days: run again every this many seconds until SIGTERM/Ctrl-C",
)
@click.option(
    "--max-linear-gap",
    envvar="VEE_MAX_LINEAR_GAP_H",
    show_envvar=True,
    type=FiniteFloat(min=0, max=MAX_VEE_WINDOW.days * 24),
    default=2.0,
    show_default=True,
    help="hours: longer gaps use reference days",
)
@click.option(
    "--high-demand-kw",
    envvar="VEE_HIGH_DEMAND_KW",
    show_envvar=True,
    type=FiniteFloat(),
    default=None,
    help="questionable above this",
)
@click.option(
    "--low-demand-kw",
    envvar="VEE_LOW_DEMAND_KW",
    show_envvar=True,
    type=FiniteFloat(),
    default=None,
    help="questionable below this",
)
@_vee_threshold_options
@click.pass_obj
def vee_command(
    database_url: str,
    /,
    meter_ids: tuple[str, ...],
    start: datetime | None,
    end: datetime | None,
    last_days: int | None,
    every: float | None,
    max_linear_gap: float,
    high_demand_kw: float | None,
    low_demand_kw: float | None,
    **thresholds: float,
) -> None:
    """Validate and estimate stored readings of meters over [start, end), once or on a schedule."""
    if last_days is None:
        if start is None or end is None:
            raise click.UsageError("give --start and --end, or --last-days")
        if every is not None:
            raise click.UsageError("--every needs --last-days (a window that moves)")
        if end <= start:
            raise click.BadParameter("end must be after start", param_hint="--end")
        if end - start > MAX_VEE_WINDOW:
            # A pass holds its window's readings: --end 9999 took 1.8 GB in 10 s.
            raise click.BadParameter(
                f"the window is limited to {MAX_VEE_WINDOW.days} days", param_hint="--end"
            )
    elif start is not None or end is not None:
        raise click.UsageError("--last-days replaces --start and --end")
    values: dict[str, Any] = {
        name: timedelta(minutes=value)
        if isinstance(getattr(_VEE_DEFAULTS, name), timedelta)
        else value
        for name, value in thresholds.items()
    }
    try:
        config = vee.VeeConfig(
            max_linear_gap=timedelta(hours=max_linear_gap),
            high_demand_kw=high_demand_kw,
            low_demand_kw=low_demand_kw,
            **values,
        )
    except ValueError as exc:
        # Limits that hold between options (reference days within the lookback).
        raise click.UsageError(str(exc)) from None
    engine = make_engine(database_url)
    try:
        sessions = make_sessionmaker(engine)
        if last_days is not None:
            _scheduled_vee(sessions, meter_ids, last_days, every, config)
        elif start is not None and end is not None:  # both given: checked above
            _run_vee(sessions, meter_ids, start, end, config)
    finally:
        engine.dispose()


def _scheduled_vee(
    sessions: sessionmaker[Session],
    meter_ids: tuple[str, ...],
    last_days: int,
    every: float | None,
    config: vee.VeeConfig,
) -> None:
    # Whole days that have ended, so an interval still on its way (a meter reports after
    # its interval ends, a backlog after an outage) is not estimated as missing meanwhile;
    # each run revisits them, and an actual that arrives later replaces an estimate.
    done = threading.Event()
    if every is not None:

        def _stop(signum: int, frame: FrameType | None) -> None:
            done.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    # When a pass last finished, kept across restarts: the healthcheck judges by it, so a
    # VEE that starts passes and never finishes one (crashing, restarted) turns unhealthy.
    with sessions() as session:
        beat = session.get(models.ServiceHeartbeat, queries.VEE_HEARTBEAT)
        done_at = beat.details.get("done_at") if beat else None
    passes = 0
    while True:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        first = today - timedelta(days=last_days)
        window = {"start": first, "end": today, "done_at": done_at}
        _vee_heartbeat(sessions, {"state": "running", "passes": passes, **window})
        try:
            meters = _run_vee(sessions, meter_ids, first, today, config, done.is_set)
        except click.ClickException as exc:
            # The command's own arguments (an unknown --meter): no later pass does better.
            _vee_heartbeat(sessions, {"state": "failed", "error": exc.format_message(), **window})
            raise
        except Exception as exc:
            if every is None:
                raise
            # The next pass may find the database back; the heartbeat says what happened.
            log.exception("VEE pass failed; next one in %.0f s", every)
            with contextlib.suppress(Exception):
                _vee_heartbeat(sessions, {"state": "failed", "error": str(exc)[:300], **window})
        else:
            if done.is_set():  # stopped between meters: this pass is not done
                _vee_heartbeat(sessions, {"state": "stopped", "passes": passes, **window})
                return
            passes += 1
            done_at = telemetry.format_time(datetime.now(UTC))
            window["done_at"] = done_at
            _vee_heartbeat(
                sessions, {"state": "done", "passes": passes, "meters": meters, **window}
            )
        if every is None or done.wait(every):
            return


def _vee_heartbeat(sessions: sessionmaker[Session], details: dict[str, object]) -> None:
    """Record scheduled VEE's state (read by the compose healthcheck and /api/v1/health)."""
    doc = {
        k: telemetry.format_time(v) if isinstance(v, datetime) else v for k, v in details.items()
    }
    with sessions.begin() as session:
        session.merge(
            models.ServiceHeartbeat(
                name=queries.VEE_HEARTBEAT,
                broker_connected=False,
                updated_at=datetime.now(UTC),
                details=doc,
            )
        )


def _run_vee(
    sessions: sessionmaker[Session],
    meter_ids: tuple[str, ...],
    start: datetime,
    end: datetime,
    config: vee.VeeConfig,
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Run VEE over [start, end) for the meters (default: all) until `stopping`; return how many ran."""
    with sessions() as session:
        meters = {m.id: m for m in session.scalars(select(models.Meter))}
    unknown = sorted(set(meter_ids) - set(meters))
    if unknown:
        raise click.BadParameter(f"unknown meter(s) {', '.join(unknown)}", param_hint="--meter")
    ran = 0
    for meter_id in meter_ids or sorted(meters):
        if stopping():
            break
        ran += 1
        with sessions.begin() as session:
            s = run_vee(
                session,
                meter_id,
                start,
                end,
                now=datetime.now(UTC),
                config=config,
                tz=zone_for(meters[meter_id].lon),
            )
        click.echo(
            f"{meter_id}: {s.flagged} questionable, {s.estimated_linear} linear, "
            f"{s.estimated_reference_day} reference-day, {s.unestimated} left missing; "
            f"findings {dict(s.findings)}"
        )
    return ran


def _store_file(
    database_url: str, meter_id: str, intervals: list[vee.Interval], source: str, replace: bool
) -> None:
    # The ingest's own limits (--future-tolerance / INGEST_FUTURE_TOLERANCE_S): the demo's
    # simulated clock runs ahead, and its intervals are edited like any other.
    tolerance = click.get_current_context().find_root().params["future_tolerance"]
    limits = vee.Plausibility(future_tolerance=timedelta(seconds=tolerance))
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            summary = store_intervals(
                session,
                meter_id,
                intervals,
                source=source,
                now=datetime.now(UTC),
                replace=replace,
                limits=limits,
            )
    except LookupError as exc:
        raise click.BadParameter(str(exc), param_hint="--meter") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(
        f"{meter_id}: {summary.offered} intervals from {source}; "
        f"{summary.audited} stored values changed (audited)"
    )


_REPLACE = click.option(
    "--replace", is_flag=True, help="overwrite stored actuals too (default: only gaps/estimates)"
)


@main.command("import-csv")
@click.option("--meter", "meter_id", required=True, help="meter to load the intervals into")
@click.option("--tz", default=None, help="IANA zone for start times without a UTC offset")
@_REPLACE
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def import_csv(database_url: str, meter_id: str, tz: str | None, replace: bool, path: Path) -> None:
    """Load a customer's interval CSV (see docs in app/exports/csvio.py) into a meter."""
    try:
        zone = zone_named(tz) if tz else None
    except ValueError:
        raise click.BadParameter(f"unknown time zone {tz!r}", param_hint="--tz") from None
    try:
        rows = csvio.read_csv(path.read_text(encoding="utf-8-sig"), tz=zone)
    except (csvio.CsvError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    others = sorted({r.meter_id for r in rows if r.meter_id not in (None, meter_id)})
    if others:
        raise click.ClickException(f"{path}: rows for other meters {', '.join(others)}")
    _store_file(database_url, meter_id, [r.interval for r in rows], f"csv:{path.name}", replace)


@main.command("import-greenbutton")
@click.option("--meter", "meter_id", required=True, help="meter to load the intervals into")
@_REPLACE
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def import_greenbutton(database_url: str, meter_id: str, replace: bool, path: Path) -> None:
    """Load a Green Button (ESPI) usage feed's 15-minute intervals into a meter."""
    try:
        readings = greenbutton.read_feed(path.read_bytes())
    except greenbutton.GreenButtonError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    usable = [r for r in readings if r.interval_seconds == vee.INTERVAL_SECONDS]
    if len(usable) != 1:
        raise click.ClickException(
            f"{path}: expected one 15-minute MeterReading, found {len(usable)}"
        )
    _store_file(database_url, meter_id, usable[0].intervals, f"greenbutton:{path.name}", replace)


@main.command("edit")
@click.option("--meter", "meter_id", required=True, help="meter whose interval is corrected")
@click.option("--start", required=True, callback=_interval, help="interval start, RFC 3339")
@click.option("--kwh", type=FiniteFloat(min=0), required=True, help="corrected energy")
@click.option("--demand-kw", type=FiniteFloat(min=0), default=None, help="default kWh x 4")
@click.option("--by", "editor", default="operator", show_default=True, help="who edits (audit)")
@click.pass_obj
def edit_command(
    database_url: str,
    meter_id: str,
    start: datetime,
    kwh: float,
    demand_kw: float | None,
    editor: str,
) -> None:
    """Correct one interval by hand: the value is flagged `edited` and the change audited."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            row = session.get(models.Reading, (meter_id, start))
            current = interval_from_row(row) if row else vee.Interval(start, 0.0)
    finally:
        engine.dispose()
    edited = vee.edit(current, kwh=kwh, demand_kw=demand_kw)
    _store_file(database_url, meter_id, [edited], f"edit:{editor}"[:24], replace=True)


if __name__ == "__main__":
    run(main)
