"""Spend, burn rates, runway and forecast: pure functions of (history, now, budget).

Everything is computed from a *cumulative spend* curve built from the usage counters, never
from the balance, so a top-up is not negative spend. A counter that goes down (a replaced
key) starts a new segment instead of subtracting; spend inside a polling gap is spread over
the gap, and anchored at midnight UTC by the provider's own `usage_daily` when it has one.
Before our own samples cover a window, the provider's week- and month-to-date counters (and
the account's activity) stand in, and every rate says what backs it.
"""

from __future__ import annotations

import bisect
import functools
import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from watchdog.core.model import Sample
from watchdog.core.words import HOUR
from watchdog.core.words import span as _span

# Samples newer than this stay at full resolution; older ones keep the first and last of
# each 15-minute bucket (every time zone's midnight falls on a quarter hour), and nothing
# older than the longest window we measure (a month plus the 7-day baseline) is kept.
FULL_RESOLUTION = timedelta(hours=3)
BUCKET = 15 * 60.0
MAX_AGE = timedelta(days=40)
# A window needs this much of our own history before its rate is our own.
MIN_OWN_COVERAGE = timedelta(minutes=5)
# The provider's own windows, in the order _utc_windows gives their starts.
PROVIDER_WINDOWS = ("daily", "weekly", "monthly")
# The "now" rate: the short window that catches a fresh runaway the hour average hides.
NOW_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class Rate:
    """A burn rate in USD per hour, and what backs it: `covered` is how much of the window
    our own samples cover, `basis` says in words where the number comes from."""

    per_hour: float | None
    window: timedelta
    covered: timedelta
    basis: str

    @property
    def per_day(self) -> float | None:
        return None if self.per_hour is None else self.per_hour * 24


@dataclass(frozen=True)
class Prior:
    """What the provider knows from before our first sample: the account's activity over
    the last 30 days (management key), as an average daily spend."""

    activity_daily: float | None = None
    activity_days: int = 0


@dataclass(frozen=True)
class Metrics:
    """The numbers of one tick. Amounts in USD; None when unknown."""

    now: datetime
    last_sample_at: datetime | None
    spent_today: float | None
    spent_today_source: str
    spent_week: float | None
    spent_month: float | None
    spent_month_source: str
    rate_now: Rate
    rate_1h: Rate
    rate_24h: Rate
    avg_daily: Rate
    hourly_baseline: Rate
    balance: float | None
    runway_days: float | None
    forecast_month: float | None
    day_start: datetime
    day_end: datetime
    month_start: datetime
    month_end: datetime
    key_limit: float | None
    key_limit_remaining: float | None
    counter_resets: int


