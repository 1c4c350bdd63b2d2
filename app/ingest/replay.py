"""Dead letters published again on their own topics, once what refused them is mended."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from app.db import models

# Publish at QoS 1 and return once the broker holds the message; raise if it does not.
Publish = Callable[[str, bytes], None]


def replay(letters: Iterable[models.DeadLetter], publish: Publish, now: datetime) -> int:
    """Publish each letter's raw payload on its topic, oldest first, marking it replayed.

    Through the broker, not straight into the database: the ingest takes a replayed
    message like any other, with its locks, its exactly-once store and its checks, so a
    reading already stored is not stored twice and a message still refused is
    dead-lettered again with today's reason. A letter is marked only once the broker has
    acknowledged it; if `publish` raises, the letters before it stay marked (the caller
    commits them) and the rest do not. Publishing one twice stores nothing twice.
    """
    done = 0
    for letter in sorted(letters, key=lambda d: d.id):
        publish(letter.topic, bytes(letter.payload))
        letter.replayed_at = now
        done += 1
    return done
