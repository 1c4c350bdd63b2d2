"""`python -m app.demo` (what `make demo` runs), as a sales engineer runs it: up, then Ctrl-C."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.config import ROOT
from app.db import models
from app.db.session import make_engine

METERS = 30


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "terminal-closed"])
def test_the_demo_comes_up_stores_every_message_and_stops_on_ctrl_c(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """Every message the simulator published is received and stored, first to last.

    The simulator used to start beside the ingest, and its first intervals reached the
    broker before the ingest had subscribed: gone (18 of 7,890 in one run, 4 of about 200
    here). Ctrl-C stops the simulator first and the ingest last, so its last messages
    ("offline") are stored too. Closing the terminal (SIGHUP) does the same: it used to
    kill the runner alone and leave the ingest, the simulator and the portal running.
    """
    demo, lines, reader = _start_demo(tmp_path, METERS)
    try:
        portal = _banner_portal(lines, demo)
        health = _wait_for_health(portal)
        assert health["broker_connected"] is True
        time.sleep(6)  # simulated hours of intervals, events and statuses
    finally:
        demo.send_signal(stop)
        try:
            demo.wait(90)
        except subprocess.TimeoutExpired:
            demo.kill()
            raise
        reader.join(10)
        if demo.stdout is not None:
            demo.stdout.close()
    out = "".join(lines)
    assert demo.returncode == 0, out[-3000:]
    assert "Demo stopped." in out
    assert "admin@wattline.example" in out
    assert "(password: demo)" in out
    published = re.search(r"simulator stopped: .*?(\d+) interval messages.* (\d+) published", out)
    stopped = re.search(r"ingest stopped: IngestStats\(received=(\d+), accepted=(\d+)", out)
    assert published, out[-3000:]
    assert stopped, out[-3000:]
    intervals, sent = int(published[1]), int(published[2])
    received, accepted = int(stopped[1]), int(stopped[2])
    assert intervals > METERS  # the simulator got going
    assert received == sent, f"the ingest received {received} of {sent} published messages"
    assert accepted == received
    engine = make_engine(f"sqlite:///{tmp_path / 'wattline.db'}")
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(models.Reading))
        dead = conn.scalar(select(func.count()).select_from(models.DeadLetter))
        offline = conn.scalar(
            select(func.count()).select_from(models.Meter).where(models.Meter.status == "offline")
        )
    engine.dispose()
    offered = re.search(r"readings_offered=(\d+)", out)
    assert offered
    assert stored == int(offered[1]) > 0
    assert dead == 0
    assert offline == METERS  # the simulator's last words, "offline", all stored


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_children_stop_when_the_runner_is_killed_outright(tmp_path: Path) -> None:
    """kill -9 of the runner (or the OOM killer) stops the ingest, simulator and portal too."""
    demo, lines, reader = _start_demo(tmp_path, 5)
    children: list[int] = []
    try:
        _banner_portal(lines, demo)
    finally:
        # Whatever came up is tracked, even when the banner never did.
        children = _children(demo.pid)
        demo.kill()
        demo.wait(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and [p for p in children if _alive(p)]:
        time.sleep(0.2)
    left = [p for p in children if _alive(p)]
    for pid in left:
        # Each child leads a session of its own: the portal's workers go with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    reader.join(10)
    if demo.stdout is not None:
        demo.stdout.close()
    assert len(children) == 3, children  # ingest, portal, simulator
    assert left == [], "".join(lines)[-3000:]


def _start_demo(
    instance: Path, meters: int
) -> tuple[subprocess.Popen[str], list[str], threading.Thread]:
    """Start `python -m app.demo` at 900x in its own instance; return it, its lines, their reader."""
    env = {
        **os.environ,
        "WATTLINE_INSTANCE": str(instance),
        "PORT": "0",
        "DEMO_METERS": str(meters),
        "DEMO_SPEED": "900",
    }
    for name in ("DATABASE_URL", "MQTT_URL", "SECRET_KEY", "MQTT_TOPIC_PREFIX"):
        env.pop(name, None)
    demo = subprocess.Popen(
        [sys.executable, "-m", "app.demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout or ()), daemon=True)
    reader.start()
    return demo, lines, reader


def _children(pid: int) -> list[int]:
    """Return the processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def _alive(pid: int) -> bool:
    """Return True while `pid` runs (a zombie nobody reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _banner_portal(lines: list[str], demo: subprocess.Popen[str]) -> str:
    """Wait for the demo's banner; return the portal URL it prints."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = re.search(r"Portal:\s+(http://\S+)", "".join(lines))
        if found and any("Ctrl-C stops everything" in line for line in lines):
            return found[1]
        if demo.poll() is not None:
            pytest.fail("the demo exited before it came up:\n" + "".join(lines)[-3000:])
        time.sleep(0.2)
    pytest.fail("no banner within 120 s:\n" + "".join(lines)[-3000:])


def _wait_for_health(portal: str) -> dict[str, object]:
    """Return the portal's health once the ingest reports the broker connected."""
    deadline = time.monotonic() + 30
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{portal}/api/v1/health", timeout=5) as response:  # noqa: S310 - loopback
            body = json.loads(response.read())
        if body.get("broker_connected"):
            return body
        time.sleep(0.3)
    return body


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_child_whose_runner_is_already_gone_ends_before_it_runs() -> None:
    """The runner's flag-setting SIGTERM handler, inherited until exec, does not keep it alive."""
    from app.demo import _dies_with

    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", "print('ran on')"],
            stdout=subprocess.PIPE,
            preexec_fn=functools.partial(_dies_with, 1),  # a runner that is not its parent
            start_new_session=True,
        )
        out, _ = child.communicate(timeout=30)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert child.returncode == -signal.SIGTERM
    assert out == b""
