"""What the command-line tools share: numbers that must be finite, errors without tracebacks."""

from __future__ import annotations

import math
import sys
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from app.config import MAX_DAYS, ConfigError

__all__ = ["MAX_DAYS", "FiniteFloat", "run"]


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses NaN and infinity, which FloatRange lets through."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Convert as FloatRange does, then refuse a value that is not finite."""
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number

    def _describe_range(self) -> str:
        # Without bounds FloatRange's help said "x<=None".
        if self.min is None and self.max is None:
            return ""
        return super()._describe_range()


def run(group: click.Command, prog_name: str | None = None) -> None:
    """Run a command (group); a database or setting error is one line, not a traceback.

    A database never migrated ("no such table"), an unknown driver in DATABASE_URL, an
    unreachable server or a malformed MQTT_URL are an operator's to fix, not a bug.
    """
    try:
        group.main(prog_name=prog_name)
    except SQLAlchemyError as exc:
        first = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0]
        hint = " (run `python -m app.manage migrate`?)" if "no such table" in first else ""
        click.echo(f"Error: database: {type(exc).__name__}: {first[:300]}{hint}", err=True)
        sys.exit(1)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