class History:
    """The cumulative spend curve: points (epoch seconds, USD spent since the first sample).

    Mutable (the tick adds a sample per poll) but small: full resolution for three hours,
    then two points per quarter hour, 40 days at most (under 8,000 points)."""

    def __init__(self) -> None:
        self.ts: array[float] = array("d")
        self.spend: array[float] = array("d")
        self.last: Sample | None = None
        self.counter_resets = 0
        self.last_reset: datetime | None = None  # when the usage counter last restarted
        # Per provider window (UTC day, week, month): its start, and the best offset seen
        # between the provider's counter and our curve. offset + our spend since is what
        # the provider's counters prove, even across a key replacement (a new counter
        # starts low; what the old one showed this window still counts).
        self._floors: dict[str, tuple[datetime, float]] = {}
        self._compacted_until = 0.0

    @classmethod
    def from_samples(cls, samples: Iterable[Sample]) -> History:
        history = cls()
        for sample in samples:
            history.add(sample)
        return history

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def first_ts(self) -> float | None:
        return self.ts[0] if self.ts else None

    def add(self, sample: Sample) -> None:
        """Append a sample (older or equal timestamps are ignored)."""
        t = sample.ts.timestamp()
        previous = self.last
        if previous is None:
            self._append(t, 0.0)
            self.last = sample
            self._note_counters(sample, 0.0)
            return
        if t <= self.ts[-1]:
            return
        delta = sample.usage - previous.usage
        if delta < 0:
            # The counter went down: a new key. Its usage so far is spend since the switch,
            # but only today's part of it can be new since a sample of today.
            self.counter_resets += 1
            self.last_reset = sample.ts
            delta = sample.usage
            if sample.usage_daily is not None and previous.ts.date() == sample.ts.date():
                delta = min(delta, max(0.0, sample.usage_daily))
        total = self.spend[-1] + delta
        midnight = datetime.combine(sample.ts.astimezone(UTC).date(), time(0), tzinfo=UTC)
        anchor = midnight.timestamp()
        if (
            previous.ts < midnight
            and sample.usage_daily is not None
            and 0 <= sample.usage_daily <= delta
            and self.ts[-1] < anchor < t
        ):
            # The provider's usage_daily says exactly how much of this step fell after
            # midnight UTC: pin the curve there, so a gap is split between the right days.
            self._append(anchor, total - sample.usage_daily)
        if delta == 0 and len(self.ts) >= 2 and self.spend[-2] == total:
            # A flat run keeps its first and last points only (the curve between is the
            # same): an idle key costs two points, not one per poll.
            self.ts[-1] = t
        else:
            self._append(t, total)
        self.last = sample
        self._note_counters(sample, total)

    def touch(self, t: float) -> bool:
        """The counters were polled again at epoch second `t`, unchanged: extend the flat
        run to `t` as `add` would (cheaply, for idle keys). False when `t` is not after
        the last point (nothing done)."""
        if not self.ts or t <= self.ts[-1]:
            return False
        if len(self.ts) >= 2 and self.spend[-2] == self.spend[-1]:
            self.ts[-1] = t
        else:
            self._append(t, self.spend[-1])
        return True

    def _note_counters(self, sample: Sample, total: float) -> None:
        starts = _utc_windows(sample.ts)
        values = (sample.usage_daily, sample.usage_weekly, sample.usage_monthly)
        for name, start, value in zip(PROVIDER_WINDOWS, starts, values, strict=True):
            if value is None:
                continue
            offset = value - total
            known = self._floors.get(name)
            if known is not None and known[0] == start:
                offset = max(known[1], offset)
            self._floors[name] = (start, offset)

    def provider_floor(self, window: str, now: datetime) -> tuple[float, datetime] | None:
        """What the provider's counters prove was spent in the UTC `window` ("daily",
        "weekly", "monthly") containing `now`, and that window's start; None without a
        counter from this window."""
        known = self._floors.get(window)
        if known is None or not self.spend:
            return None
        start = _utc_windows(now)[PROVIDER_WINDOWS.index(window)]
        if known[0] != start:
            return None
        return max(0.0, known[1] + self.spend[-1]), start

    def _append(self, t: float, spend: float) -> None:
        self.ts.append(t)
        self.spend.append(spend)

    def compact(self, now: datetime) -> None:
        """Thin points older than FULL_RESOLUTION and drop those beyond MAX_AGE."""
        horizon = (now - FULL_RESOLUTION).timestamp()
        oldest = (now - MAX_AGE).timestamp()
        start = bisect.bisect_left(self.ts, self._compacted_until)
        stop = bisect.bisect_left(self.ts, horizon)
        if stop - start > 2:
            keep_ts: array[float] = array("d")
            keep_spend: array[float] = array("d")
            i = start
            while i < stop:
                bucket = math.floor(self.ts[i] / BUCKET)
                j = i
                while j + 1 < stop and math.floor(self.ts[j + 1] / BUCKET) == bucket:
                    j += 1
                keep_ts.append(self.ts[i])
                keep_spend.append(self.spend[i])
                if j > i:
                    keep_ts.append(self.ts[j])
                    keep_spend.append(self.spend[j])
                i = j + 1
            self.ts[start:stop] = keep_ts
            self.spend[start:stop] = keep_spend
        self._compacted_until = horizon
        drop = bisect.bisect_left(self.ts, oldest)
        if 0 < drop < len(self.ts):
            del self.ts[:drop]
            del self.spend[:drop]

    def spend_at(self, t: float) -> float | None:
        """Cumulative spend at epoch second `t`, interpolated; None before the first point.
        After the last point the curve is flat: we do not guess spend we have not seen."""
        if not self.ts or t < self.ts[0]:
            return None
        if t >= self.ts[-1]:
            return self.spend[-1]
        i = bisect.bisect_right(self.ts, t)
        t0, t1 = self.ts[i - 1], self.ts[i]
        s0, s1 = self.spend[i - 1], self.spend[i]
        return s0 if t1 == t0 else s0 + (s1 - s0) * (t - t0) / (t1 - t0)

    def spend_before(self, t: float) -> float | None:
        """Cumulative spend at the last point at or before `t` (None before the first):
        the conservative start of a window that begins inside a polling gap, since the
        gap's spend may all have fallen after `t`."""
        if not self.ts or t < self.ts[0]:
            return None
        return self.spend[bisect.bisect_right(self.ts, t) - 1]

    def window(self, start: datetime, end: datetime) -> tuple[float, timedelta] | None:
        """Spend between `start` and `end` as far as our samples cover it, and how much of
        the window they cover; None when they cover none of it."""
        if not self.ts:
            return None
        a = max(start.timestamp(), self.ts[0])
        b = min(end.timestamp(), self.ts[-1])
        if b <= a:
            return (0.0, timedelta(0)) if b == a else None
        s_a, s_b = self.spend_at(a), self.spend_at(b)
        assert s_a is not None and s_b is not None
        return max(0.0, s_b - s_a), timedelta(seconds=b - a)

    def hourly(self, end: datetime, hours: int) -> list[tuple[datetime, float | None]]:
        """Spend per clock hour for the `hours` hours up to `end` (None where uncovered).

        Each hour boundary is interpolated once (not twice per hour, as `window` would):
        this runs every tick for the status page's 7-day chart."""
        top = end.replace(minute=0, second=0, microsecond=0)
        first = top - timedelta(hours=hours - 1)
        if not self.ts:
            return [(first + timedelta(hours=k), None) for k in range(hours)]
        lo, hi = self.ts[0], self.ts[-1]
        t0 = first.timestamp()
        edges = [t0 + k * HOUR for k in range(hours + 1)]
        spend = [self.spend_at(min(max(t, lo), hi)) for t in edges]
        out: list[tuple[datetime, float | None]] = []
        for k in range(hours):
            covered = min(edges[k + 1], hi) - max(edges[k], lo) > 0
            a, b = spend[k], spend[k + 1]
            value = max(0.0, b - a) if covered and a is not None and b is not None else None
            out.append((first + timedelta(hours=k), value))
        return out


