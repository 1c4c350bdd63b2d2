"""Fault injection: rates, reproducibility, and what each fault does to the stream."""

from __future__ import annotations

import base64
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from app.domain.telemetry import ContractError, decode
from simulator.cli import record_line
from simulator.engine import Engine, Out
from simulator.faults import FaultInjector, FaultRates, clock_skews, corrupt
from simulator.fleet import build_fleet

SEED = 5
START = datetime(2026, 3, 2, tzinfo=UTC)


def stream(steps: int = 24, meters: int = 50) -> list[list[Out]]:
    """Return the engine's messages per step (the first list is the start)."""
    engine = Engine(build_fleet(meters, SEED), seed=SEED, start=START)
    return [engine.start_messages()] + [engine.step() for _ in range(steps)]


def faulted(rates: FaultRates, steps: list[list[Out]], seed: int = SEED) -> list[list[Out]]:
    """Run a stream through an injector, flushing held messages at the end."""
    injector = FaultInjector(rates, seed)
    out = [injector.apply(k, msgs) for k, msgs in enumerate(steps)]
    out.append(injector.flush())
    return out


def flat(steps: list[list[Out]]) -> list[Out]:
    """Flatten steps."""
    return [o for step in steps for o in step]


def test_no_faults_is_the_identity() -> None:
    steps = stream()
    assert faulted(FaultRates(), steps)[:-1] == steps


def test_drop_and_duplicate_rates_and_statuses_untouched() -> None:
    steps = stream(48, 60)
    original = flat(steps)
    traffic = [o for o in original if not o.retain]
    got = flat(faulted(FaultRates(drop=0.1, duplicate=0.1), steps))
    counts = Counter(o.payload for o in got)
    lost = sum(counts[o.payload] == 0 for o in traffic)
    doubled = sum(counts[o.payload] == 2 for o in traffic)
    assert 0.07 < lost / len(traffic) < 0.13
    assert 0.06 < doubled / len(traffic) < 0.12
    retained = [o for o in original if o.retain]
    assert [o for o in got if o.retain] == retained


def test_delay_and_reorder_keep_every_message() -> None:
    steps = stream(48, 30)
    got = faulted(FaultRates(delay=0.2, reorder=0.2), steps)
    assert sorted(o.payload for o in flat(got)) == sorted(o.payload for o in flat(steps))
    assert flat(got) != flat(steps)
    # A delayed message comes out at a later step than it was made.
    made = {o.payload: k for k, msgs in enumerate(steps) for o in msgs}
    later = [o for k, msgs in enumerate(got) for o in msgs if k > made[o.payload]]
    assert later


def test_corrupt_payloads_break_the_contract() -> None:
    steps = stream(12, 30)
    engine_meters = build_fleet(30, SEED)
    got = flat(faulted(FaultRates(corrupt=0.3), steps))
    original = {o.payload for o in flat(steps)}
    broken = [o for o in got if o.payload not in original]
    assert len(broken) > 20
    for o in broken:
        m = engine_meters[o.row]
        with pytest.raises(ContractError):
            decode(f"wattline/v1/{m.utility_id}/{m.id}/{o.kind}", o.payload)


@pytest.mark.parametrize("u", [0.0, 0.3, 0.6, 0.9])
def test_every_corruption_changes_the_payload(u: float) -> None:
    payload = b'{"schema_version":1,"meter_id":"m1","readings":[{"kwh":1.0,"kvarh":0.5}]}'
    assert corrupt(payload, u) != payload


def test_same_seed_same_faults_other_seed_other_faults() -> None:
    steps = stream(24, 30)
    rates = FaultRates(drop=0.1, duplicate=0.1, reorder=0.1, delay=0.1, corrupt=0.1)
    assert faulted(rates, steps) == faulted(rates, steps)
    assert faulted(rates, steps) != faulted(rates, steps, seed=SEED + 1)


def test_clock_skews_and_bursts() -> None:
    index = np.arange(2000, dtype=np.uint64)
    skews = clock_skews(2000, 0.1, SEED, index)
    skewed = skews != 0
    assert 0.07 < skewed.mean() < 0.13
    assert np.all(np.abs(skews[skewed]) >= 90)
    assert np.all(np.abs(skews[skewed]) <= 900)
    assert (skews > 0).any()
    assert (skews < 0).any()
    assert np.array_equal(skews, clock_skews(2000, 0.1, SEED, index))
    injector = FaultInjector(FaultRates(reconnect=0.05), SEED)
    bursts = [injector.burst(k) for k in range(2000)]
    assert 0.03 < np.mean(bursts) < 0.07
    assert bursts == [FaultInjector(FaultRates(reconnect=0.05), SEED).burst(k) for k in range(2000)]


def test_rates_outside_zero_one_are_refused() -> None:
    with pytest.raises(ValueError, match="drop rate"):
        FaultRates(drop=1.5)


@pytest.mark.parametrize("u", [i / 40 for i in range(40)])
def test_a_recorded_corruption_is_the_bytes_published(u: float) -> None:
    """`--record` decoded payloads with "replace": a 0xFF published was recorded as U+FFFD."""
    payload = corrupt(b'{"meter_id":"glpl-00000","readings":[]}', u)
    line = orjson.loads(record_line("wattline/v1/glpl/glpl-00000/interval", payload, False))
    kept = (
        base64.b64decode(line["payload_base64"])
        if "payload_base64" in line
        else line["payload"].encode()
    )
    assert kept == payload
