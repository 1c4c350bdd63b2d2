"""The ingest process fixes glibc's mmap threshold (a soak's RSS crept up without it)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's; elsewhere tune_malloc reports it did nothing",
)
def test_tune_malloc_sets_the_threshold_on_glibc() -> None:
    # In a child process: the setting is process-wide and must not leak into this one.
    code = "from app.ingest.worker import tune_malloc; print(tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
