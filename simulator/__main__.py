"""Entry point for `python -m simulator`."""

from __future__ import annotations

from app.clitypes import run
from simulator.cli import cli

if __name__ == "__main__":
    run(cli, prog_name="python -m simulator")
