"""Two-way commands from the portal: which exist, who may send them, their arguments (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from app.domain.access import Role
from app.domain.telemetry import ContractError, parse_time

_EVERYONE = frozenset(Role)
_OPERATORS = frozenset(
    {
        Role.VENDOR_ADMIN,
        Role.VENDOR_SE,
        Role.DISTRIBUTOR_MANAGER,
        Role.UTILITY_VIEWER,
        Role.BUILDING_MANAGER,
    }
)
# Switching a customer's supply is the utility's decision: its own staff, and the vendor
# running the demo. A distributor or a building tenant never opens a relay.
_RELAY = frozenset({Role.VENDOR_ADMIN, Role.VENDOR_SE, Role.UTILITY_VIEWER})
SCHEDULES: Final = ("live", "hourly", "daily")
MAX_READ_INTERVALS: Final = 672  # one week: the meter refuses more per read


class CommandArgsError(ValueError):
    """Raise when a command or its arguments are not acceptable; `field` names what."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command the portal offers."""

    name: str
    label: str
    roles: frozenset[Role]
    asynchronous: bool = False


COMMANDS: Final[dict[str, CommandSpec]] = {
    spec.name: spec
    for spec in (
        CommandSpec("ping", "Ping", _EVERYONE),
        CommandSpec("read", "On-demand read", _EVERYONE),
        CommandSpec("time_sync", "Time sync", _OPERATORS),
        CommandSpec("demand_reset", "Demand reset", _OPERATORS),
        CommandSpec("set_schedule", "Set call-in schedule", _OPERATORS),
        CommandSpec("disconnect", "Disconnect", _RELAY, asynchronous=True),
        CommandSpec("connect", "Connect", _RELAY, asynchronous=True),
    )
}
# A meter answers within seconds when it is reachable; relays move at the next interval
# boundary, which at real-time speed is up to 15 minutes away.
REPLY_TIMEOUT: Final = timedelta(seconds=30)
ASYNC_TIMEOUT: Final = timedelta(minutes=20)
FINAL_STATUSES: Final = frozenset({"ok", "error"})


def allowed_commands(role: Role) -> list[CommandSpec]:
    """Return the commands a role may send, in display order."""
    return [spec for spec in COMMANDS.values() if role in spec.roles]


def validate(command: Any, args: Any, role: Role) -> tuple[str, dict[str, Any]]:
    """Check a command request for a role; return the command and its normalised arguments."""
    if not isinstance(command, str) or command not in COMMANDS:
        raise CommandArgsError("command", f"must be one of {', '.join(COMMANDS)}")
    if role not in COMMANDS[command].roles:
        raise PermissionError(f"your role may not send {command!r}")
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise CommandArgsError("args", "must be an object")
    return command, _ARGS[command](dict(args))


def _no_args(args: dict[str, Any]) -> dict[str, Any]:
    if args:
        raise CommandArgsError("args", f"takes no arguments, got {sorted(args)}")
    return {}


def _read(args: dict[str, Any]) -> dict[str, Any]:
    what = args.get("what", "registers")
    if what == "registers":
        if set(args) - {"what"}:
            raise CommandArgsError("args", "a register read takes only 'what'")
        return {"what": "registers"}
    if what != "intervals":
        raise CommandArgsError("args.what", "must be 'registers' or 'intervals'")
    start, end = _time(args, "start"), _time(args, "end")
    if end <= start:
        raise CommandArgsError("args.end", "must be after args.start")
    if (end - start) > timedelta(minutes=15 * MAX_READ_INTERVALS):
        raise CommandArgsError("args.end", f"a read covers at most {MAX_READ_INTERVALS} intervals")
    return {"what": "intervals", "start": args["start"], "end": args["end"]}


def _time(args: dict[str, Any], name: str) -> datetime:
    try:
        return parse_time(args.get(name), f"args.{name}")
    except ContractError as exc:
        raise CommandArgsError(f"args.{name}", "must be an RFC 3339 timestamp") from exc


def _time_sync(args: dict[str, Any]) -> dict[str, Any]:
    if set(args) - {"time"}:
        raise CommandArgsError("args", "time_sync takes only an optional 'time'")
    if "time" in args:
        _time(args, "time")
        return {"time": args["time"]}
    return {}


def _set_schedule(args: dict[str, Any]) -> dict[str, Any]:
    schedule = args.get("schedule")
    if schedule not in SCHEDULES or set(args) - {"schedule"}:
        raise CommandArgsError("args.schedule", f"must be one of {', '.join(SCHEDULES)}")
    return {"schedule": schedule}


_ARGS: Final = {
    "ping": _no_args,
    "read": _read,
    "time_sync": _time_sync,
    "demand_reset": _no_args,
    "set_schedule": _set_schedule,
    "disconnect": _no_args,
    "connect": _no_args,
}


def effective_status(status: str, requested_at: datetime, now: datetime) -> str:
    """Return the status to show: a command left unanswered too long has timed out."""
    if status == "pending" and now - requested_at > REPLY_TIMEOUT:
        return "timeout"
    if status == "accepted" and now - requested_at > ASYNC_TIMEOUT:
        return "timeout"
    return status
