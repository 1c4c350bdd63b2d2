"""The failed-login throttle's rule: limits per account and per address over a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain import throttle

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def ago(minutes: float) -> datetime:
    """A time `minutes` before NOW."""
    return NOW - timedelta(minutes=minutes)


def test_under_the_limits_no_wait() -> None:
    account = [ago(m) for m in range(throttle.ACCOUNT_LIMIT - 1)]
    address = [ago(0)] * (throttle.ADDRESS_LIMIT - 1)
    assert throttle.retry_after(account, address, NOW) is None
    assert throttle.retry_after([], [], NOW) is None


def test_at_the_account_limit_wait_for_the_oldest_counted_to_age_out() -> None:
    account = [ago(m) for m in range(throttle.ACCOUNT_LIMIT)]  # 0..9 minutes ago
    assert throttle.retry_after(account, [], NOW) == timedelta(minutes=15 - 9)
    # Failures outside the window do not count at all.
    stale = [ago(15), ago(20)] + [ago(1)] * (throttle.ACCOUNT_LIMIT - 1)
    assert throttle.retry_after(stale, [], NOW) is None
    # More than the limit: allowed once all but limit-1 have aged out.
    many = [ago(14), ago(13)] + [ago(2)] * (throttle.ACCOUNT_LIMIT - 1)
    assert throttle.retry_after(many, [], NOW) == timedelta(minutes=2)


def test_the_longer_of_the_two_waits() -> None:
    account = [ago(10)] * throttle.ACCOUNT_LIMIT
    address = [ago(1)] * throttle.ADDRESS_LIMIT
    assert throttle.retry_after(account, address, NOW) == timedelta(minutes=14)
    assert throttle.retry_after(account, address[1:], NOW) == timedelta(minutes=5)


def test_account_key_folds_case_and_spaces() -> None:
    assert throttle.account_key("  Rep@NorthGrid.Example ") == "rep@northgrid.example"
    assert len(throttle.account_key("x" * 400)) == 254
