"""ack_all queues exactly the PUBACK bytes paho's own ack() would, in one packet."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from app import mqtt as mqtt_adapter


def _queued(client: mqtt.Client) -> list[bytes]:
    # Not connected: paho keeps what it could not write in its outgoing queue.
    return [bytes(p["packet"]) for p in client._out_packet]


def test_ack_all_writes_the_same_pubacks_as_paho_in_one_packet() -> None:
    mids = [1, 2, 255, 256, 4097, 65535]
    theirs = mqtt_adapter.make_client("mqtt://127.0.0.1:1", "theirs", manual_ack=True)
    for mid in mids:
        theirs.ack(mid, 1)
    ours = mqtt_adapter.make_client("mqtt://127.0.0.1:1", "ours", manual_ack=True)
    mqtt_adapter.ack_all(ours, mids)
    assert len(_queued(theirs)) == len(mids)
    assert _queued(ours) == [b"".join(_queued(theirs))]
    assert [p["command"] for p in ours._out_packet] == [mqtt.PUBACK]


def test_ack_all_with_nothing_to_acknowledge_queues_nothing() -> None:
    client = mqtt_adapter.make_client("mqtt://127.0.0.1:1", "none", manual_ack=True)
    mqtt_adapter.ack_all(client, [])
    assert _queued(client) == []


def test_ack_all_refuses_a_client_that_acknowledges_by_itself() -> None:
    client = mqtt_adapter.make_client("mqtt://127.0.0.1:1", "auto")
    with pytest.raises(ValueError, match="manual_ack"):
        mqtt_adapter.ack_all(client, [1])
    assert _queued(client) == []
