"""The shortcuts that keep measuring a spending key cheap, each checked against what it
stands for: the tick's calendar (cached per instant, zone and budget zone), the words
saying what backs a number (written only for the number used, each sentence once), and
the shared unknown rate. A cache that served another tick's or another zone's numbers
would fail here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from watchdog.core import burn
from watchdog.core.model import Sample

NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _forget_caches() -> None:
    for cached in (
        burn._calendar,
        burn.day_bounds,
        burn.week_start,
        burn.month_bounds,
        burn._utc_windows,
        burn._own_basis,
        burn._today_basis,
        burn._partial_basis,
        burn._blended_basis,
        burn._average_basis,
        burn._activity_basis,
        burn._unknown,
    ):
        cached.cache_clear()


def _spending_key(minutes: int, before: float = 0.0) -> burn.History:
    """A key that spends 1 cent a minute for `minutes` minutes from T0 (and `before`
    earlier today, by its provider's counter)."""
    history = burn.History()
    for minute in range(minutes + 1):
        usage = 0.01 * minute
        history.add(
            Sample(
                T0 + timedelta(minutes=minute),
                usage,
                usage_daily=before + usage,
                usage_weekly=usage,
                usage_monthly=usage,
                key_limit=50.0,
                key_limit_remaining=50.0 - usage,
            )
        )
    return history


def test_each_tick_gets_its_own_numbers_never_a_cached_ticks() -> None:
    """Measured tick after tick as a spending key is, every Metrics equals the one a
    fresh process (no cache at all) computes for that tick: in both orders."""
    histories = {m: _spending_key(m) for m in range(30, 90, 7)}
    forward = {
        m: burn.measure(h, T0 + timedelta(minutes=m), UTC, account=False)
        for m, h in histories.items()
    }
    for m in sorted(histories, reverse=True):
        _forget_caches()
        alone = burn.measure(histories[m], T0 + timedelta(minutes=m), UTC, account=False)
        assert alone == forward[m]
    for m, metrics in forward.items():  # and each is this tick's, by its own arithmetic
        assert metrics.spent_today == pytest.approx(0.01 * m)
        assert metrics.rate_1h.covered == timedelta(minutes=min(m, 60))
        assert metrics.rate_now.covered == timedelta(minutes=10)
        assert metrics.rate_1h.per_hour == pytest.approx(0.6)
        assert metrics.day_end == datetime(2026, 11, 28, tzinfo=UTC)


@pytest.mark.parametrize("account", [True, False])
def test_the_same_instant_in_another_zone_is_not_served_from_the_cache(account: bool) -> None:
    """Equal instants in two zones are equal datetimes, but `now - 1 day` is wall-clock
    arithmetic in `now`'s zone (across a DST change the two differ by an hour): each is
    measured as it would be alone."""
    start = datetime(2026, 10, 22, 12, tzinfo=UTC)  # DST ends in New York on Nov 1
    history = burn.History()
    usage = 0.0
    for hour in range(10 * 24):
        usage += hour % 7
        history.add(Sample(start + timedelta(hours=hour), usage, usage_daily=None))
    now_utc = datetime(2026, 11, 1, 20, 30, tzinfo=UTC)  # a day and a week after the change
    now_ny = now_utc.astimezone(NY)
    assert now_utc == now_ny
    _forget_caches()
    alone_ny = burn.measure(history, now_ny, NY, account=account)
    _forget_caches()
    alone_utc = burn.measure(history, now_utc, NY, account=account)
    assert alone_ny.hourly_baseline != alone_utc.hourly_baseline  # an hour apart
    _forget_caches()
    assert burn.measure(history, now_utc, NY, account=account) == alone_utc
    assert burn.measure(history, now_ny, NY, account=account) == alone_ny
    assert burn.measure(history, now_utc, NY, account=account) == alone_utc


def test_the_words_for_a_partial_window_are_written_for_the_number_used() -> None:
    """Spend today from our own samples since the key was first seen: the sentence says
    so; where the provider's counter proves more, its sentence is the one used."""
    now = T0 + timedelta(minutes=90)
    own = burn.measure(_spending_key(90), now, NY, account=False)  # its day began before T0
    assert own.spent_today == pytest.approx(0.9)
    assert own.spent_today_source == "own samples since 1 h 30 min ago (partial)"
    more = burn.measure(_spending_key(90, before=2.0), now, NY, account=False)
    assert more.spent_today == pytest.approx(2.9)
    assert more.spent_today_source.startswith("provider usage_daily since 00:00 UTC, which")


def test_the_words_for_a_gap_across_the_window_start_name_the_gap() -> None:
    history = burn.History()
    history.add(Sample(utc(2026, 11, 26, 12), 1.0))
    history.add(Sample(utc(2026, 11, 26, 18), 1.0))
    history.add(Sample(utc(2026, 11, 27, 2), 5.0))  # an 8-hour gap over midnight
    history.add(Sample(utc(2026, 11, 27, 3), 5.5))
    m = burn.measure(history, utc(2026, 11, 27, 3), UTC, account=False)
    assert m.spent_today == 4.5
    assert m.spent_today_source == (
        "own samples; a 8 h polling gap spans the start of the window and is counted "
        "whole (the conservative end)"
    )


def test_rates_without_history_are_equal_to_fresh_ones_and_say_so() -> None:
    m = burn.measure(burn.History(), T0, UTC, account=False)
    for rate, window in (
        (m.rate_1h, timedelta(hours=1)),
        (m.rate_24h, timedelta(days=1)),
        (m.avg_daily, timedelta(days=7)),
    ):
        assert rate == burn.Rate(None, window, timedelta(0), "not enough history yet")
    assert m.rate_now is m.rate_1h  # the 10-minute rate falls back to the hour's


def test_the_basis_of_a_prior_is_the_one_that_covers_most() -> None:
    """Only the winning long-run average is put in words: the activity's when it covers
    more than the month so far, the month-to-date average otherwise."""
    sample = Sample(utc(2026, 11, 27, 9), 30.0, usage_daily=1.0, usage_monthly=26.0)
    history = burn.History.from_samples([sample])
    now = utc(2026, 11, 27, 9)
    month = burn.measure(history, now, UTC, burn.Prior(2.0, 20), account=False)
    assert month.hourly_baseline.basis == "provider month-to-date average (26.4 days)"
    activity = burn.measure(history, now, UTC, burn.Prior(2.0, 30), account=False)
    assert activity.hourly_baseline.basis == "activity, last 30 days"
    assert activity.hourly_baseline.per_hour == pytest.approx(2.0 / 24)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]
