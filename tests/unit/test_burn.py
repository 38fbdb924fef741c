"""Spend, rates, runway and forecast at every awkward boundary, with plain values."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.core import burn
from watchdog.core.model import Sample

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]


def steady(
    start: datetime,
    end: datetime,
    per_hour: float = 1.0,
    step: timedelta = timedelta(minutes=1),
    usage0: float = 100.0,
    **fields: Any,
) -> list[Sample]:
    """A counter rising `per_hour` from `start` to `end`, sampled every `step`."""
    out, t = [], start
    while t <= end:
        out.append(Sample(t, usage0 + per_hour * (t - start).total_seconds() / 3600, **fields))
        t += step
    return out


def measure(
    samples: list[Sample],
    now: datetime,
    tz: ZoneInfo | None = None,
    prior: burn.Prior | None = None,
) -> burn.Metrics:
    return burn.measure(burn.History.from_samples(samples), now, tz or ZoneInfo("UTC"), prior)


def test_steady_spend_in_utc() -> None:
    now = utc(2026, 11, 27, 10)
    m = measure(steady(utc(2026, 11, 25, 10), now, balance=48.0), now)
    assert m.spent_today == pytest.approx(10.0)
    assert m.rate_1h.per_hour == pytest.approx(1.0)
    assert m.rate_24h.per_hour == pytest.approx(1.0)
    assert m.avg_daily.per_day == pytest.approx(24.0)
    assert m.runway_days == pytest.approx(2.0)
    assert m.rate_1h.basis == "own samples, full 1 h"
    assert m.avg_daily.basis == "own samples over 2.0 days of 7.0 days"


def test_midnight_in_a_zone_east_of_utc() -> None:
    now = utc(2026, 11, 27, 10)  # 11:00 in Berlin (UTC+1)
    m = measure(steady(utc(2026, 11, 26), now), now, BERLIN)
    assert m.day_start == utc(2026, 11, 26, 23)
    assert m.spent_today == pytest.approx(11.0)


@pytest.mark.parametrize(
    ("day", "midnight_utc", "hours_to_noon"),
    [
        (
            datetime(2026, 3, 8, 12, tzinfo=NY),
            utc(2026, 3, 8, 5),
            11,
        ),  # spring forward: 23-hour day
        (datetime(2026, 11, 1, 12, tzinfo=NY), utc(2026, 11, 1, 4), 13),  # fall back: 25-hour day
    ],
)
def test_both_dst_changes_in_new_york(
    day: datetime, midnight_utc: datetime, hours_to_noon: int
) -> None:
    now = day.astimezone(UTC)
    m = measure(steady(now - timedelta(days=2), now), now, NY)
    assert m.day_start == midnight_utc
    assert m.spent_today == pytest.approx(hours_to_noon)
    assert (m.day_end - m.day_start) == timedelta(hours=23 if hours_to_noon == 11 else 25)


@pytest.mark.parametrize(
    ("now", "month_end", "spent_month"),
    [
        (utc(2026, 2, 28, 23), utc(2026, 3, 1), 27 * 24 + 23),  # February, not a leap year
        (utc(2028, 2, 29, 23), utc(2028, 3, 1), 28 * 24 + 23),  # February 29th
        (utc(2026, 1, 31, 12), utc(2026, 2, 1), 30 * 24 + 12),  # the 31st
    ],
)
def test_month_ends(now: datetime, month_end: datetime, spent_month: float) -> None:
    m = measure(steady(now - timedelta(days=40), now), now)
    assert m.month_end == month_end
    assert m.spent_month == pytest.approx(spent_month)
    hours_left = (month_end - now).total_seconds() / 3600
    assert m.forecast_month == pytest.approx(spent_month + hours_left)


def test_first_day_of_a_month_does_not_extrapolate_a_burst() -> None:
    now = utc(2026, 12, 1, 0, 30)
    samples = steady(now - timedelta(days=3), utc(2026, 12, 1))
    burst = samples[-1].usage
    samples += steady(utc(2026, 12, 1, 0, 1), now, per_hour=20.0, usage0=burst + 20 / 60)
    m = measure(samples, now)
    assert m.spent_month == pytest.approx(10.0, abs=0.4)
    # A naive month-to-date extrapolation says ~$14,880; the 24-hour rate says ~$1,050.
    assert m.forecast_month is not None
    assert 900 < m.forecast_month < 1200


def test_first_poll_uses_the_providers_counters() -> None:
    now = utc(2026, 11, 27, 12)  # a Friday: week-to-date covers 4.5 days, month 26.5 days
    sample = Sample(
        now, 500.0, usage_daily=6.0, usage_weekly=54.0, usage_monthly=318.0, balance=60.0
    )
    m = measure([sample], now)
    assert m.spent_today == 6.0
    assert m.spent_month == 318.0
    assert m.rate_1h.per_hour == pytest.approx(0.5)  # today so far: $6 in 12 h
    assert "usage_daily" in m.rate_1h.basis
    assert m.avg_daily.per_day == pytest.approx(12.0)  # month-to-date: $318 in 26.5 days
    assert "month-to-date" in m.avg_daily.basis
    assert m.runway_days == pytest.approx(5.0)
    assert m.forecast_month is not None and math.isfinite(m.forecast_month)


def test_activity_backs_the_baseline_when_it_covers_more() -> None:
    now = utc(2026, 11, 3, 12)
    sample = Sample(now, 500.0, usage_daily=6.0, usage_weekly=6.0, usage_monthly=30.0, balance=60.0)
    m = measure([sample], now, prior=burn.Prior(activity_daily=20.0, activity_days=30))
    assert m.avg_daily.per_day == pytest.approx(20.0)
    assert m.avg_daily.basis == "activity, last 30 days"
    assert m.runway_days == pytest.approx(3.0)


@pytest.mark.parametrize("now", [utc(2026, 6, 1, 0, 0, 30), utc(2026, 6, 1, 0, 0, 0)])
def test_first_poll_at_the_start_of_a_month_and_week_is_unknown_not_nonsense(now: datetime) -> None:
    sample = Sample(now, 500.0, usage_daily=0.0, usage_weekly=0.0, usage_monthly=0.0, balance=60.0)
    m = measure([sample], now)
    assert m.avg_daily.per_day is None
    assert m.runway_days is None
    assert m.rate_1h.per_hour is None
    assert m.forecast_month is None
    assert m.spent_month == 0.0


def test_own_samples_take_over_from_the_prior_as_they_accumulate() -> None:
    now = utc(2026, 11, 27, 12)

    def counters(start: datetime) -> list[Sample]:
        return steady(start, now, 3.0, usage_daily=6.0, usage_weekly=54.0, usage_monthly=318.0)

    early = measure(counters(now - timedelta(hours=1)), now)
    later = measure(counters(now - timedelta(days=7)), now)
    assert early.avg_daily.per_day is not None and later.avg_daily.per_day is not None
    assert 12.0 < early.avg_daily.per_day < 13.0  # mostly the $12/day prior
    assert later.avg_daily.per_day == pytest.approx(72.0)  # all our own: $3/h
    assert "own samples over 1 h" in early.avg_daily.basis


def test_a_top_up_is_not_negative_spend() -> None:
    now = utc(2026, 11, 27, 14)
    before = steady(utc(2026, 11, 27), utc(2026, 11, 27, 12), balance=20.0)
    after = steady(utc(2026, 11, 27, 12, 1), now, usage0=before[-1].usage + 1 / 60, balance=120.0)
    m = measure(before + after, now)
    assert m.spent_today == pytest.approx(14.0)
    assert m.rate_1h.per_hour == pytest.approx(1.0)
    assert m.balance == 120.0


def test_a_replaced_key_starts_a_new_counter() -> None:
    now = utc(2026, 11, 27, 12)
    old = steady(utc(2026, 11, 27), utc(2026, 11, 27, 10), usage0=400.0)
    new = steady(utc(2026, 11, 27, 10, 1), now, usage0=1 / 60)  # a fresh key from 0
    history = burn.History.from_samples(old + new)
    m = burn.measure(history, now, ZoneInfo("UTC"))
    assert history.counter_resets == 1
    assert m.spent_today == pytest.approx(12.0)
    assert m.counter_resets == 1


def test_a_replacement_key_with_old_usage_counts_only_its_spend_today() -> None:
    now = utc(2026, 11, 27, 12)
    old = [Sample(utc(2026, 11, 27, 11), 400.0, usage_daily=11.0)]
    new = [Sample(now, 250.0, usage_daily=1.5)]  # another key: $250 lifetime, $1.50 today
    m = measure(old + new, utc(2026, 11, 27, 12))
    assert m.rate_1h.per_hour == pytest.approx(1.5)


def test_a_six_hour_gap_is_split_between_the_right_days() -> None:
    before = steady(utc(2026, 11, 26, 12), utc(2026, 11, 26, 21))
    t = utc(2026, 11, 27, 3)
    after = [Sample(t, before[-1].usage + 6.0, usage_daily=3.0)]  # $6 in the gap, $3 after midnight
    history = burn.History.from_samples(before + after)
    days = dict(burn.daily_spend(history, t, 2, ZoneInfo("UTC")))
    assert days[utc(2026, 11, 26).date()] == pytest.approx(12.0)  # 12:00-24:00
    assert days[utc(2026, 11, 27).date()] == pytest.approx(3.0)
    berlin = dict(burn.daily_spend(history, t, 2, BERLIN))  # midnight there is 23:00 UTC
    assert berlin[utc(2026, 11, 27).date()] == pytest.approx(4.0)
    assert sum(v for v in berlin.values() if v) == pytest.approx(15.0)  # nothing lost or doubled


def test_stale_data_is_not_extrapolated() -> None:
    samples = steady(utc(2026, 11, 27), utc(2026, 11, 27, 6))
    m = measure(samples, utc(2026, 11, 27, 9))
    assert m.spent_today == pytest.approx(6.0)
    assert m.last_sample_at == utc(2026, 11, 27, 6)


def test_compacting_keeps_windows_exact_and_history_small() -> None:
    now = utc(2026, 11, 27, 12, 7)
    samples = steady(now - timedelta(days=45), now, per_hour=2.0)
    history = burn.History.from_samples(samples)
    full = burn.measure(history, now, BERLIN)
    history.compact(now)
    small = burn.measure(history, now, BERLIN)
    assert len(history) < 8_000 < len(samples)
    assert small.spent_today == pytest.approx(full.spent_today)
    assert small.spent_month == pytest.approx(full.spent_month)
    assert small.avg_daily.per_day == pytest.approx(full.avg_daily.per_day)


# -- properties -----------------------------------------------------------------------------

steps = st.lists(
    st.tuples(st.floats(min_value=1, max_value=7200), st.floats(min_value=0, max_value=50)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(steps=steps, zone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]))
def test_spend_is_never_negative_for_a_monotonic_counter(
    steps: list[tuple[float, float]], zone: str
) -> None:
    t, usage = utc(2026, 3, 7, 20), 10.0
    samples = [Sample(t, usage)]
    for seconds, spent in steps:
        t += timedelta(seconds=seconds)
        usage += spent
        samples.append(Sample(t, usage))
    m = measure(samples, t, ZoneInfo(zone))
    for value in (
        m.spent_today,
        m.spent_week,
        m.spent_month,
        m.rate_1h.per_hour,
        m.rate_24h.per_hour,
        m.avg_daily.per_hour,
    ):
        assert value is None or value >= 0
    total = sum(
        v or 0
        for _, v in burn.daily_spend(burn.History.from_samples(samples), t, 30, ZoneInfo(zone))
    )
    assert total == pytest.approx(usage - 10.0, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(low=st.floats(min_value=0, max_value=1e5), extra=st.floats(min_value=0, max_value=1e5))
def test_runway_grows_with_balance(low: float, extra: float) -> None:
    now = utc(2026, 11, 27, 12)
    base = steady(now - timedelta(days=2), now - timedelta(minutes=1))
    a = measure([*base, Sample(now, base[-1].usage + 1 / 60, balance=low)], now)
    b = measure([*base, Sample(now, base[-1].usage + 1 / 60, balance=low + extra)], now)
    assert a.runway_days is not None and b.runway_days is not None
    assert b.runway_days >= a.runway_days


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(min_value=1, max_value=180), st.floats(min_value=0, max_value=5)),
        min_size=0,
        max_size=40,
    ),
    end_offset=st.integers(min_value=-600, max_value=6000),
)
def test_the_hourly_chart_agrees_with_the_spend_windows(
    steps: list[tuple[int, float]], end_offset: int
) -> None:
    """The chart interpolates each hour boundary once; it must say what `window` says."""
    base = datetime(2026, 11, 20, 7, 13, tzinfo=UTC)
    history = burn.History()
    t, usage = base, 10.0
    for minutes, spent in steps:
        history.add(Sample(t, usage))
        t += timedelta(minutes=minutes)
        usage += spent
    end = base + timedelta(minutes=end_offset)
    chart = history.hourly(end, 12)
    assert len(chart) == 12
    for begin, value in chart:
        got = history.window(begin, begin + timedelta(hours=1))
        expected = got[0] if got and got[1] > timedelta(0) else None
        if expected is None:
            assert value is None
        else:
            assert value == pytest.approx(expected, abs=1e-9)


# -- never lower than the provider's counters prove -----------------------------------------


def test_a_replaced_key_keeps_todays_spend_in_utc() -> None:
    """The new key's counters restart near zero; what was already seen today stays."""
    t0 = datetime(2026, 11, 27, 9, tzinfo=UTC)
    history = burn.History.from_samples(
        [
            Sample(t0, 500.0, usage_daily=12.0, usage_monthly=150.0),
            Sample(t0 + timedelta(minutes=1), 501.0, usage_daily=13.0, usage_monthly=151.0),
            # the key is replaced: a new counter
            Sample(t0 + timedelta(minutes=2), 0.5, usage_daily=0.5, usage_monthly=0.5),
        ]
    )
    m = burn.measure(history, t0 + timedelta(minutes=2), UTC)
    assert m.spent_today == pytest.approx(13.5)
    assert m.spent_month == pytest.approx(151.5)
    assert m.counter_resets == 1


