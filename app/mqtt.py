"""The one place paho-mqtt is configured: client construction, connect, and publish pacing."""

from __future__ import annotations

import logging
import ssl
import struct
import threading
import time
from collections.abc import Iterable
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from app.config import MqttEndpoint, check_share_group, parse_mqtt_url

log = logging.getLogger(__name__)

# Well under the 65,535 packet-id space: past it paho drops QoS 1 messages silently.
MAX_INFLIGHT = 1_000
CONNECT_TIMEOUT_S = 10.0


def make_client(
    url: str | MqttEndpoint,
    client_id: str,
    *,
    clean_session: bool = True,
    will: tuple[str, bytes] | None = None,
    manual_ack: bool = False,
) -> mqtt.Client:
    """Build a paho v2-callback MQTT 3.1.1 client for `url` (not yet connected)."""
    endpoint = parse_mqtt_url(url) if isinstance(url, str) else url
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    client.max_inflight_messages_set(MAX_INFLIGHT)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.user_data_set(endpoint)
    return client


def shared_filter(group: str, topic_filter: str) -> str:
    """Return `topic_filter` as a shared subscription of `group` (one member gets each message)."""
    # "$share/<group>/<filter>" is MQTT 5's syntax; Mosquitto 2 also honours it on 3.1.1.
    return f"$share/{check_share_group(group)}/{topic_filter}"


def connect(client: mqtt.Client, keepalive: int = 30) -> None:
    """Connect `client` to the endpoint it was built for (raises OSError if unreachable)."""
    endpoint: MqttEndpoint = client.user_data_get()
    client.connect(endpoint.host, endpoint.port, keepalive=keepalive)


class PublishWindow:
    """Cap unacknowledged QoS 1 publishes so paho never overflows its packet-id space."""

    def __init__(self, client: mqtt.Client, limit: int = MAX_INFLIGHT // 2) -> None:
        """Track `client`'s acknowledgements; at most `limit` may be outstanding."""
        self._limit = limit
        self._outstanding = 0
        self._cond = threading.Condition()
        client.on_publish = self._on_publish

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._outstanding = max(0, self._outstanding - 1)
            self._cond.notify_all()

    def acquire(self, timeout: float = 30.0) -> bool:
        """Wait for a free slot; return False if none freed within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._outstanding >= self._limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            self._outstanding += 1
            return True

    def release_unsent(self) -> None:
        """Give back a slot whose publish was refused by paho."""
        with self._cond:
            self._outstanding = max(0, self._outstanding - 1)
            self._cond.notify_all()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every publish is acknowledged; return False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._outstanding:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    @property
    def outstanding(self) -> int:
        """Return how many publishes await an acknowledgement."""
        with self._cond:
            return self._outstanding


_PUBACK: Final = struct.Struct("!BBH")


def ack_all(client: mqtt.Client, mids: Iterable[int]) -> None:
    """Acknowledge QoS 1 messages (manual ack) with one write instead of one per message.

    `client.ack` queues one 4-byte PUBACK at a time, and from any thread but paho's own each
    also wakes paho's thread through a socket pair: two system calls and a hand-over of the
    interpreter lock per message, a fifth of a small message's cost to the ingest. The
    same PUBACK packets, joined, go out as one queued packet instead (unit-tested against
    paho's own bytes, as this uses its private queue).
    """
    if not client._manual_ack:
        # paho already acknowledged each on delivery; a second PUBACK is a protocol error.
        raise ValueError("ack_all needs a client made with manual_ack=True")
    packet = b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids])
    if packet:
        client._packet_queue(mqtt.PUBACK, packet, 0, 1)
