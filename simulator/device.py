"""What a simulated meter does with a head-end command: pure, and never raises."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from app.domain.telemetry import (
    Command,
    ContractError,
    Reply,
    format_time,
    parse_time,
    reading_to_dict,
)
from simulator.fleet import Meter
from simulator.model import INTERVAL, interval_start, meter_readings

# A week of intervals: enough for any backfill and a bounded reply size (~100 KB).
MAX_READ_INTERVALS: Final = 96 * 7
COMMANDS: Final = ("ping", "read")


class CommandError(ValueError):
    """Raise inside command handling when the command or its arguments are unusable."""


def error_reply(command_id: str, message: str) -> Reply:
    """Build an error reply carrying `message`."""
    return Reply(id=command_id, status="error", result={"error": message})


def handle_command(
    meter: Meter,
    cmd: Command,
    *,
    now: datetime,
    seed: int,
    last_complete_interval: datetime,
    registers: Mapping[str, float] | None = None,
) -> Reply:
    """Answer `cmd` as `meter` would at simulated time `now`; problems become error replies."""
    try:
        if cmd.command == "ping":
            return Reply(cmd.id, "ok", _ping(meter, now))
        if cmd.command == "read":
            return Reply(
                cmd.id, "ok", _read(meter, cmd.args, seed, last_complete_interval, registers)
            )
        raise CommandError(f"unknown command {cmd.command!r}; supported: {', '.join(COMMANDS)}")
    except (CommandError, ContractError) as exc:
        return error_reply(cmd.id, str(exc))


def _ping(meter: Meter, now: datetime) -> dict[str, Any]:
    return {
        "meter_id": meter.id,
        "time": format_time(now),
        "network": meter.network,
        "signal_dbm": meter.signal_dbm,
    }


def _read(
    meter: Meter,
    args: Mapping[str, Any],
    seed: int,
    last_complete_interval: datetime,
    registers: Mapping[str, float] | None,
) -> dict[str, Any]:
    what = args.get("what")
    available_until = last_complete_interval + INTERVAL
    if what == "registers":
        if registers is None:
            raise CommandError("registers are not available on this meter")
        return {
            "meter_id": meter.id,
            "as_of": format_time(available_until),
            "registers": {name: round(value, 3) for name, value in registers.items()},
        }
    if what == "intervals":
        start = parse_time(args.get("start"), "args.start")
        end = parse_time(args.get("end"), "args.end")
        if end <= start:
            raise CommandError("args.end must be after args.start")
        first = -(-int(start.timestamp()) // INTERVAL.seconds)  # first interval starting >= start
        stop = min(int(end.timestamp()), int(available_until.timestamp()))
        last = -(-stop // INTERVAL.seconds)  # exclusive: intervals starting before `end`
        count = max(0, last - first)
        if count > MAX_READ_INTERVALS:
            raise CommandError(
                f"range covers {count} intervals; at most {MAX_READ_INTERVALS} per read"
            )
        readings = meter_readings(meter, interval_start(first), count, seed) if count else []
        return {
            "meter_id": meter.id,
            "readings": [reading_to_dict(r) for r in readings],
        }
    raise CommandError("args.what must be 'registers' or 'intervals'")