def test_averages_are_not_rebuilt_from_a_counter_that_just_restarted() -> None:
    t0 = datetime(2026, 11, 27, 9, tzinfo=UTC)
    history = burn.History.from_samples(
        [Sample(t0, 500.0, usage_daily=12.0, usage_weekly=80.0, usage_monthly=300.0)]
    )
    before = burn.measure(history, t0, UTC)
    assert before.avg_daily.per_day is not None and before.avg_daily.per_day > 10
    history.add(Sample(t0 + timedelta(minutes=1), 0.01, 0.01, 0.01, 0.01, balance=50.0))
    after = burn.measure(history, t0 + timedelta(minutes=1), UTC)
    # a new key's month-to-date ($0.01) is not the account's average: no runway of ages
    assert after.avg_daily.per_day is None or after.avg_daily.per_day > 1
    assert after.runway_days is None or after.runway_days < 100


def test_cold_start_east_of_utc_counts_the_providers_day_as_a_lower_bound() -> None:
    """Auckland's day began 13 h before UTC's: usage_daily (since 00:00 UTC) all fell in
    the local day, so spend today is at least that, from the first poll."""
    tz = ZoneInfo("Pacific/Auckland")
    now = datetime(2026, 11, 27, 9, tzinfo=UTC)  # 22:00 in Auckland
    history = burn.History.from_samples([Sample(now, 500.0, usage_daily=18.0, usage_monthly=90.0)])
    m = burn.measure(history, now, tz)
    assert m.spent_today == 18.0
    assert "at least" in m.spent_today_source


