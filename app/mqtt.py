"""The one place paho-mqtt is configured: client construction, connect, and publish pacing."""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from app.config import MqttEndpoint, check_share_group, parse_mqtt_url

log = logging.getLogger(__name__)

# Well under the 65,535 packet-id space: past it paho drops QoS 1 messages silently.
MAX_INFLIGHT = 1_000
CONNECT_TIMEOUT_S = 10.0


# One kernel read serves many packets: a 15-minute reading is a ~200-byte PUBLISH.
READ_AHEAD_BYTES: Final = 256 * 1024
# Packets read from that buffer per pass of paho's loop, which between passes sends
# (acknowledgements) and keeps the connection alive.
READ_AHEAD_PACKETS: Final = 100


class ReadAheadSocket:
    """A TCP socket (paho's `SocketLike`) that reads ahead into a buffer of its own.

    paho reads each packet with three or four `recv` calls (the command byte, each byte
    of the remaining length, the rest): for a small QoS 1 message that was four system
    calls and most of the receiving thread's time. Here one kernel read fills a buffer
    the next packets are sliced from; `pending()` tells paho's loop not to wait in
    select() while bytes are buffered (as it does for TLS).
    """

    def __init__(self, sock: socket.socket, size: int = READ_AHEAD_BYTES) -> None:
        """Wrap a connected socket."""
        self._sock = sock
        self._size = size
        self._buffer = b""
        self._at = 0

    def recv(self, buffer_size: int) -> bytes:
        """Return up to `buffer_size` bytes (b"" at end of stream; BlockingIOError if none)."""
        buffer, at = self._buffer, self._at
        if at >= len(buffer):
            buffer = self._sock.recv(max(buffer_size, self._size))
            if len(buffer) <= buffer_size:
                self._buffer, self._at = b"", 0
                return buffer
            self._buffer, at = buffer, 0
        end = min(at + buffer_size, len(buffer))
        self._at = end
        return buffer[at:end]

    def pending(self) -> int:
        """Return how many bytes are buffered (paho then reads without select())."""
        return len(self._buffer) - self._at

    def send(self, buffer: bytes | bytearray) -> int:
        """Send as the socket does."""
        return self._sock.send(buffer)

    def close(self) -> None:
        """Close the socket and drop what was buffered."""
        self._buffer, self._at = b"", 0
        self._sock.close()

    def fileno(self) -> int:
        """Return the socket's descriptor (for select())."""
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        """Set the socket's blocking mode."""
        self._sock.setblocking(flag)

    def shutdown(self, how: int) -> None:
        """Shut the connection down as the socket does (the simulator's abrupt drops)."""
        self._sock.shutdown(how)

    def __getattr__(self, name: str) -> Any:
        """Anything else (settimeout, setsockopt, getpeername...) is the socket's."""
        return getattr(self._sock, name)


class Client(mqtt.Client):
    """paho's client reading plain TCP through a `ReadAheadSocket`."""

    def _create_socket(self) -> Any:
        # paho 2.2 (pinned) builds its socket here and has no public hook for it. TLS and
        # websockets keep paho's own: they buffer (and report pending bytes) themselves.
        sock = super()._create_socket()
        if isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket):
            return ReadAheadSocket(sock)
        return sock

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read a packet, then the ones already buffered (at most READ_AHEAD_PACKETS more).

        paho reads one packet per pass of its loop, and each pass calls select(): with the
        next packets already in memory that call was the loop's largest cost.
        """
        rc = super().loop_read(max_packets)
        more = READ_AHEAD_PACKETS
        while more and rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            sock = self._sock
            if not isinstance(sock, ReadAheadSocket) or not sock.pending():
                break
            rc = super().loop_read(max_packets)
            more -= 1
        return rc


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
    client = Client(
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
