"""Failed-login throttle: how many failures an account or an address may have in a window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

WINDOW = timedelta(minutes=15)
# Ten tries an account, so a presenter who mistypes is never stopped, while guessing a
# 12-character password at 40 a hour is hopeless. An address may fail more often: one
# office's proxy fronts many people.
ACCOUNT_LIMIT = 10
ADDRESS_LIMIT = 50


def retry_after(
    account_failures: Sequence[datetime], address_failures: Sequence[datetime], now: datetime
) -> timedelta | None:
    """Return how long until another attempt may be checked, or None if it may be now.

    Each sequence holds the newest failures (at most its limit is needed) of the e-mail
    tried and of the address it came from.
    """
    waits = []
    for failures, limit in ((account_failures, ACCOUNT_LIMIT), (address_failures, ADDRESS_LIMIT)):
        recent = sorted(at for at in failures if now - at < WINDOW)
        if len(recent) >= limit:
            # Allowed again once enough of them have aged out: the oldest that still counts.
            waits.append(recent[len(recent) - limit] + WINDOW - now)
    return max(waits) if waits else None


def account_key(email: str) -> str:
    """Return the e-mail as the throttle counts it: trimmed, lower case, cut to its column."""
    return email.strip().lower()[:254]
