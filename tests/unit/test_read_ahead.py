"""ReadAheadSocket hands paho the same bytes a plain socket would, from fewer kernel reads."""

from __future__ import annotations

import random
import socket

import pytest

from app.mqtt import ReadAheadSocket


def _pair(size: int) -> tuple[ReadAheadSocket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    return ReadAheadSocket(ours, size=size), theirs


@pytest.mark.parametrize("size", [1, 7, 64, 4096])
def test_reads_of_any_size_return_the_stream_in_order(size: int) -> None:
    sock, peer = _pair(size)
    rng = random.Random(size)
    data = bytes(rng.randrange(256) for _ in range(20_000))
    peer.sendall(data)
    got = bytearray()
    while len(got) < len(data):
        want = rng.choice([1, 1, 2, 3, 100, 5000])
        piece = sock.recv(want)
        assert 0 < len(piece) <= want
        got += piece
        assert sock.pending() >= 0
    assert bytes(got) == data
    assert sock.pending() == 0
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    peer.close()
    assert sock.recv(1) == b""  # end of stream, as paho expects
    sock.close()


def test_one_kernel_read_serves_many_small_reads_and_pending_counts_them() -> None:
    sock, peer = _pair(1024)
    peer.sendall(b"\x30\x03abc" * 10)  # ten 5-byte packets
    assert sock.recv(1) == b"\x30"
    assert sock.pending() == 49
    # Nothing left in the kernel: the rest comes from the buffer.
    assert sock.recv(1) == b"\x03"
    assert sock.recv(3) == b"abc"
    assert sock.pending() == 45
    assert sock.recv(100) == b"\x30\x03abc" * 9
    assert sock.pending() == 0
    peer.close()
    sock.close()


def test_a_read_larger_than_the_buffer_is_not_cut_short() -> None:
    sock, peer = _pair(16)
    payload = b"x" * 3000
    peer.sendall(payload)
    got = sock.recv(3000)
    # One kernel read of what was asked (a loopback socket pair delivers it at once).
    assert got == payload
    assert sock.pending() == 0
    # What paho or the caller asks beyond the SocketLike methods goes to the socket.
    assert sock.gettimeout() == 0.0
    peer.close()
    sock.close()