def test_cold_start_west_of_utc_judges_on_the_providers_upper_bound() -> None:
    """Los Angeles' day began 8 h after UTC's: usage_daily may include spend from before
    local midnight; until our own samples cover the local day, the conservative end."""
    tz = ZoneInfo("America/Los_Angeles")
    now = datetime(2026, 11, 27, 20, tzinfo=UTC)  # 12:00 in Los Angeles
    history = burn.History.from_samples([Sample(now, 500.0, usage_daily=18.0)])
    m = burn.measure(history, now, tz)
    assert m.spent_today == 18.0
    assert "at most" in m.spent_today_source and "conservative" in m.spent_today_source


def test_once_our_samples_cover_the_local_day_they_are_exact() -> None:
    tz = ZoneInfo("America/Los_Angeles")
    midnight = datetime(2026, 11, 27, 8, tzinfo=UTC)  # 00:00 in Los Angeles
    history = burn.History.from_samples(
        [
            Sample(midnight - timedelta(minutes=1), 500.0, usage_daily=10.0),
            Sample(midnight + timedelta(hours=4), 503.0, usage_daily=13.0),
        ]
    )
    m = burn.measure(history, midnight + timedelta(hours=4), tz)
    assert m.spent_today == pytest.approx(3.0, abs=0.01)  # not the 13.0 since 00:00 UTC


