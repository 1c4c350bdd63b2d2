"""Scenario files: the bundled ones load and bind; bad files are refused naming the field."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import orjson
import pytest
from click.testing import CliRunner

from simulator.cli import cli, resolve
from simulator.fleet import UTILITY_BY_ID, build_fleet
from simulator.scenario import (
    ScenarioError,
    list_scenarios,
    load_scenario,
    parse_scenario,
    parse_span,
)

START = datetime(2026, 3, 2, tzinfo=UTC)


def test_bundled_scenarios_cover_the_sales_stories() -> None:
    names = {name for name, _ in list_scenarios()}
    assert {"demo", "storm", "federal-tamper", "heat-wave", "3g-sunset"} <= names
    kinds = {i.kind for name in names for i in load_scenario(name).incidents}
    assert {"outage", "tamper", "heat_wave", "network_sunset"} <= kinds


@pytest.mark.parametrize("name", [n for n, _ in list_scenarios()])
def test_every_bundled_scenario_binds_to_its_fleet(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.description
    setup = resolve(scenario, None, None, None, (0, 1), START)
    assert setup.meters
    for incident in setup.incidents:
        assert incident.rows.shape == (len(setup.meters),)
        if incident.kind != "heat_wave":
            assert incident.rows.any(), f"{name}: {incident.name} selects no meter"
        assert incident.end is None or incident.end > incident.start


def test_storm_selects_a_reproducible_share_of_the_region() -> None:
    scenario = load_scenario("storm")
    setup = resolve(scenario, None, None, None, (0, 1), START)
    derecho = setup.incidents[0]
    assert derecho.start == datetime(2026, 7, 14, 22, tzinfo=UTC)
    assert derecho.end == derecho.start + timedelta(hours=5)
    hit = [m for m, on in zip(setup.meters, derecho.rows, strict=True) if on]
    midwest = [m for m in setup.meters if UTILITY_BY_ID[m.utility_id].region == "Midwest"]
    assert {UTILITY_BY_ID[m.utility_id].region for m in hit} == {"Midwest"}
    assert 0.4 < len(hit) / len(midwest) < 0.8
    again = resolve(scenario, None, None, None, (0, 1), START).incidents[0]
    assert (again.rows == derecho.rows).all()


def test_federal_tamper_hits_one_federal_building() -> None:
    setup = resolve(load_scenario("federal-tamper"), None, None, None, (0, 1), START)
    tamper = setup.incidents[0]
    (row,) = tamper.rows.nonzero()[0].tolist()
    meter = setup.meters[row]
    assert (meter.utility_id, meter.building_type) == ("fedcenter", "federal_office")
    assert {UTILITY_BY_ID[m.utility_id].segment for m in setup.meters} == {"security"}


def test_shards_partition_the_fleet() -> None:
    scenario = load_scenario("demo")
    whole = resolve(scenario, None, None, None, (0, 1), START).meters
    parts = [resolve(scenario, None, None, None, (i, 3), START).meters for i in range(3)]
    assert sorted(m.id for p in parts for m in p) == sorted(m.id for m in whole)
    assert all(p for p in parts)


@pytest.mark.parametrize("name", ["demo", "federal-tamper", "storm"])
def test_shards_together_play_the_unsharded_incidents(name: str) -> None:
    # Each shard chose its own meters before: `count: 1` hit one meter in every shard.
    scenario = load_scenario(name)
    one = resolve(scenario, None, None, None, (0, 1), START)
    hit = [{m.id for m, on in zip(one.meters, x.rows, strict=True) if on} for x in one.incidents]
    shards = [resolve(scenario, None, None, None, (i, 4), START) for i in range(4)]
    for k, expected in enumerate(hit):
        union = {
            m.id for s in shards for m, on in zip(s.meters, s.incidents[k].rows, strict=True) if on
        }
        assert union == expected, one.incidents[k].name


def test_an_incident_naming_a_meter_the_fleet_lacks_is_refused() -> None:
    doc = _doc(select={"meters": ["glpl-99999"]})
    with pytest.raises(click.ClickException, match="'glpl-99999' is not in this 20-meter fleet"):
        resolve(parse_scenario(doc, "t"), 20, None, None, (0, 1), START)


def test_a_scenario_file_that_is_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe name: x")
    with pytest.raises(ScenarioError, match=r"binary\.yaml: not UTF-8 text"):
        load_scenario(str(path))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speed", "nan"], "'nan' is not a finite number"),
        (["--speed", "1e12"], "is not in the range"),
        (["--duration", "inf"], "'inf' is not a finite number"),
        (["--drop-rate", "nan"], "'nan' is not a finite number"),
    ],
)
def test_cli_refuses_numbers_that_are_not_finite(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["run", "--meters", "1", *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2d", timedelta(days=2)),
        ("90m", timedelta(minutes=90)),
        ("1d6h30m", timedelta(days=1, hours=6, minutes=30)),
    ],
)
def test_spans(text: str, expected: timedelta) -> None:
    assert parse_span(text, "x") == expected


def _doc(**incident: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": "outage", "at": "+1h", "duration": "2h"}
    base.update(incident)
    return {"name": "t", "incidents": [base]}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ([1, 2], "mapping"),
        ({"name": "t", "bogus": 1}, "bogus"),
        ({"meters": 0}, "meters"),
        ({"speed": -1}, "speed"),
        ({"start": "+1d"}, "start"),
        ({"fleet": {"region": "Atlantis"}}, "fleet.region"),
        (_doc(kind="meteor"), "incidents[0].kind"),
        (_doc(at="tomorrow"), "incidents[0].at"),
        (_doc(at="2026-03-02T00:00:00"), "incidents[0].at"),
        (_doc(duration="forever"), "incidents[0].duration"),
        (_doc(select={"colour": "red"}), "incidents[0].select.colour"),
        (_doc(select={"network": "5g"}), "incidents[0].select.network"),
        (_doc(select={"share": 2}), "incidents[0].select.share"),
        (_doc(select={"count": -1}), "incidents[0].select.count"),
        (_doc(kind="heat_wave", region="Moon", delta_c=5), "incidents[0].region"),
        (_doc(kind="heat_wave", region="Midwest", delta_c="hot"), "incidents[0].delta_c"),
        ({"incidents": [{"kind": "outage"}]}, "incidents[0].at"),
        # Mistakes that were ignored (a misspelt duration left an outage on for ever) or
        # raised a traceback instead of naming the field.
        (_doc(durration="2h"), "incidents[0]: unknown field 'durration'"),
        (_doc(region="Midwest"), "incidents[0].region is the weather of a heat_wave"),
        (_doc(delta_c="hot"), "incidents[0].delta_c is the weather of a heat_wave"),
        (_doc(duration="3000000d"), "incidents[0].duration '3000000d' is longer than 3653 days"),
        (_doc(select={1: "x"}), "incidents[0].select: filter 1 is not a name"),
        ({"speed": float("nan")}, "speed must be a number above 0"),
        ({"speed": 1e12}, "speed must be a number above 0 and at most 86400"),
        ({"day_starts_in": "Mars/Olympus"}, "day_starts_in must be an IANA time zone"),
        ({"day_starts_in": 5}, "day_starts_in must be an IANA time zone"),
    ],
)
def test_bad_scenarios_name_the_field(doc: Any, field: str) -> None:
    with pytest.raises(ScenarioError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_scenario(doc, "t")


def test_absolute_times_and_open_ended_incidents() -> None:
    scenario = parse_scenario(
        {
            "incidents": [
                {
                    "kind": "network_sunset",
                    "at": "2026-03-05T12:00:00Z",
                    "select": {"network": "3g"},
                }
            ]
        },
        "t",
    )
    meters = build_fleet(50, 1)
    (sunset,) = scenario.bind(meters, START, 1)
    assert sunset.start == datetime(2026, 3, 5, 12, tzinfo=UTC)
    assert sunset.end is None
    assert [m.network for m, on in zip(meters, sunset.rows, strict=True) if on] == ["3g"] * int(
        sunset.rows.sum()
    )


@pytest.mark.parametrize("hour_utc", [0, 5, 12, 15, 21])
def test_the_demo_storm_is_an_evening_and_the_tamper_a_morning_whenever_it_starts(
    hour_utc: int,
) -> None:
    """From "now minus a week" the storm struck at 01:00 in Detroit when started at 12:07 UTC."""
    now = datetime(2026, 12, 7, hour_utc, 7, tzinfo=UTC)
    setup = resolve(load_scenario("demo"), None, None, None, (0, 1), now)
    assert now - timedelta(days=8) < setup.start <= now - timedelta(days=7)
    incidents = {i.kind: i for i in setup.incidents}
    storm = incidents["outage"].start.astimezone(ZoneInfo("America/Detroit"))
    tamper = incidents["tamper"].start.astimezone(ZoneInfo("America/New_York"))
    assert 17 <= storm.hour <= 20, storm
    assert 8 <= tamper.hour <= 11, tamper
    # A start given on the command line is kept as it is.
    given = resolve(load_scenario("demo"), None, None, START + timedelta(hours=5), (0, 1), now)
    assert given.start == START + timedelta(hours=5)


def test_unknown_scenario_lists_the_available_ones() -> None:
    with pytest.raises(ScenarioError, match=r"available: .*demo"):
        load_scenario("nope")


def test_cli_lists_scenarios_and_prints_a_sharded_fleet() -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["scenarios"])
    assert listed.exit_code == 0, listed.output
    for name, _ in list_scenarios():
        assert name in listed.output
    shown = runner.invoke(cli, ["fleet", "--scenario", "federal-tamper", "--shard", "1/2"])
    assert shown.exit_code == 0, shown.output
    rows = [orjson.loads(line) for line in shown.output.splitlines()]
    assert rows
    assert all(r["index"] % 2 == 1 for r in rows)
    assert {r["utility_id"] for r in rows} <= {"fedcenter", "riverton"}
    bad = runner.invoke(cli, ["fleet", "--shard", "3/2"])
    assert bad.exit_code == 2
    assert "I < N" in bad.output
    missing = runner.invoke(cli, ["run", "--scenario", "nope"])
    assert missing.exit_code == 2
    assert "no scenario 'nope'" in missing.output


def test_help_documents_every_flag() -> None:
    runner = CliRunner()
    for command in ("run", "fleet", "scenarios"):
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0
        ctx = cli.make_context("simulator", [command, "--help"], resilient_parsing=True)
        sub = cli.get_command(ctx, command)
        assert sub is not None
        for param in sub.params:
            if param.param_type_name == "option":
                assert getattr(param, "help", None), f"{command} {param.name} has no help"


def test_meter_dataclass_fields_all_reach_the_fleet_command() -> None:
    result = CliRunner().invoke(cli, ["fleet", "--meters", "3"])
    assert result.exit_code == 0
    for field in dataclasses.fields(build_fleet(1, 1)[0]):
        assert f'"{field.name}"' in result.output
