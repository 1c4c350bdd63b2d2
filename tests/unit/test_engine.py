"""The device engine: schedules, store-and-forward, registers, events, commands, determinism."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from app.domain.telemetry import (
    Command,
    EventMessage,
    IntervalMessage,
    Reply,
    StatusMessage,
    decode_event,
    decode_interval,
    decode_reply,
    decode_status,
    format_time,
)
from simulator.engine import (
    MAX_READ_INTERVALS,
    REGISTER_WINDOW_INTERVALS,
    REGISTER_WINDOW_KW,
    Engine,
    Out,
)
from simulator.fleet import Meter, Schedule, build_fleet
from simulator.incidents import Incident
from simulator.model import FleetArrays

SEED = 11
START = datetime(2026, 3, 2, tzinfo=UTC)
Q = timedelta(minutes=15)


def fleet(n: int = 12, schedule: Schedule | None = "live", **overrides: Any) -> list[Meter]:
    """Build n meters, all on one schedule with good signal unless told otherwise."""
    meters = build_fleet(n, SEED)
    fields: dict[str, Any] = {"signal_dbm": -80.0, **overrides}
    if schedule is not None:
        fields["schedule"] = schedule
    return [dataclasses.replace(m, **fields) for m in meters]


def mask(n: int, *rows: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Return a fleet mask selecting `rows`."""
    m = np.zeros(n, dtype=np.bool_)
    m[list(rows)] = True
    return m


def run(engine: Engine, steps: int) -> list[Out]:
    """Start the engine and run `steps` intervals; return everything sent."""
    out = engine.start_messages()
    for _ in range(steps):
        out += engine.step()
    return out


def intervals(out: list[Out], engine: Engine) -> dict[int, list[IntervalMessage]]:
    """Decode interval messages per row."""
    got: dict[int, list[IntervalMessage]] = defaultdict(list)
    for o in out:
        if o.kind == "interval":
            got[o.row].append(decode_interval(o.payload, engine.meters[o.row].id))
    return got


def events(out: list[Out], row: int | None = None) -> list[EventMessage]:
    """Decode event messages (of one row)."""
    return [decode_event(o.payload) for o in out if o.kind == "event" and row in (None, o.row)]


def statuses(out: list[Out], row: int) -> list[StatusMessage]:
    """Decode one row's status messages."""
    return [decode_status(o.payload) for o in out if o.kind == "status" and o.row == row]


def replies(out: list[Out]) -> list[Reply]:
    """Decode replies."""
    return [decode_reply(o.payload) for o in out if o.kind == "reply"]


def starts(messages: list[IntervalMessage]) -> list[datetime]:
    """Return every reading start in delivery order."""
    return [r.start for m in messages for r in m.readings]


# ---------------------------------------------------------------- schedules and registers


@pytest.mark.parametrize(("schedule", "per_message"), [("live", 1), ("hourly", 4), ("daily", 96)])
def test_schedules_deliver_every_interval_once(schedule: Schedule, per_message: int) -> None:
    meters = fleet(8, schedule, network="lte")
    engine = Engine(meters, seed=SEED, start=START)
    # A perfect network: force every call through by using rows that succeed (checked below).
    out = run(engine, 96 * 3)
    got = intervals(out, engine)
    for row in range(len(meters)):
        seen = starts(got[row])
        assert len(seen) == len(set(seen)), "a meter sent an interval twice"
        assert seen == sorted(seen)
        assert seen[0] == START
        expected = [START + k * Q for k in range(len(seen))]
        assert seen == expected, "gap in the delivered intervals"
        assert len(seen) >= 96 * 2
        sizes = [len(m.readings) for m in got[row]]
        # Normal calls carry the schedule's worth; a failed call makes the next one bigger.
        assert max(set(sizes), key=sizes.count) == per_message
        assert all(s % per_message == 0 or s == sizes[0] for s in sizes)