def test_a_polling_gap_across_local_midnight_counts_whole_for_today() -> None:
    tz = ZoneInfo("Europe/Berlin")
    before = datetime(2026, 11, 26, 22, 30, tzinfo=UTC)  # 23:30 Berlin
    after = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)  # 00:30 Berlin, the next day
    history = burn.History.from_samples([Sample(before, 100.0), Sample(after, 110.0)])
    m = burn.measure(history, after, tz)
    assert m.spent_today == pytest.approx(10.0)  # not the linear split's $5
    assert "gap" in m.spent_today_source and "conservative" in m.spent_today_source


def test_a_gap_across_utc_midnight_is_pinned_by_usage_daily() -> None:
    before = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
    after = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    history = burn.History.from_samples(
        [Sample(before, 100.0, usage_daily=5.0), Sample(after, 110.0, usage_daily=3.0)]
    )
    m = burn.measure(history, after, UTC)
    assert m.spent_today == pytest.approx(3.0)  # the provider pinned 7 to yesterday


def test_a_clock_behind_the_data_still_reads_the_spend_the_data_shows() -> None:
    """The clock stepped back a day: 'today' by the wrong clock has no samples, but spend
    must not read $0 — it is the newest data's day."""
    data_at = datetime(2026, 11, 27, 15, tzinfo=UTC)
    history = burn.History.from_samples(
        [Sample(data_at, 500.0, usage_daily=7.5, usage_monthly=90.0)]
    )
    clock = data_at - timedelta(days=1, hours=2)
    m = burn.measure(history, clock, UTC)
    assert m.spent_today == 7.5 and m.spent_month == 90.0
    assert m.now == clock and m.last_sample_at == data_at  # the clock rule sees the step
