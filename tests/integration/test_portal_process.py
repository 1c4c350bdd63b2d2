"""The server entry point warms the portal and takes its startup heap out of collections."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import gc
from app import create_portal
app = create_portal()
frozen = gc.get_freeze_count()
status = app.test_client().get("/login").status_code
gc.collect()
print(frozen, len(gc.get_objects()), status)
"""


def test_create_portal_freezes_the_loaded_heap(tmp_path: Path) -> None:
    # In a child process: a frozen heap is process-wide and must not leak into this one.
    (tmp_path / "portal.db").touch()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
        "SECRET_KEY": "test",
        "WATTLINE_INSTANCE": str(tmp_path),
        "MQTT_URL": "",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, env=env
    )
    frozen, tracked, status = (int(word) for word in out.stdout.split())
    assert status == 200
    # Flask, SQLAlchemy, plotly's figure types and the templates: well over 100,000
    # objects, and a full collection afterwards walks only a small remainder of them.
    assert frozen > 100_000
    assert tracked < frozen // 5
