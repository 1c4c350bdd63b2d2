"""Send commands to meters over MQTT from the portal: one lazily opened connection per process."""

from __future__ import annotations

import logging
import os
import threading
import uuid

import paho.mqtt.client as mqtt

from app import mqtt as mqtt_adapter
from app.domain import telemetry

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 5.0
PUBACK_TIMEOUT_S = 5.0


class CommandBusError(RuntimeError):
    """Raise when a command could not be handed to the broker."""


class CommandBus:
    """Publish commands at QoS 1 and wait for the broker's PUBACK; replies come via the ingest."""

    def __init__(self, mqtt_url: str | None, prefix: str = telemetry.DEFAULT_PREFIX) -> None:
        """Configure the bus; nothing connects until the first command."""
        self.mqtt_url = mqtt_url
        self.prefix = prefix
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._pid = 0
        self._connected = threading.Event()

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, *args: object) -> None:
        self._connected.clear()

    def _ensure_client(self) -> mqtt.Client:
        if self.mqtt_url is None:
            raise CommandBusError("no MQTT_URL configured: the portal cannot reach the meters")
        # A gunicorn worker forked after the first use must not share its parent's socket.
        if self._client is not None and self._pid == os.getpid():
            return self._client
        client_id = f"wattline-portal-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        client = mqtt_adapter.make_client(self.mqtt_url, client_id)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._connected.clear()
        try:
            mqtt_adapter.connect(client)
        except OSError as exc:
            raise CommandBusError(f"could not reach the MQTT broker: {exc}") from exc
        client.loop_start()
        self._client, self._pid = client, os.getpid()
        return client

    def send(self, utility_id: str, meter_id: str, command: telemetry.Command) -> None:
        """Publish `command` on the meter's cmd topic; raise CommandBusError if not accepted."""
        topic = telemetry.topic_for(utility_id, meter_id, "cmd", self.prefix)
        self.publish(topic, telemetry.encode_command(command))
        log.info("sent %s %s to %s", command.command, command.id, meter_id)

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK; raise CommandBusError if not."""
        with self._lock:
            client = self._ensure_client()
        if not self._connected.wait(CONNECT_TIMEOUT_S):
            raise CommandBusError("the MQTT broker did not accept the connection in time")
        info = client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(PUBACK_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:
            raise CommandBusError(f"the broker did not take the command: {exc}") from exc
        if not info.is_published():
            raise CommandBusError("the broker did not acknowledge the command in time")

    def close(self) -> None:
        """Disconnect, if connected."""
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.disconnect()
                self._client.loop_stop()
            self._client = None
