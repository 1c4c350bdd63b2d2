"""Entry point for `python -m simulator`."""

from __future__ import annotations

from simulator.cli import cli

if __name__ == "__main__":
    cli(prog_name="python -m simulator")
