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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TypeAlias

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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Prior:
    """What the provider knows from before our first sample: the account's activity over
    the last 30 days (management key), as an average daily spend."""

    activity_daily: float | None = None
    activity_days: int = 0


@dataclass(frozen=True, slots=True)
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
        midnight = _utc_windows(sample.ts)[0]  # the same for every key of a tick
        if (
            previous.ts < midnight
            and sample.usage_daily is not None
            and 0 <= sample.usage_daily <= delta
            and self.ts[-1] < (anchor := midnight.timestamp()) < t
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

    def provider_floor(self, window: str, start: datetime) -> float | None:
        """What the provider's counters prove was spent in the UTC `window` ("daily",
        "weekly", "monthly") that starts at `start` (the one containing now); None
        without a counter from that window."""
        known = self._floors.get(window)
        if known is None or not self.spend or known[0] != start:
            return None
        return max(0.0, known[1] + self.spend[-1])

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

    def window(self, start: datetime, end: datetime) -> tuple[float, timedelta] | None:
        """Spend between `start` and `end` as far as our samples cover it, and how much of
        the window they cover; None when they cover none of it."""
        return self.window_ts(start.timestamp(), end.timestamp())

    def window_ts(self, start: float, end: float) -> tuple[float, timedelta] | None:
        """`window` between epoch seconds."""
        if not self.ts:
            return None
        a = max(start, self.ts[0])
        b = min(end, self.ts[-1])
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

_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_BASELINE = _WEEK - _HOUR  # the 7-day baseline ends an hour ago (the spike's own hour)
_NOW_COVER = timedelta(minutes=2)


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


@dataclass(frozen=True, slots=True)
class _Calendar:
    """The instants a tick measures every curve against, the same for all its keys: the
    local day, week and month, the provider's UTC windows, and where each sliding window
    starts, as epoch seconds (each from its own datetime, exactly as `History.window`
    would convert it)."""

    day_start: datetime
    day_end: datetime
    week_start: datetime
    month_start: datetime
    month_end: datetime
    now_ts: float
    day_ts: float
    week_ts: float
    month_ts: float
    starts: tuple[float, float, float]  # the day's, week's and month's, as above
    # The provider's windows containing now (UTC day, week, month), and whether each
    # starts inside the matching local window (then its counter is a lower bound).
    utc: tuple[datetime, datetime, datetime]
    inside: tuple[bool, bool, bool]
    now_window_ts: float  # now - NOW_WINDOW
    hour_ts: float  # now - 1 h (also the end of the baseline's window)
    day_ago_ts: float  # now - 24 h
    week_ago_ts: float  # now - 7 days
    baseline_ts: float  # where the baseline's window starts


@functools.lru_cache(maxsize=64)  # computed once per tick, shared by all its keys
def _calendar(now: datetime, zone: tzinfo | None, fold: int, tz: tzinfo) -> _Calendar:
    """The calendar of `now` in `tz`. `now`'s own zone and fold are part of the cache's
    key: equal instants in two zones are equal datetimes, yet `now - 1 day` is wall-clock
    arithmetic in `now`'s zone."""
    day_start, day_end = day_bounds(now, tz)
    month_start, month_end = month_bounds(now, tz)
    wk_start = week_start(now, tz)
    utc = _utc_windows(now)
    hour_ago = now - _HOUR
    day_ts, week_ts, month_ts = day_start.timestamp(), wk_start.timestamp(), month_start.timestamp()
    return _Calendar(
        day_start=day_start,
        day_end=day_end,
        week_start=wk_start,
        month_start=month_start,
        month_end=month_end,
        now_ts=now.timestamp(),
        day_ts=day_ts,
        week_ts=week_ts,
        month_ts=month_ts,
        starts=(day_ts, week_ts, month_ts),
        utc=utc,
        inside=(utc[0] >= day_start, utc[1] >= wk_start, utc[2] >= month_start),
        now_window_ts=(now - NOW_WINDOW).timestamp(),
        hour_ts=hour_ago.timestamp(),
        day_ago_ts=(now - _DAY).timestamp(),
        week_ago_ts=(now - _WEEK).timestamp(),
        baseline_ts=(hour_ago - _BASELINE).timestamp(),
    )


# -- measuring ----------------------------------------------------------------------------

_PRIOR_NONE = Prior()


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
    no 24-hour or 7-day average, no runway or forecast (those are the account's).

    Runs for every key that spends, every tick, so it is written for speed: the tick's
    instants come from one cached calendar, windows are cut in epoch seconds from an end
    read once, the provider's averages are only worked out for a window our own samples
    leave uncovered, and a sentence saying what backs a number is only written for the
    number that is used."""
    prior = prior or _PRIOR_NONE
    latest = history.last
    clock_now = now
    if latest is not None and latest.ts > now:
        now = latest.ts
    cal = _calendar(now, now.tzinfo, now.fold, tz)
    # Every window but the baseline ends now: read the curve there once for all of them.
    end, end_spend = _end(history, cal.now_ts)

    # The provider's UTC counters bound what we saw: never read lower than they prove.
    spent_today, today_why = _bounded(
        history, *_spent_since(history, cal.day_ts, end, end_spend), cal, 0
    )
    spent_month, month_why = _bounded(
        history, *_spent_since(history, cal.month_ts, end, end_spend), cal, 2
    )
    spent_week = None
    if account:
        spent_week, _ = _bounded(
            history, *_spent_since(history, cal.week_ts, end, end_spend), cal, 1
        )

    fallback = _Fallback(latest, prior, history.last_reset)
    rate_1h = (
        _own_rate(_cut(history, cal.hour_ts, end, end_spend), _HOUR, MIN_OWN_COVERAGE)
        or fallback.today()
        or _unknown(_HOUR)
    )
    rate_now = (
        _own_rate(_cut(history, cal.now_window_ts, end, end_spend), NOW_WINDOW, _NOW_COVER)
        or rate_1h
    )
    if account:
        rate_24h = _blended(
            _cut(history, cal.day_ago_ts, end, end_spend), _DAY, fallback.today_first
        )
        avg_daily = _blended(
            _cut(history, cal.week_ago_ts, end, end_spend), _WEEK, fallback.daily_first
        )
    else:
        rate_24h, avg_daily = _unknown(_DAY), _unknown(_WEEK)
    base_end, base_end_spend = _end(history, cal.hour_ts)
    baseline = _blended(
        _cut(history, cal.baseline_ts, base_end, base_end_spend), _BASELINE, fallback.daily_first
    )

    balance = latest.balance if latest is not None else None
    runway = None
    if balance is not None and avg_daily.per_day is not None:
        runway = math.inf if avg_daily.per_day <= 0 else max(0.0, balance) / avg_daily.per_day
    forecast = None
    if spent_month is not None and rate_24h.per_hour is not None:
        left_h = max(0.0, (cal.month_end - now).total_seconds() / HOUR)
        forecast = spent_month + rate_24h.per_hour * left_h

    return Metrics(
        now=clock_now,
        last_sample_at=latest.ts if latest is not None else None,
        spent_today=spent_today,
        spent_today_source=_words(today_why),
        spent_week=spent_week,
        spent_month=spent_month,
        spent_month_source=_words(month_why),
        rate_now=rate_now,
        rate_1h=rate_1h,
        rate_24h=rate_24h,
        avg_daily=avg_daily,
        hourly_baseline=baseline,
        balance=balance,
        runway_days=runway,
        forecast_month=forecast,
        day_start=cal.day_start,
        day_end=cal.day_end,
        month_start=cal.month_start,
        month_end=cal.month_end,
        key_limit=latest.key_limit if latest is not None else None,
        key_limit_remaining=latest.key_limit_remaining if latest is not None else None,
        counter_resets=history.counter_resets,
    )


# A window that starts inside a polling gap longer than this says so in its basis.
GAP_NOTED = timedelta(minutes=5)
_GAP_NOTED_S = GAP_NOTED.total_seconds()

# What backs a spend figure, before it is put in words (only the figure used is): a
# sentence, or ("partial", covered seconds) or ("gap", seconds) to be written by `_words`.
_Why: TypeAlias = str | tuple[str, float]


def _words(why: _Why) -> str:
    if isinstance(why, str):
        return why
    kind, value = why
    if kind == "partial":
        return _partial_basis(_covering(value))
    return (
        f"own samples; a {_span(timedelta(seconds=value))} polling gap spans the start of "
        "the window and is counted whole (the conservative end)"
    )


# -- cutting windows ----------------------------------------------------------------------
# A tick cuts up to eight windows from each curve, all but the baseline ending now. As
# `History.window_ts` would, with the same arithmetic (the same numbers to the bit), but
# with the shared end read off the curve once (`_end`), and each start found by one binary
# search that `_spent_since` reuses for its polling gap. Covered spans stay epoch seconds
# until a number that is used needs them as a timedelta.


def _end(history: History, t: float) -> tuple[float, float | None]:
    """Where windows ending at epoch second `t` end on the curve (at its last point if
    that is earlier), and the spend there (None before the first point)."""
    ts = history.ts
    end = min(t, ts[-1]) if ts else t
    return end, history.spend_at(end)


def _cut(
    history: History, start: float, end: float, end_spend: float | None
) -> tuple[float, float, int] | None:
    """`History.window_ts(start, …)` for an end from `_end`: the spend, the seconds
    covered, and the index of the first point after the window's start (bisect_right);
    None when our samples cover none of the window."""
    ts = history.ts
    if not ts:
        return None
    a = max(start, ts[0])
    if end < a:
        return None
    i = bisect.bisect_right(ts, a)
    if end == a:
        return 0.0, 0.0, i
    assert end_spend is not None  # end > a >= the first point
    # As `spend_at(a)` (a < end <= the last point, so there is a point after it):
    spend = history.spend
    t0, t1 = ts[i - 1], ts[i]
    s0, s1 = spend[i - 1], spend[i]
    s_a = s0 if t1 == t0 else s0 + (s1 - s0) * (a - t0) / (t1 - t0)
    return max(0.0, end_spend - s_a), end - a, i


# Windows of a tick that our samples cover whole span the same seconds for every key: each
# timedelta is built once. A pure function of its argument: nothing to invalidate.
@functools.lru_cache(maxsize=256)
def _covering(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _spent_since(
    history: History, t: float, end: float, end_spend: float | None
) -> tuple[float | None, _Why]:
    """Spend from epoch second `t` to now (`end` and `end_spend` from `_end`) as our own
    samples prove it, and what backs it. A window that begins inside a polling gap counts
    the whole gap (its spend may all have fallen after `t`): limits are judged on the
    conservative end."""
    ts = history.ts
    if not ts:
        return None, "no samples yet"
    got = _cut(history, t, end, end_spend)
    if got is None:
        return 0.0, "own samples"  # the window began after our last sample: nothing seen
    spent, covered, i = got
    if ts[0] > t:
        return spent, ("partial", covered)
    assert end_spend is not None  # end >= t >= the first point
    # Spend at the last point at or before `t` (there is one: t >= the first point, and the
    # window starts at `t` itself, so `i` is bisect_right(ts, t)): the conservative start
    # of a window that begins inside a polling gap, since the gap's spend may all have
    # fallen after `t`.
    floor = history.spend[i - 1]
    gap = ts[i] - ts[i - 1] if i < len(ts) else 0.0
    conservative = max(spent, end_spend - floor)
    if gap > _GAP_NOTED_S and conservative > spent:
        return conservative, ("gap", gap)
    return conservative, "own samples"


@functools.lru_cache(maxsize=64)  # the same instants for every key of a tick
def _utc_windows(ts: datetime) -> tuple[datetime, datetime, datetime]:
    """The provider's windows containing `ts`: UTC day, week (from Monday), month."""
    day = datetime.combine(ts.astimezone(UTC).date(), time(0), tzinfo=UTC)
    return day, day - timedelta(days=day.weekday()), day.replace(day=1)


# What the provider's counter backs, per window: (counter, since).
_COUNTERS = (
    ("usage_daily", "00:00 UTC"),
    ("usage_weekly", "Monday 00:00 UTC"),
    ("usage_monthly", "the 1st 00:00 UTC"),
)
_AT_LEAST = tuple(f"provider {c} (since {s}; at least this much)" for c, s in _COUNTERS)
_AT_MOST = tuple(
    f"provider {c} since {s}, which may include spend before the local window: at most "
    "this much, judged on that conservative end"
    for c, s in _COUNTERS
)


def _bounded(
    history: History, own: float | None, own_why: _Why, cal: _Calendar, k: int
) -> tuple[float | None, _Why]:
    """Spend in the k-th local window (day, week, month) given our own figure and the
    provider's counter for the UTC window it knows. The counter is a lower bound when its
    window lies inside ours (it starts at or after ours), and when the key was replaced
    (a new counter). When it starts before ours it may include spend from before our
    window: an upper bound, used (the conservative end) only while our own samples do not
    cover the whole window."""
    floor = history.provider_floor(PROVIDER_WINDOWS[k], cal.utc[k])
    if floor is None:
        return own, own_why
    if own is None or floor > own:
        if cal.inside[k]:
            return floor, _AT_LEAST[k]
        first = history.first_ts
        if not (first is not None and first <= cal.starts[k]):
            return floor, _AT_MOST[k]
    return own, own_why


def _own_rate(
    got: tuple[float, float, int] | None, window: timedelta, min_cover: timedelta
) -> Rate | None:
    """Our own rate over `window`, cut by `_cut`; None when our samples cover less than
    `min_cover` of it."""
    if got is None:
        return None
    covered = _covering(got[1])
    if covered < min_cover:
        return None
    return Rate(
        got[0] / (covered.total_seconds() / HOUR), window, covered, _own_basis(covered, window)
    )


def _blended(
    got: tuple[float, float, int] | None, window: timedelta, fallback: Callable[[], Rate | None]
) -> Rate:
    """Our own samples over the part of `window` (cut by `_cut`) they cover, the fallback
    for the rest. The fallback is only asked for when our samples leave some uncovered."""
    spent, covered = (got[0], _covering(got[1])) if got is not None else (0.0, timedelta(0))
    prior = None if covered >= window else fallback()
    if prior is None or prior.per_hour is None:
        if covered < MIN_OWN_COVERAGE:
            return _unknown(window)
        return Rate(
            spent / (covered.total_seconds() / HOUR), window, covered, _own_basis(covered, window)
        )
    rest_h = (window - covered).total_seconds() / HOUR
    per_hour = (spent + prior.per_hour * rest_h) / (window.total_seconds() / HOUR)
    basis = prior.basis if covered < MIN_OWN_COVERAGE else _blended_basis(covered, prior.basis)
    return Rate(per_hour, window, covered, basis)


class _Fallback:
    """What a rate falls back on where our own samples do not cover its window: the
    provider's rate today and its best long-run average. Each is worked out at most once
    per `measure` call, and only when a window needs it (a key that has spent for a week
    needs neither). Lives for one call: nothing to invalidate."""

    __slots__ = ("_daily", "_has_daily", "_has_today", "_latest", "_prior", "_reset", "_today")

    def __init__(self, latest: Sample | None, prior: Prior, reset: datetime | None) -> None:
        self._latest, self._prior, self._reset = latest, prior, reset
        self._today: Rate | None = None
        self._daily: Rate | None = None
        self._has_today = self._has_daily = False

    def today(self) -> Rate | None:
        if not self._has_today:
            self._today = _provider_today_rate(self._latest, self._reset)
            self._has_today = True
        return self._today

    def daily(self) -> Rate | None:
        if not self._has_daily:
            self._daily = _daily_prior(self._latest, self._prior, self._reset)
            self._has_daily = True
        return self._daily

    def today_first(self) -> Rate | None:  # the 24-hour rate's
        return self.today() or self.daily()

    def daily_first(self) -> Rate | None:  # the long-run averages'
        return self.daily() or self.today()


def _provider_today_rate(latest: Sample | None, reset: datetime | None = None) -> Rate | None:
    """Today's average rate from the provider's usage_daily (since 00:00 UTC); None when
    the counter restarted today (a new key's counter does not cover the day)."""
    if latest is None or latest.usage_daily is None:
        return None
    midnight = _utc_windows(latest.ts)[0]
    if reset is not None and reset > midnight:
        return None
    elapsed = latest.ts.astimezone(UTC) - midnight
    if elapsed < MIN_OWN_COVERAGE:
        return None
    hours = elapsed.total_seconds() / HOUR
    return Rate(latest.usage_daily / hours, elapsed, timedelta(0), _today_basis(elapsed))


def _daily_prior(latest: Sample | None, prior: Prior, reset: datetime | None = None) -> Rate | None:
    """The best-backed long-run average before our own samples: the one covering most
    (the first of equals: activity, month-to-date, week-to-date). A provider counter that
    restarted inside its window (a replaced key) is no average."""
    best: tuple[timedelta, float, str] | None = None  # window, USD/h, which average
    if prior.activity_daily is not None and prior.activity_days > 0:
        best = (timedelta(days=prior.activity_days), prior.activity_daily / 24, "")
    if latest is not None:
        ts = latest.ts.astimezone(UTC)
        _, week, month = _utc_windows(latest.ts)
        for value, begin, name in (
            (latest.usage_monthly, month, "month-to-date"),
            (latest.usage_weekly, week, "week-to-date"),
        ):
            elapsed = ts - begin
            restarted = reset is not None and reset > begin
            usable = value is not None and elapsed >= _HOUR and not restarted
            if usable and (best is None or elapsed > best[0]):
                assert value is not None
                best = (elapsed, value / (elapsed.total_seconds() / HOUR), name)
    if best is None:
        return None
    window, per_hour, name = best
    basis = _average_basis(name, window) if name else _activity_basis(prior.activity_days)
    return Rate(per_hour, window, timedelta(0), basis)


def prior_from_activity(days: Sequence[tuple[date, float]], today: date) -> Prior | None:
    """Given the provider's spend per UTC day (activity, usually 30 days) and today's date,
    return the average daily spend of the complete days before today, or None if none.
    Days without a row count as zero spend: activity lists only days that had some."""
    past = [(day, usage) for day, usage in days if day < today]
    if not past:
        return None
    span = (today - min(day for day, _ in past)).days
    return Prior(activity_daily=sum(usage for _, usage in past) / span, activity_days=span)


# The sentences below are the same for every key of a tick (and mostly from one tick to
# the next): written once each. Rates are immutable, so an unknown one is shared too.


@functools.lru_cache(maxsize=16)
def _unknown(window: timedelta) -> Rate:
    return Rate(None, window, timedelta(0), "not enough history yet")


@functools.lru_cache(maxsize=256)
def _own_basis(covered: timedelta, window: timedelta) -> str:
    if covered >= window - timedelta(seconds=1):
        return f"own samples, full {_span(window)}"
    return f"own samples over {_span(covered)} of {_span(window)}"


# Keys first seen together (at a start) cover the same span of a window at each tick.
@functools.lru_cache(maxsize=64)
def _partial_basis(covered: timedelta) -> str:
    return f"own samples since {_span(covered)} ago (partial)"


@functools.lru_cache(maxsize=64)
def _blended_basis(covered: timedelta, prior: str) -> str:
    return f"own samples over {_span(covered)} + {prior}"


@functools.lru_cache(maxsize=64)
def _today_basis(elapsed: timedelta) -> str:
    return f"provider usage_daily (today since 00:00 UTC, {_span(elapsed)})"


@functools.lru_cache(maxsize=64)
def _average_basis(name: str, elapsed: timedelta) -> str:
    return f"provider {name} average ({_span(elapsed)})"


@functools.lru_cache(maxsize=64)
def _activity_basis(days: int) -> str:
    return f"activity, last {days} days"


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
