"""`python -m app.ingest`: run the ingest worker until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from app.config import Settings
from app.domain.telemetry import DEFAULT_PREFIX
from app.ingest.worker import IngestWorker


@click.command()
@click.option("--mqtt-url", envvar="MQTT_URL", default="mqtt://127.0.0.1:1883", show_default=True)
@click.option("--database-url", envvar="DATABASE_URL", default=None, help="default: Settings")
@click.option("--prefix", envvar="MQTT_TOPIC_PREFIX", default=DEFAULT_PREFIX, show_default=True)
@click.option(
    "--client-id", envvar="INGEST_CLIENT_ID", default="wattline-ingest", show_default=True
)
@click.option("--log-level", envvar="LOG_LEVEL", default="INFO", show_default=True)
def main(
    mqtt_url: str, database_url: str | None, prefix: str, client_id: str, log_level: str
) -> None:
    """Subscribe to meter telemetry and store it exactly once."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    url = database_url or Settings.from_env().database_url
    worker = IngestWorker(mqtt_url, url, prefix=prefix, client_id=client_id)
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        worker.start()
    except OSError as exc:
        raise click.ClickException(f"cannot reach the MQTT broker at {mqtt_url}: {exc}") from exc
    click.echo(f"ingest: {mqtt_url} → {url.split('@')[-1]} (prefix {prefix})", err=True)
    done.wait()
    worker.stop()


if __name__ == "__main__":
    main()