@pytest.mark.parametrize(
    "start",
    [datetime(2000, 1, 6, tzinfo=UTC), datetime(2015, 1, 5, tzinfo=UTC), START],
    ids=["2000", "2015", "2026"],
)
def test_a_restarted_fleet_carries_on_its_registers(start: datetime) -> None:
    """A restart in the same 7-day window reads the registers the first run reached; later, higher."""
    meters = fleet(6, "hourly")
    first = Engine(meters, seed=SEED, start=start)
    for _ in range(96):
        first.step()
    # Restarted a day on, its meters holding a week not yet delivered: the same registers.
    for backlog in (0, 7):
        again = Engine(meters, seed=SEED, start=start + timedelta(days=1), backlog_days=backlog)
        assert again.reg_kwh == pytest.approx(first.reg_kwh, abs=1e-3)
        assert again.reg_kvarh == pytest.approx(first.reg_kvarh, abs=1e-3)
    # Windows of 7 days from 1970-01-01 turn on Thursdays at 00:00 UTC.
    turn = (first.t // REGISTER_WINDOW_INTERVALS + 1) * REGISTER_WINDOW_INTERVALS
    while first.t < turn:
        first.step()
    later = Engine(meters, seed=SEED, start=first.now)
    allowance = REGISTER_WINDOW_KW * first.arrays.design_kw * 7 * 24
    assert (later.reg_kwh > first.reg_kwh).all()
    assert (later.reg_kwh - first.reg_kwh < allowance).all()
    assert (later.reg_kvarh >= first.reg_kvarh).all()


def test_no_register_window_uses_its_whole_allowance() -> None:
    """Each 7-day window's energy stays under the allowance later runs count for it."""
    arrays = FleetArrays.build(build_fleet(100, SEED), SEED)
    first_2026 = 20454 * 96 // REGISTER_WINDOW_INTERVALS * REGISTER_WINDOW_INTERVALS
    hours = REGISTER_WINDOW_INTERVALS / 4
    for k in range(53):
        used = arrays.block(first_2026 + k * REGISTER_WINDOW_INTERVALS, REGISTER_WINDOW_INTERVALS)
        mean_kw = used.kwh.sum(axis=1) / hours
        assert (mean_kw < REGISTER_WINDOW_KW * arrays.design_kw).all(), k


def test_register_equals_sum_of_intervals() -> None:
    meters = fleet(6, "hourly")
    engine = Engine(meters, seed=SEED, start=START)
    got = intervals(run(engine, 96 * 2), engine)
    # The registers at the start: those of a run that has not stepped yet (years of energy).
    opening = Engine(meters, seed=SEED, start=START).reg_kwh
    for row, messages in got.items():
        total = float(opening[row])
        assert total > 1000.0
        for m in messages:
            total += sum(r.kwh for r in m.readings)
            assert m.register is not None
            assert m.register.at == max(r.start for r in m.readings) + Q
            assert m.register.kwh == pytest.approx(total, abs=1e-6)
    reply = replies(engine.command(0, Command("r", "read", {"what": "registers"}), engine.now))[0]
    assert reply.result["registers"]["kwh"] == pytest.approx(float(engine.reg_kwh[0]), abs=1e-3)
    assert reply.result["as_of"] == format_time(engine.now)


def test_failed_calls_buffer_and_alarm_then_recover() -> None:
    # Weak signal on 2G: many calls fail; nothing may be lost or duplicated anyway.
    meters = fleet(30, "live", network="2g", signal_dbm=-109.0)
    engine = Engine(meters, seed=SEED, start=START)
    out = run(engine, 96 * 2)
    assert engine.stats.failed_calls > 0
    got = intervals(out, engine)
    backfilled = 0
    for row in range(len(meters)):
        seen = starts(got[row])
        assert seen == [START + k * Q for k in range(len(seen))]
        delivered_to = START + len(seen) * Q
        assert delivered_to == START + int(engine.unsent_from[row] - engine.t0) * Q
        backfilled += sum("backfill" in r.flags for m in got[row] for r in m.readings)
    assert backfilled > 0
    kinds = {e.type for e in events(out)}
    assert "comms_failure" in kinds
    assert "comms_restored" in kinds
    assert "low_signal" in kinds


def test_backlog_days_upload_history_on_the_first_call() -> None:
    meters = fleet(5, "hourly")
    engine = Engine(meters, seed=SEED, start=START, backlog_days=1)
    # The registers when the backlog began: those of a run starting then.
    opening = Engine(meters, seed=SEED, start=START - timedelta(days=1)).reg_kwh
    got = intervals(run(engine, 8), engine)
    for row in range(len(meters)):
        seen = starts(got[row])
        assert seen[0] == START - timedelta(days=1)
        assert seen == [seen[0] + k * Q for k in range(len(seen))]
        first = got[row][0]
        late = [r for r in first.readings if "backfill" in r.flags]
        assert len(late) >= 96 - 4  # all but the last hour are late for an hourly meter
        assert first.register is not None
        uploaded = sum(r.kwh for r in first.readings)
        assert first.register.kwh == pytest.approx(opening[row] + uploaded, abs=1e-6)
    with pytest.raises(ValueError, match="backlog_days"):
        Engine(meters, seed=SEED, start=START, backlog_days=61)


# ---------------------------------------------------------------- incidents


def test_comms_outage_stores_and_forwards_with_backfill_flags_and_statuses() -> None:
    meters = fleet(4)
    gone, back = START + timedelta(hours=2, minutes=5), START + timedelta(hours=6)
    outage = Incident("comms_outage", "tower down", gone, back, mask(4, 1))
    engine = Engine(meters, seed=SEED, start=START, incidents=[outage])
    out = run(engine, 96)
    got = intervals(out, engine)
    seen = starts(got[1])
    assert seen == [START + k * Q for k in range(len(seen))]
    assert len(seen) >= 90
    during = [m for m in got[1] if len(m.readings) > 1]
    assert len(during) == 1, "the backlog travels as one message"
    backlog = during[0]
    assert backlog.readings[0].start == START + timedelta(hours=2)
    assert all("backfill" in r.flags for r in backlog.readings[:-1])
    assert "backfill" not in backlog.readings[-1].flags
    assert backlog.sent_at is not None
    assert backlog.sent_at >= back
    states = [(s.state, s.details.get("reason")) for s in statuses(out, 1)]
    assert states == [("online", None), ("offline", "comms_outage"), ("online", None)]
    types = [e.type for e in events(out, 1)]
    assert types == ["comms_failure", "comms_restored"]
    assert [e.at for e in events(out, 1)] == [gone, back]
    # The other meters never noticed.
    for r in (0, 2, 3):
        assert [s.state for s in statuses(out, r)] == ["online"]
        assert not any(e.type.startswith("comms") for e in events(out, r))


def test_power_outage_sends_last_gasp_then_backlog_with_power_fail() -> None:
    meters = fleet(3)
    cut, restore = START + timedelta(hours=1, minutes=10), START + timedelta(hours=3, minutes=5)
    storm = Incident("outage", "storm", cut, restore, mask(3, 0, 2))
    engine = Engine(meters, seed=SEED, start=START, incidents=[storm])
    out = run(engine, 24)
    for row in (0, 2):
        evs = events(out, row)
        assert [e.type for e in evs] == ["power_outage", "power_restored"]
        assert evs[0].at == cut
        assert evs[0].severity == "critical"
        assert evs[0].details["last_gasp"] is True
        assert evs[1].at == restore
        # The last gasp goes out at once; everything else waits for the power to return.
        order = [o for o in out if o.row == row and o.kind in ("event", "status")]
        assert decode_event(order[1].payload).type == "power_outage"
        assert decode_status(order[2].payload).state == "offline"
        readings = [r for m in intervals(out, engine)[row] for r in m.readings]
        dark = [r for r in readings if "power_fail" in r.flags]
        assert [r.start for r in dark] == [START + timedelta(hours=1) + k * Q for k in range(9)]
        assert all(r.kwh == 0 for r in dark if "partial" not in r.flags)
        assert all(v == 0 for r in dark if "partial" not in r.flags for v in r.voltage)
        assert [r.start for r in readings] == [START + k * Q for k in range(24)]
    assert events(out, 1) == []


def test_tamper_reverse_rotation_heat_wave_and_sunset() -> None:
    meters = fleet(8)
    start = datetime(2026, 7, 13, tzinfo=UTC)
    heat_region = "Midwest"
    midwest = [i for i, m in enumerate(meters) if m.utility_id == "glpl"]
    assert midwest
    t1 = start + timedelta(hours=3)
    incidents = [
        Incident("tamper", "cover off", t1, t1 + timedelta(hours=1), mask(8, 5)),
        Incident("reverse_rotation", "wired backwards", t1, None, mask(8, 6)),
        Incident("heat_wave", "heat", start, start + timedelta(days=2), mask(8), heat_region, 8.0),
        Incident("network_sunset", "3G off", t1, None, mask(8, 7)),
    ]
    engine = Engine(meters, seed=SEED, start=start, incidents=incidents)
    out = run(engine, 96)
    assert [e.type for e in events(out, 5)] == ["tamper"]
    assert events(out, 5)[0].severity == "critical"
    assert [e.type for e in events(out, 6)] == ["reverse_rotation"]
    got = intervals(out, engine)
    tampered = [r for m in got[5] for r in m.readings if "tamper" in r.flags]
    assert [r.start for r in tampered] == [t1 + k * Q for k in range(4)]
    reversed_ = [r for m in got[6] for r in m.readings if "reverse_rotation" in r.flags]
    assert reversed_
    assert all(r.kwh == 0 for r in reversed_)

    # An 8 degree heat spell in July pushes Midwest demand past its rated peak.
    def peaks(stream: list[Out]) -> int:
        return sum(e.type == "demand_threshold" for r in midwest for e in events(stream, r))

    calm = Engine(meters, seed=SEED, start=start, incidents=incidents[:2] + incidents[3:])
    assert peaks(out) > peaks(run(calm, 96))
    # After the sunset the cohort goes quiet and offline; its alarm never gets out.
    assert max(starts(got[7])) < t1
    assert statuses(out, 7)[-1].state == "offline"
    assert statuses(out, 7)[-1].details["reason"] == "network_sunset"
    assert events(out, 7) == []


def test_clock_drift_alarm_and_time_sync() -> None:
    meters = fleet(3)
    skew = np.array([0.0, 95.0, -5.0])
    engine = Engine(meters, seed=SEED, start=START, clock_skew_s=skew)
    out = run(engine, 4)
    drift = [e for e in events(out) if e.type == "clock_drift"]
    assert len(drift) == 1
    assert drift[0].meter_id == meters[1].id
    assert drift[0].details["drift_s"] == 95.0
    ping = replies(engine.command(1, Command("p", "ping"), engine.now))[0]
    assert ping.result["time"] == format_time(engine.now + timedelta(seconds=95))
    sync = replies(engine.command(1, Command("s", "time_sync"), engine.now))[0]
    assert sync.status == "ok"
    assert sync.result == {"adjusted_by_s": -95.0}
    out = engine.step()
    adjusted = intervals(out, engine)[1][0].readings[0]
    assert "clock_adjusted" in adjusted.flags
    ping = replies(engine.command(1, Command("p2", "ping"), engine.now))[0]
    assert ping.result["time"] == format_time(engine.now)
    # A sync to a time 2 minutes off sets the clock off: the alarm comes with the reply.
    off = engine.now + timedelta(minutes=2)
    out = engine.command(0, Command("s2", "time_sync", {"time": format_time(off)}), engine.now)
    assert replies(out)[0].result == {"adjusted_by_s": 120.0}
    assert [(e.type, e.details) for e in events(out, 0)] == [("clock_drift", {"drift_s": 120.0})]
    # A sync to within a minute raises nothing.
    near = engine.now + timedelta(seconds=30)
    out = engine.command(2, Command("s3", "time_sync", {"time": format_time(near)}), engine.now)
    assert replies(out)[0].status == "ok"
    assert events(out) == []


# ---------------------------------------------------------------- commands


def test_read_intervals_matches_what_was_delivered_and_respects_limits() -> None:
    meters = fleet(2)
    engine = Engine(meters, seed=SEED, start=START)
    out = run(engine, 12)
    delivered = [r for m in intervals(out, engine)[0] for r in m.readings][2:6]
    cmd = Command(
        "r1",
        "read",
        {
            "what": "intervals",
            "start": format_time(START + 2 * Q),
            "end": format_time(START + 6 * Q),
        },
    )
    reply = replies(engine.command(0, cmd, engine.now))[0]
    assert reply.status == "ok"
    got = reply.result["readings"]
    assert [g["start"] for g in got] == [format_time(r.start) for r in delivered]
    assert [g["kwh"] for g in got] == [r.kwh for r in delivered]
    future = Command(
        "r2",
        "read",
        {"what": "intervals", "start": format_time(START), "end": format_time(START + 40 * Q)},
    )
    assert len(replies(engine.command(0, future, engine.now))[0].result["readings"]) == 12
    too_long = Command(
        "r3",
        "read",
        {
            "what": "intervals",
            "start": format_time(START - timedelta(days=8)),
            "end": format_time(START),
        },
    )
    error = replies(engine.command(0, too_long, engine.now))[0]
    assert error.status == "error"
    assert f"at most {MAX_READ_INTERVALS}" in error.result["error"]


def test_demand_reset_set_schedule_and_relay() -> None:
    meters = fleet(2)
    engine = Engine(meters, seed=SEED, start=START)
    run(engine, 8)
    peak = float(engine.max_demand[0])
    out = engine.command(0, Command("d", "demand_reset"), engine.now)
    assert replies(out)[0].result == {"max_demand_kw": round(peak, 3)}
    assert [e.type for e in events(out)] == ["demand_reset"]
    assert engine.max_demand[0] == 0

    out = engine.command(0, Command("s", "set_schedule", {"schedule": "hourly"}), engine.now)
    assert replies(out)[0].result == {"schedule": "hourly", "previous": "live"}
    sizes = [len(m.readings) for _ in range(12) for m in intervals(engine.step(), engine)[0]]
    assert len(sizes) >= 2
    assert sizes[0] <= 4  # the first hourly call carries what is left since the last live one
    assert set(sizes[1:]) <= {4, 8}

    accepted = replies(engine.command(1, Command("x", "disconnect"), engine.now))[0]
    assert accepted.status == "accepted"
    out = engine.step()
    result = replies(out)[0]
    assert (result.id, result.status, result.result["relay"]) == ("x", "ok", "open")
    out = engine.step() + engine.step()
    assert all(r.kwh == 0 for m in intervals(out, engine)[1] for r in m.readings)
    engine.command(1, Command("y", "connect"), engine.now)
    engine.step()
    out = engine.step()
    assert all(r.kwh > 0 for m in intervals(out, engine)[1] for r in m.readings)
    ping = replies(engine.command(1, Command("p", "ping"), engine.now))[0]
    assert ping.result["relay"] == "closed"


@pytest.mark.parametrize(
    ("cmd", "message"),
    [
        (Command("c", "reboot"), "unknown command 'reboot'"),
        (Command("c", "read"), "args.what"),
        (Command("c", "read", {"what": "intervals", "start": "yesterday"}), "args.start"),
        (Command("c", "read", {"what": "intervals", "start": "2026-03-02T00:00:00Z"}), "args.end"),
        (
            Command(
                "c",
                "read",
                {
                    "what": "intervals",
                    "start": "2026-03-02T01:00:00Z",
                    "end": "2026-03-02T00:00:00Z",
                },
            ),
            "after",
        ),
        (Command("c", "set_schedule", {"schedule": "weekly"}), "args.schedule"),
        (Command("c", "set_schedule", {"schedule": ["live"]}), "args.schedule"),
        (Command("c", "time_sync", {"time": 5}), "args.time"),
        # Accepted before, and the meter's next interval then overflowed the calendar.
        (Command("c", "time_sync", {"time": "9999-12-31T23:59:00Z"}), "more than 366 days"),
    ],
)
def test_bad_commands_get_error_replies(cmd: Command, message: str) -> None:
    engine = Engine(fleet(1), seed=SEED, start=START)
    run(engine, 2)
    (reply,) = replies(engine.command(0, cmd, engine.now))
    assert reply.id == "c"
    assert reply.status == "error"
    assert message in reply.result["error"]


def test_relay_cannot_operate_without_supply() -> None:
    storm = Incident("outage", "storm", START, START + timedelta(hours=2), mask(1, 0))
    engine = Engine(fleet(1), seed=SEED, start=START + Q, incidents=[storm])
    run(engine, 1)
    engine.command(0, Command("x", "disconnect"), engine.now)
    boundary = engine.now + Q
    # Dark, the meter cannot send: the result waits for the power (and its link) to return.
    waited = [engine.step() for _ in range(5)]  # the intervals ending 00:45 .. 01:45
    assert [replies(out) for out in waited] == [[]] * 5
    out = engine.step()  # the interval ending 02:00, when the storm ends
    (result,) = replies(out)
    assert result.status == "error"
    assert "no supply" in result.result["error"]
    assert result.result["at"] == format_time(boundary)
    kinds = [o.kind for o in out]
    assert kinds.index("status") < kinds.index("reply")  # "online" first, then the result


def test_a_relay_result_waits_for_a_link_that_went_down() -> None:
    """The second reply of a disconnect came from a meter the head-end was told is offline."""
    outage = Incident("comms_outage", "tower", START + 2 * Q, START + 6 * Q, mask(1, 0))
    engine = Engine(fleet(1), seed=SEED, start=START, incidents=[outage])
    run(engine, 1)
    engine.command(0, Command("r", "disconnect"), engine.now)
    out = engine.step()  # the relay opens at this boundary, as the link goes down
    assert replies(out) == []
    assert [decode_status(o.payload).state for o in out if o.kind == "status"] == ["offline"]
    later = [o for _ in range(4) for o in engine.step()]
    (result,) = replies(later)
    assert (result.id, result.status, result.result["relay"]) == ("r", "ok", "open")


# ---------------------------------------------------------------- determinism


def _stream(seed: int) -> list[bytes]:
    meters = build_fleet(40, seed)
    storm = Incident(
        "outage",
        "storm",
        START + timedelta(hours=5),
        START + timedelta(hours=9),
        mask(40, *range(0, 40, 3)),
    )
    engine = Engine(meters, seed=seed, start=START, incidents=[storm])
    return [o.kind.encode() + str(o.row).encode() + o.payload for o in run(engine, 96)]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a, b = _stream(5), _stream(5)
    assert a == b
    assert len(a) > 40 * 20
    assert _stream(6) != a


def test_daily_meters_call_between_00_15_and_04_00_on_their_clocks() -> None:
    """The buildings' opening-time jitter moved about 7 % of daily calls outside the window."""
    from zoneinfo import ZoneInfo

    from simulator.fleet import UTILITY_BY_ID
    from simulator.weather import CLIMATES, REGION_INDEX

    meters = fleet(300, schedule="daily")
    for start in (START, datetime(2026, 7, 14, tzinfo=UTC)):  # standard and daylight time
        engine = Engine(meters, seed=SEED, start=start)
        called = intervals(run(engine, 2 * 96), engine)
        for row, messages in called.items():
            zone = ZoneInfo(
                CLIMATES[REGION_INDEX[UTILITY_BY_ID[meters[row].utility_id].region]].zone
            )
            for message in messages:
                assert message.register is not None
                local = message.register.at.astimezone(zone)
                minutes = local.hour * 60 + local.minute
                assert 15 <= minutes <= 240, (meters[row].id, local.isoformat())


def test_a_meter_offline_from_the_start_says_why_and_keeps_it_at_the_stop() -> None:
    """It said "shutdown" at the start, and a clean stop overwrote "network_sunset"."""
    sunset = Incident(
        "network_sunset", "3G", START - timedelta(days=3), START + timedelta(days=9), mask(3, 1)
    )
    tower = Incident("comms_outage", "tower", START, START + 2 * Q, mask(3, 2))
    engine = Engine(fleet(3), seed=SEED, start=START, incidents=[sunset, tower])
    out = run(engine, 3)
    assert [(s.state, s.details.get("reason")) for s in statuses(out, 1)] == [
        ("offline", "network_sunset")
    ]
    # An outage starting with the run is logged then, and delivered when the link returns.
    assert [(s.state, s.details.get("reason")) for s in statuses(out, 2)] == [
        ("offline", "comms_outage"),
        ("online", None),
    ]
    assert [e.type for e in events(out, 2)] == ["comms_failure", "comms_restored"]
    stopped = engine.stop_messages()
    assert sorted(o.row for o in stopped) == [0, 2]
    assert {decode_status(o.payload).details["reason"] for o in stopped} == {"shutdown"}


def test_a_comms_failure_goes_out_with_the_call_that_gets_through() -> None:
    """Three failed calls are logged; the event left on the next step's failing link."""
    engine = Engine(fleet(1), seed=SEED, start=START)
    run(engine, 1)
    engine.radios.success[0] = 0.0
    failing = [o for _ in range(6) for o in engine.step()]
    assert events(failing, 0) == []
    assert intervals(failing, engine) == {}
    engine.radios.success[0] = 1.0
    back = engine.step()
    assert [e.type for e in events(back, 0)] == ["comms_failure", "comms_restored"]
    assert len(intervals(back, engine)[0][0].readings) == 7


def test_demand_alarm_rearms_only_after_demand_falls_well_below_the_threshold() -> None:
    """A load hovering at its threshold raised an alarm for each 0.3 % wobble across it."""
    meters = fleet(12)
    first = Engine(meters, seed=SEED, start=START)
    loads = intervals(run(first, 96 * 3), first)
    engine = Engine(meters, seed=SEED, start=START)
    # Thresholds inside each meter's daytime plateau, where demand wobbles across them.
    engine.threshold_kw = np.array(
        [
            np.percentile([r.demand_kw for m in loads[row] for r in m.readings], 80)
            for row in range(12)
        ]
    )
    out = run(engine, 96 * 3)
    got = intervals(out, engine)
    assert got == loads  # the same load: only the alarms differ
    upward_crossings = rearms = 0
    for row in range(len(meters)):
        limit = float(engine.threshold_kw[row])
        series = sorted((r.start, r.demand_kw) for msg in got[row] for r in msg.readings)
        expected, armed, before = [], True, 0.0
        for start, kw in series:
            upward_crossings += before <= limit < kw
            if armed and kw > limit:
                expected.append(format_time(start))
                armed = False
            elif not armed and kw < limit * 0.95:
                armed, rearms = True, rearms + 1
            before = kw
        alarms = [
            e.details["interval_start"] for e in events(out, row) if e.type == "demand_threshold"
        ]
        assert alarms == expected, meters[row].id
    alarmed = sum(e.type == "demand_threshold" for e in events(out))
    assert rearms > 0  # the alarm does come back after a real drop
    assert alarmed > len(meters)
    assert alarmed < upward_crossings  # and not for every wobble across the line
