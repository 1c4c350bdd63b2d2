"""Dead letters published again on their own topics, once what refused them is mended."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from app.config import Settings
from app.db import models
from app.domain import telemetry, vee
from app.ingest.store import implausible

# Publish at QoS 1 and return once the broker holds the message; raise if it does not.
Publish = Callable[[str, bytes], None]
# Kinds whose replay is the same fact whenever it lands: intervals are stored once by
# (meter, start) and events once by (meter, event id). A status or a reply describes the
# meter when it was sent, and replayed now would overwrite a newer state.
REPLAYABLE_KINDS = frozenset({"interval", "event"})


def mendable(reason: str) -> bool:
    """Return True if a dead letter was refused for a cause outside its payload."""
    return (
        reason.startswith("unknown meter ")
        or (reason.startswith("meter ") and " belongs to utility " in reason)
        or reason.startswith("ingest error ")
    )


def limits(settings: Settings) -> vee.Plausibility:
    """Return the ingest's plausibility limits as `settings` configure them."""
    return vee.Plausibility(future_tolerance=timedelta(seconds=settings.ingest_future_tolerance_s))


def refusal(letter: models.DeadLetter, prefix: str, limits: vee.Plausibility) -> str | None:
    """Return why `letter` may not be replayed, or None if it may.

    Only a letter refused for a cause that can be mended outside the message (its meter
    unknown or under another utility then, a write that failed), of a kind that is the
    same fact whenever it lands, whose readings were possible when it was first received:
    the ingest judges a replay at the replay's time, and a reading refused as too far in
    the future then must not slip in once that time has passed.
    """
    if not mendable(letter.reason):
        return "the message itself was refused; published again it would be refused again"
    try:
        topic, message = telemetry.decode(letter.topic, bytes(letter.payload), prefix)
    except telemetry.ContractError as exc:
        return f"it does not decode under the topic prefix {prefix!r}: {exc}"
    if topic.kind not in REPLAYABLE_KINDS:
        return f"a {topic.kind} message replayed now would overwrite the meter's newer state"
    if isinstance(message, telemetry.IntervalMessage):
        why = implausible(message, letter.received_at, limits)
        if why is not None:
            return f"impossible when it was received: {why}"
    return None


def replay(letters: Iterable[models.DeadLetter], publish: Publish, now: datetime) -> int:
    """Publish each letter's raw payload on its topic, oldest first, marking it replayed.

    Callers check `refusal` first. Through the broker, not straight into the database:
    the ingest takes a replayed message like any other, with its locks, its exactly-once
    store and its checks, so a reading already stored is not stored twice. A letter is
    marked once the broker has acknowledged it; if `publish` raises, the letters before it
    stay marked (the caller commits them) and the rest do not.
    """
    done = 0
    for letter in sorted(letters, key=lambda d: d.id):
        publish(letter.topic, bytes(letter.payload))
        letter.replayed_at = now
        done += 1
    return done