# -- calendar -----------------------------------------------------------------------------


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """The first instant of `day` in `tz`, in UTC (DST-safe: zoneinfo resolves it)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


@functools.lru_cache(maxsize=64)  # the same instants for every key of a tick
def day_bounds(now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    today = now.astimezone(tz).date()
    return local_midnight(today, tz), local_midnight(today + timedelta(days=1), tz)


@functools.lru_cache(maxsize=64)  # the same instants for every key of a tick
def week_start(now: datetime, tz: tzinfo) -> datetime:
    today = now.astimezone(tz).date()
    return local_midnight(today - timedelta(days=today.weekday()), tz)


@functools.lru_cache(maxsize=64)  # the same instants for every key of a tick
def month_bounds(now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    today = now.astimezone(tz).date()
    first = today.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return local_midnight(first, tz), local_midnight(following, tz)


# -- measuring ----------------------------------------------------------------------------


def measure(
    history: History,
    now: datetime,
    tz: tzinfo,
    prior: Prior | None = None,
    *,
    account: bool = True,
) -> Metrics:
    """Given the spend curve, the time and the budget's zone, return this tick's Metrics.

    Pure: reads nothing but its arguments. Cost is independent of history length (a few
    binary searches), so it stays fast on a year of samples.

    When the clock is behind the newest sample (it stepped back), the windows are those
    of the newest data, not of the clock: spend today is what the provider last counted,
    never $0 because "today" by a wrong clock has no samples (the `clock` rule says the
    clock is wrong; `Metrics.now` stays the clock's reading).

    Without `account` (one key of many), only what a key is judged and shown by: no week,
    no 24-hour or 7-day average, no runway or forecast (those are the account's)."""
    prior = prior or Prior()
    latest = history.last
    clock_now = now
    if latest is not None and latest.ts > now:
        now = latest.ts
    day_start, day_end = day_bounds(now, tz)
    month_start, month_end = month_bounds(now, tz)
    wk_start = week_start(now, tz)

    spent_today, today_source = _spent_since(history, day_start, now)
    spent_week, _ = _spent_since(history, wk_start, now) if account else (None, "")
    spent_month, month_source = _spent_since(history, month_start, now)
    # The provider's UTC counters bound what we saw: never read lower than they prove.
    spent_today, today_source = _bounded(
        history,
        spent_today,
        today_source,
        history.provider_floor("daily", now),
        day_start,
        "usage_daily",
        "00:00 UTC",
    )
    if account:
        spent_week, _ = _bounded(
            history,
            spent_week,
            "",
            history.provider_floor("weekly", now),
            wk_start,
            "usage_weekly",
            "Monday 00:00 UTC",
        )
    spent_month, month_source = _bounded(
        history,
        spent_month,
        month_source,
        history.provider_floor("monthly", now),
        month_start,
        "usage_monthly",
        "the 1st 00:00 UTC",
    )

    today_rate = _provider_today_rate(latest, history.last_reset)
    daily_prior = _daily_prior(latest, prior, history.last_reset)
    rate_1h = (
        _own_rate(history, now, timedelta(hours=1)) or today_rate or _unknown(timedelta(hours=1))
    )
    rate_now = _own_rate(history, now, NOW_WINDOW, min_cover=timedelta(minutes=2)) or rate_1h
    if account:
        rate_24h = _blended(history, now, timedelta(days=1), today_rate or daily_prior)
        avg_daily = _blended(history, now, timedelta(days=7), daily_prior or today_rate)
    else:
        rate_24h, avg_daily = _unknown(timedelta(days=1)), _unknown(timedelta(days=7))
    baseline = _blended(
        history,
        now - timedelta(hours=1),
        timedelta(days=7) - timedelta(hours=1),
        daily_prior or today_rate,
    )

    balance = latest.balance if latest is not None else None
    runway = None
    if balance is not None and avg_daily.per_day is not None:
        runway = math.inf if avg_daily.per_day <= 0 else max(0.0, balance) / avg_daily.per_day
    forecast = None
    if spent_month is not None and rate_24h.per_hour is not None:
        left_h = max(0.0, (month_end - now).total_seconds() / HOUR)
        forecast = spent_month + rate_24h.per_hour * left_h

    return Metrics(
        now=clock_now,
        last_sample_at=latest.ts if latest is not None else None,
        spent_today=spent_today,
        spent_today_source=today_source,
        spent_week=spent_week,
        spent_month=spent_month,
        spent_month_source=month_source,
        rate_now=rate_now,
        rate_1h=rate_1h,
        rate_24h=rate_24h,
        avg_daily=avg_daily,
        hourly_baseline=baseline,
        balance=balance,
        runway_days=runway,
        forecast_month=forecast,
        day_start=day_start,
        day_end=day_end,
        month_start=month_start,
        month_end=month_end,
        key_limit=latest.key_limit if latest is not None else None,
        key_limit_remaining=latest.key_limit_remaining if latest is not None else None,
        counter_resets=history.counter_resets,
    )


# A window that starts inside a polling gap longer than this says so in its basis.
GAP_NOTED = timedelta(minutes=5)


def _spent_since(history: History, start: datetime, now: datetime) -> tuple[float | None, str]:
    """Spend from `start` to `now` as our own samples prove it, and what backs it. A
    window that begins inside a polling gap counts the whole gap (its spend may all have
    fallen after `start`): limits are judged on the conservative end."""
    first = history.first_ts
    if first is None:
        return None, "no samples yet"
    got = history.window(start, now)
    if got is None:
        return 0.0, "own samples"  # the window began after our last sample: nothing seen
    spent, covered = got
    t = start.timestamp()
    if first > t:
        return spent, f"own samples since {_span(covered)} ago (partial)"
    floor, end = history.spend_before(t), history.spend_at(min(now.timestamp(), history.ts[-1]))
    if floor is None or end is None:
        return spent, "own samples"
    i = bisect.bisect_right(history.ts, t)
    gap = history.ts[i] - history.ts[i - 1] if i < len(history.ts) else 0.0
    conservative = max(spent, end - floor)
    if gap > GAP_NOTED.total_seconds() and conservative > spent:
        return conservative, (
            f"own samples; a {_span(timedelta(seconds=gap))} polling gap spans the start of "
            "the window and is counted whole (the conservative end)"
        )
    return conservative, "own samples"


@functools.lru_cache(maxsize=64)  # the same instants for every key of a tick
def _utc_windows(ts: datetime) -> tuple[datetime, datetime, datetime]:
    """The provider's windows containing `ts`: UTC day, week (from Monday), month."""
    day = datetime.combine(ts.astimezone(UTC).date(), time(0), tzinfo=UTC)
    return day, day - timedelta(days=day.weekday()), day.replace(day=1)


def _bounded(
    history: History,
    own: float | None,
    own_source: str,
    floor: tuple[float, datetime] | None,
    local_start: datetime,
    counter: str,
    since: str,
) -> tuple[float | None, str]:
    """Spend in a local window given our own figure and the provider's counter for the
    UTC window it knows. The counter is a lower bound when its window lies inside ours
    (it starts at or after ours), and when the key was replaced (a new counter). When it
    starts before ours it may include spend from before our window: an upper bound, used
    (the conservative end) only while our own samples do not cover the whole window."""
    if floor is None:
        return own, own_source
    provider, provider_start = floor
    if own is None or provider > own:
        inside = provider_start >= local_start
        first = history.first_ts
        covered = first is not None and first <= local_start.timestamp()
        if inside:
            return provider, f"provider {counter} (since {since}; at least this much)"
        if not covered:
            return provider, (
                f"provider {counter} since {since}, which may include spend before the "
                "local window: at most this much, judged on that conservative end"
            )
    return own, own_source


def _own_rate(
    history: History, now: datetime, window: timedelta, min_cover: timedelta = MIN_OWN_COVERAGE
) -> Rate | None:
    got = history.window(now - window, now)
    if got is None or got[1] < min_cover:
        return None
    spent, covered = got
    return Rate(
        spent / (covered.total_seconds() / HOUR), window, covered, _own_basis(covered, window)
    )


def _blended(history: History, now: datetime, window: timedelta, prior: Rate | None) -> Rate:
    """Our own samples over the part of `window` they cover, the prior for the rest."""
    got = history.window(now - window, now)
    spent, covered = got if got is not None else (0.0, timedelta(0))
    if covered >= window or (prior is None or prior.per_hour is None):
        if covered < MIN_OWN_COVERAGE:
            return _unknown(window)
        return Rate(
            spent / (covered.total_seconds() / HOUR), window, covered, _own_basis(covered, window)
        )
    rest_h = (window - covered).total_seconds() / HOUR
    per_hour = (spent + prior.per_hour * rest_h) / (window.total_seconds() / HOUR)
    basis = (
        prior.basis
        if covered < MIN_OWN_COVERAGE
        else f"own samples over {_span(covered)} + {prior.basis}"
    )
    return Rate(per_hour, window, covered, basis)


def _provider_today_rate(latest: Sample | None, reset: datetime | None = None) -> Rate | None:
    """Today's average rate from the provider's usage_daily (since 00:00 UTC); None when
    the counter restarted today (a new key's counter does not cover the day)."""
    if latest is None or latest.usage_daily is None:
        return None
    ts = latest.ts.astimezone(UTC)
    midnight = datetime.combine(ts.date(), time(0), tzinfo=UTC)
    if reset is not None and reset > midnight:
        return None
    elapsed = ts - midnight
    if elapsed < MIN_OWN_COVERAGE:
        return None
    hours = elapsed.total_seconds() / HOUR
    return Rate(
        latest.usage_daily / hours,
        elapsed,
        timedelta(0),
        f"provider usage_daily (today since 00:00 UTC, {_span(elapsed)})",
    )


def _daily_prior(latest: Sample | None, prior: Prior, reset: datetime | None = None) -> Rate | None:
    """The best-backed long-run average before our own samples: the one covering most.
    A provider counter that restarted inside its window (a replaced key) is no average."""
    candidates: list[Rate] = []
    if prior.activity_daily is not None and prior.activity_days > 0:
        span = timedelta(days=prior.activity_days)
        candidates.append(
            Rate(
                prior.activity_daily / 24,
                span,
                timedelta(0),
                f"activity, last {prior.activity_days} days",
            )
        )
    if latest is not None:
        ts = latest.ts.astimezone(UTC)
        midnight = datetime.combine(ts.date(), time(0), tzinfo=UTC)
        for value, begin, name in (
            (latest.usage_monthly, midnight.replace(day=1), "month-to-date"),
            (latest.usage_weekly, midnight - timedelta(days=ts.weekday()), "week-to-date"),
        ):
            elapsed = ts - begin
            restarted = reset is not None and reset > begin
            if value is not None and elapsed >= timedelta(hours=1) and not restarted:
                candidates.append(
                    Rate(
                        value / (elapsed.total_seconds() / HOUR),
                        elapsed,
                        timedelta(0),
                        f"provider {name} average ({_span(elapsed)})",
                    )
                )
    return max(candidates, key=lambda r: r.window) if candidates else None


def prior_from_activity(days: Sequence[tuple[date, float]], today: date) -> Prior | None:
    """Given the provider's spend per UTC day (activity, usually 30 days) and today's date,
    return the average daily spend of the complete days before today, or None if none.
    Days without a row count as zero spend: activity lists only days that had some."""
    past = [(day, usage) for day, usage in days if day < today]
    if not past:
        return None
    span = (today - min(day for day, _ in past)).days
    return Prior(activity_daily=sum(usage for _, usage in past) / span, activity_days=span)


def _unknown(window: timedelta) -> Rate:
    return Rate(None, window, timedelta(0), "not enough history yet")


def _own_basis(covered: timedelta, window: timedelta) -> str:
    if covered >= window - timedelta(seconds=1):
        return f"own samples, full {_span(window)}"
    return f"own samples over {_span(covered)} of {_span(window)}"


def daily_spend(
    history: History, end: datetime, days: int, tz: tzinfo
) -> list[tuple[date, float | None]]:
    """Spend per local day for the `days` days up to and including `end`'s day."""
    today = end.astimezone(tz).date()
    out: list[tuple[date, float | None]] = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        got = history.window(
            local_midnight(day, tz), min(end, local_midnight(day + timedelta(days=1), tz))
        )
        out.append((day, got[0] if got and got[1] > timedelta(0) else None))
    return out


def samples_needed_since(now: datetime, tz: tzinfo) -> datetime:
    """How far back the tick must load samples for every window measure() looks at."""
    month_start, _ = month_bounds(now, tz)
    return min(month_start, now - timedelta(days=7)) - timedelta(hours=1)


def history_from(samples: Sequence[Sample], now: datetime) -> History:
    history = History.from_samples(samples)
    history.compact(now)
    return history
