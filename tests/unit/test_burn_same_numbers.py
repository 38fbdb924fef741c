"""`measure` gives the same numbers, to the bit, as before it was made cheaper.

Three checks over the same fixed set of curves (steady spend, idle then spending, hourly
thinned history, polling gaps across midnight, replaced keys, provider counters missing,
a flat run touched later, a clock behind the data; at DST changes, month, week and year
ends, in several zones; with and without a prior; for a key and for the account):

- every figure our own samples back equals the one a deliberately plain reading of the
  curve gives (a linear scan, no binary search, no shared ends, no caches), to the bit;
- every field of every Metrics equals the table `_PINNED` below: a digest per tick of all
  fields (floats by their exact hex form, the words as written). The table was made by
  running `_table()` from this file on watchdog/core/burn.py as of commit c709373 (before
  the per-key speed-up), in a fresh process: `python tests/unit/test_burn_same_numbers.py`
  prints it. A deliberate change to what measure() says means regenerating it;
- a realistic key (a cent a minute for three hours after 40 days of hourly history) reads
  the values written out below.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from watchdog.core import burn
from watchdog.core.model import Sample

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
ZONES: tuple[tzinfo, ...] = (
    UTC,
    BERLIN,
    NY,
    ZoneInfo("Asia/Kolkata"),
    ZoneInfo("Australia/Lord_Howe"),  # a 30-minute DST change
)
# Awkward instants: DST changes (New York, Europe, Lord Howe), a month and week start, a
# year end, the day after a leap day, and an ordinary afternoon.
ANCHORS = (
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
    datetime(2026, 4, 4, 15, 0, tzinfo=UTC),
    datetime(2026, 12, 1, 0, 0, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
    datetime(2028, 3, 1, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 27, 15, 7, 30, tzinfo=UTC),
)
SHAPES = (
    "steady",
    "idle_then_spending",
    "thinned",
    "gap_over_midnight",
    "replaced_key",
    "no_counters",
    "single",
    "empty",
    "touched",
    "clock_behind",
)


def _counters(
    rng: random.Random, ts: datetime, usage: float, starts: dict[str, float], counters: bool
) -> Sample:
    """A poll: the provider's day/week/month counters from the usage at each UTC window's
    start (some missing now and then), a balance and a key limit."""
    if not counters:
        return Sample(ts, usage, balance=None if rng.random() < 0.5 else 80.0 - usage)
    values = {
        name: None if rng.random() < 0.1 else usage - starts[name]
        for name in ("daily", "weekly", "monthly")
    }
    return Sample(
        ts,
        usage,
        usage_daily=values["daily"],
        usage_weekly=values["weekly"],
        usage_monthly=values["monthly"],
        balance=120.0 - usage,
        key_limit=50.0,
        key_limit_remaining=50.0 - usage,
    )


def _samples(rng: random.Random, shape: str, end: datetime) -> list[Sample]:
    """The polls of one curve ending at `end` (UTC), shaped by `shape`."""
    if shape == "empty":
        return []
    if shape == "single":
        return [Sample(end, 3.0, usage_daily=0.5, usage_weekly=1.5, usage_monthly=2.5)]
    times: list[datetime] = []
    if shape in ("thinned", "idle_then_spending"):
        hours = 10 * 24 if shape == "thinned" else 40 * 24
        times += [end - timedelta(hours=h, minutes=180) for h in range(hours, 0, -1)]
    if shape == "gap_over_midnight":
        times += [end - timedelta(hours=9, minutes=m) for m in range(60, 0, -5)]
    minutes = 180 if shape != "gap_over_midnight" else 60
    jitter = rng.random() * 40
    times += [
        end - timedelta(minutes=m, seconds=jitter if m else 0) for m in range(minutes, -1, -1)
    ]
    out: list[Sample] = []
    usage = 10.0 * rng.random()
    starts = {"daily": usage, "weekly": usage, "monthly": usage}
    per_poll = 0.01 + 0.02 * rng.random()
    previous: datetime | None = None
    for k, ts in enumerate(times):
        if previous is not None:
            _restart_windows(starts, ts, previous, usage)
        idle = shape == "idle_then_spending" and ts < end - timedelta(hours=3)
        if shape == "replaced_key" and k == len(times) // 2:
            usage = 0.2  # a new key: its counter starts low
            starts = {"daily": -0.3, "weekly": -0.3, "monthly": -0.3}
        elif not idle and rng.random() < 0.8:
            usage += per_poll
        out.append(_counters(rng, ts, usage, starts, shape != "no_counters"))
        previous = ts
    return out


def _restart_windows(
    starts: dict[str, float], ts: datetime, previous: datetime, usage: float
) -> None:
    """The provider's windows restart at 00:00 UTC: a window that begins between the
    previous poll and `ts` starts counting from `usage`."""
    if ts.date() != previous.date():
        starts["daily"] = usage
    if ts.isocalendar()[:2] != previous.isocalendar()[:2]:
        starts["weekly"] = usage
    if ts.month != previous.month:
        starts["monthly"] = usage


def _cases() -> Iterator[tuple[str, burn.History, datetime, tzinfo, burn.Prior | None]]:
    """The fixed cases: (name, curve, now, budget zone, prior), always the same ones."""
    rng = random.Random(20261127)
    for a, anchor in enumerate(ANCHORS):
        for s, shape in enumerate(SHAPES):
            tz = ZONES[(a + s) % len(ZONES)]
            samples = _samples(rng, shape, anchor)
            history = burn.History.from_samples(samples)
            history.compact(anchor)
            if shape == "touched":
                history.touch(anchor.timestamp() + 600)
            prior = (None, burn.Prior(), burn.Prior(2.0 * rng.random(), 30))[(a + s) % 3]
            for n, offset in enumerate((0.0, 95.5, 3 * 3600.0 + 7)):
                now = anchor + timedelta(seconds=offset)
                if shape == "clock_behind":
                    now = anchor - timedelta(seconds=offset + 1800)
                if n == 1:
                    now = now.astimezone(tz)  # the same instant, in the budget's zone
                yield f"{a}/{shape}/{n}", history, now, tz, prior


def _canonical(value: object) -> str:
    """A value as text that differs whenever the value does: floats by their exact hex
    form, datetimes with their zone and fold, Rates field by field."""
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, burn.Rate):
        return "Rate(" + ",".join(_canonical(getattr(value, f)) for f in _RATE_FIELDS) + ")"
    if isinstance(value, datetime):
        return f"{value!r}@{value.fold}"
    return repr(value)


_RATE_FIELDS = tuple(f.name for f in dataclasses.fields(burn.Rate))


def _digest(metrics: burn.Metrics) -> str:
    text = "|".join(
        f"{f.name}={_canonical(getattr(metrics, f.name))}" for f in dataclasses.fields(metrics)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _table() -> str:
    """A line per curve: its name, then each tick's digest for a key and for the account."""
    lines: dict[str, list[str]] = {}
    for name, history, now, tz, prior in _cases():
        curve = name.rsplit("/", 1)[0]
        for account in (False, True):
            metrics = burn.measure(history, now, tz, prior, account=account)
            lines.setdefault(curve, []).append(_digest(metrics))
    return "\n".join(f"{curve}: {' '.join(digests)}" for curve, digests in lines.items())


def test_every_field_of_every_case_is_as_before() -> None:
    got, want = _table().splitlines(), _PINNED.strip().splitlines()
    assert len(got) == len(want) == len(ANCHORS) * len(SHAPES)
    changed = [line.split(":")[0] for line, pinned in zip(got, want, strict=True) if line != pinned]
    assert not changed, f"curves whose Metrics differ from before: {changed}"


# -- a plain reading of the curve ---------------------------------------------------------


def _plain_spend_at(history: burn.History, t: float) -> float | None:
    """The curve at `t`, found by walking its points: None before the first, flat after
    the last, else on the straight line between the two around it."""
    points = list(zip(history.ts, history.spend, strict=True))
    if not points or t < points[0][0]:
        return None
    if t >= points[-1][0]:
        return points[-1][1]
    for (t0, s0), (t1, s1) in itertools.pairwise(points):
        if t0 <= t < t1:
            return s0 if t1 == t0 else s0 + (s1 - s0) * (t - t0) / (t1 - t0)
    raise AssertionError("unreachable: t lies between the first and the last point")


def _plain_window(history: burn.History, start: float, end: float) -> tuple[float, float] | None:
    """Spend between two instants as far as the points cover it, and the seconds covered."""
    if not history.ts:
        return None
    a, b = max(start, history.ts[0]), min(end, history.ts[-1])
    if b < a:
        return None
    if b == a:
        return 0.0, 0.0
    s_a, s_b = _plain_spend_at(history, a), _plain_spend_at(history, b)
    assert s_a is not None and s_b is not None
    return max(0.0, s_b - s_a), b - a


def _plain_spent_since(history: burn.History, t: float, now_ts: float) -> float | None:
    """Our own figure for spend since `t`: the window, or from the last point at or before
    `t` when that proves more (a polling gap over the start counts whole)."""
    got = _plain_window(history, t, now_ts)
    if got is None:
        return None if not history.ts else 0.0
    spent = got[0]
    if history.ts[0] > t:
        return spent
    before = [s for ts, s in zip(history.ts, history.spend, strict=True) if ts <= t][-1]
    end = _plain_spend_at(history, min(now_ts, history.ts[-1]))
    assert end is not None
    return max(spent, end - before)


def _plain_rate(history: burn.History, start: float, end: float) -> float | None:
    got = _plain_window(history, start, end)
    if got is None:
        return None
    covered = timedelta(seconds=got[1])  # a Rate's span is whole microseconds
    return got[0] / (covered.total_seconds() / 3600) if covered else None


@pytest.mark.parametrize("account", [False, True])
def test_own_figures_equal_a_plain_reading_of_the_curve(account: bool) -> None:
    checked = 0
    for name, history, now, tz, prior in _cases():
        m = burn.measure(history, now, tz, prior, account=account)
        latest = history.last
        at = latest.ts if latest is not None and latest.ts > now else now  # a clock behind
        now_ts = at.timestamp()
        hour_ago = at - timedelta(hours=1)  # wall-clock arithmetic in now's zone, as measure's
        windows = [
            ("spent_today", m.spent_today_source, m.spent_today, m.day_start),
            ("spent_month", m.spent_month_source, m.spent_month, m.month_start),
        ]
        for field, source, value, since in windows:
            if source.startswith("own samples"):  # not a provider counter's bound
                want = _plain_spent_since(history, since.timestamp(), now_ts)
                assert value == want, (name, field)
                checked += 1
        baseline_start = hour_ago - (timedelta(days=7) - timedelta(hours=1))
        rates = [
            (m.rate_1h, timedelta(hours=1), hour_ago.timestamp(), now_ts),
            (m.rate_now, burn.NOW_WINDOW, (at - burn.NOW_WINDOW).timestamp(), now_ts),
            (
                m.hourly_baseline,
                timedelta(days=7) - timedelta(hours=1),
                baseline_start.timestamp(),
                hour_ago.timestamp(),
            ),
        ]
        if account:
            rates.append(
                (m.rate_24h, timedelta(days=1), (at - timedelta(days=1)).timestamp(), now_ts)
            )
        for rate, window, start, end in rates:
            # Only a rate of our own samples alone (not a fallback's, nor blended with one).
            if rate.window != window or rate.per_hour is None:
                continue
            if not rate.basis.startswith("own samples") or " + " in rate.basis:
                continue
            got = _plain_window(history, start, end)
            assert got is not None, (name, window)
            assert rate.covered == timedelta(seconds=got[1]), (name, window)
            assert rate.per_hour == _plain_rate(history, start, end), (name, window)
            checked += 1
    assert checked > 200, checked  # the cases do exercise our own figures


# -- a realistic key, written out ---------------------------------------------------------


def _realistic_key(now: datetime) -> burn.History:
    """40 days of hourly-thinned history (spending by day, idle for its last two days),
    then a cent a minute for the last three hours, with the provider's counters; as
    `watchdog.keyring` builds a curve from the stored samples."""
    hourly = [now - timedelta(days=40) + timedelta(hours=h) for h in range(40 * 24 - 3)]
    minutely = [now - timedelta(minutes=m) for m in range(180, -1, -1)]
    history = burn.History()
    usage = 0.0
    starts = {"daily": 0.0, "weekly": 0.0, "monthly": 0.0}
    previous: datetime | None = None
    for ts in hourly + minutely:
        if previous is not None:
            if ts in minutely[1:]:
                usage += 0.01
            elif ts < now - timedelta(days=2) and 8 <= ts.hour < 18:
                usage += 0.05
            _restart_windows(starts, ts, previous, usage)
        history.add(
            Sample(
                ts,
                usage,
                usage_daily=usage - starts["daily"],
                usage_weekly=usage - starts["weekly"],
                usage_monthly=usage - starts["monthly"],
                balance=120.0 - usage,
            )
        )
        previous = ts
    history.compact(now)
    return history


def test_a_key_spending_after_weeks_of_history_reads_as_before() -> None:
    """The values measure() gave for a realistic spending key before it was made cheaper
    (the benchmark's key: its windows are all covered by its own samples)."""
    now = datetime(2026, 11, 27, 15, 7, 30, tzinfo=UTC)
    m = burn.measure(_realistic_key(now), now, BERLIN, burn.Prior(0.4, 30), account=False)
    # Every float here is non-zero and finite: == on it is equality of its bits.
    assert m == burn.Metrics(
        now=datetime(2026, 11, 27, 15, 7, 30, tzinfo=UTC),
        last_sample_at=datetime(2026, 11, 27, 15, 7, 30, tzinfo=UTC),
        spent_today=1.8000000000002814,
        spent_today_source="own samples",
        spent_week=None,
        spent_month=14.150000000000432,
        spent_month_source="own samples",
        rate_now=burn.Rate(
            per_hour=0.6000000000000938,
            window=timedelta(seconds=600),
            covered=timedelta(seconds=600),
            basis="own samples, full 10 min",
        ),
        rate_1h=burn.Rate(
            per_hour=0.6000000000000938,
            window=timedelta(seconds=3600),
            covered=timedelta(seconds=3600),
            basis="own samples, full 1 h",
        ),
        rate_24h=burn.Rate(
            per_hour=None,
            window=timedelta(days=1),
            covered=timedelta(0),
            basis="not enough history yet",
        ),
        avg_daily=burn.Rate(
            per_hour=None,
            window=timedelta(days=7),
            covered=timedelta(0),
            basis="not enough history yet",
        ),
        hourly_baseline=burn.Rate(
            per_hour=0.02185628742515103,
            window=timedelta(days=6, seconds=82800),
            covered=timedelta(days=6, seconds=82800),
            basis="own samples, full 7.0 days",
        ),
        balance=99.24999999999959,
        runway_days=None,
        forecast_month=None,
        day_start=datetime(2026, 11, 26, 23, 0, tzinfo=UTC),
        day_end=datetime(2026, 11, 27, 23, 0, tzinfo=UTC),
        month_start=datetime(2026, 10, 31, 23, 0, tzinfo=UTC),
        month_end=datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
        key_limit=None,
        key_limit_remaining=None,
        counter_resets=0,
    )


_PINNED = """
0/steady: 4df5ead1b9 38f02ec121 4c8c144bc7 c40351d7ba c05bf45e51 2f8050532b
0/idle_then_spending: fe28f429d6 60e8d19dd3 156e355970 ab369f034e 9aaed9d00d 8d1d57cff7
0/thinned: 561a58ef41 8b173121dd e089c8404d c45784d889 efb153a657 35032ee63f
0/gap_over_midnight: eb80105a6e e8641da9fd ec8cb2274e db6c6976f9 253723b764 a3f6501525
0/replaced_key: 1f7aef6940 b2c8b85911 74ea819d59 86f165b21c 1c44867c73 bbb9439024
0/no_counters: 58000590ee 5684a64b3e 0be8971196 e782e1e348 224ab7f99c f22a2ae93e
0/single: 3aa82598e0 d20705a0d7 43f833a3ad 0ff0262770 fe0e7019fd 80bda5f99a
0/empty: 48d2678cf6 48d2678cf6 72b3146f04 72b3146f04 44357a3c6f 44357a3c6f
0/touched: c53c8cd423 72539829af 4430a58dc2 92b25057c4 4aef9050d2 865ededb46
0/clock_behind: b2d38efe6a 8d09e9aafa 51b0223d4c 96eebbba04 adc83f9b58 f2ffe902a8
1/steady: 690808e760 32c12315d9 28f456264b 1cc1ce7598 7a2f42e8b7 143d00bd76
1/idle_then_spending: 90aa033e6f 8a3f4c222c 606677a0fd 4cd9f876ea 92adae613f ccb1292c39
1/thinned: 8f9144714f 515b5f85e5 0fac356eba 1be5f03263 1085e29269 5cebfc0394
1/gap_over_midnight: 1b7b4af0d5 3f74634853 f688238fa2 8b8449e8d7 b445e66316 49931ece28
1/replaced_key: 9f50e89fa5 fd1e4758de a68caf1843 b1eb83d1d9 6e20c9837d d4b6a7f0ff
1/no_counters: 5e3219b67d 8d922fc467 6be007e2ce 25f586518a 8dfd13a761 33081dad45
1/single: fa2f3e6b53 050444a988 7b76e0d9a2 e69ea62aa9 0c01013408 5fd950f689
1/empty: c51f81a38a 0a73d80c55 dbcc078c40 10aac10591 f36533835e 758a873df8
1/touched: e1a28ec8de 45264f8c5c 0e15998515 8c11173bf8 1161d874b5 638ea600cc
1/clock_behind: ec1f4968e4 43ff3a309f ada9240e98 107d0a8909 54e133e19c fe2bcbe247
2/steady: 72b45eccdf e9e025352f d824dcde70 ea2190fafe 592c37cbe7 cb3be7c14d
2/idle_then_spending: ba8f8f2480 69a5c6d4d6 53688255ea 7d4beab767 b9baf211bd 58edb76d91
2/thinned: eefeca85d7 f5d424b3ab 32790b3248 8ffa2d2d46 a068b7aec7 01c6b6518a
2/gap_over_midnight: a5c5093382 dbae03dccf 46a7df6df2 3dae5f39d0 18927b5875 005cdb3f75
2/replaced_key: 34e446ce90 598f4a9f26 edfc8f61ee 432a92a1b7 0f3de2de1a fb00129c5b
2/no_counters: f9d8126aa1 79e272bd3c 5670399837 4909190f50 715fde2dde f0806a7808
2/single: dcb056761a a74e2e63bf 7984ba8f7e 159309aa4e fbf9f1f87f dcdce7e123
2/empty: fd1ddf0204 fd1ddf0204 2e825c46e0 2e825c46e0 6cd096b88d 6cd096b88d
2/touched: da1958f791 aaf7e936cf 0ff9c8b3bf 4d3e924b6c 9f7b8e840b d278e9907c
2/clock_behind: 5a0c68240f c651447aac d4c727b124 0e4661d75b e0fcf8507b 615c066114
3/steady: b120b3a055 ff99e9ad7e 47c3a12e03 3fdd704eb3 dc800b5961 4c1ffed058
3/idle_then_spending: 95296b2a5c 3a8ad03b74 22358435c3 134e1025af 16a6bde8a1 a83f9f78de
3/thinned: 28da9c657b be2942da82 bfe30f14d7 ccbe729377 c28601199a 1028decf4b
3/gap_over_midnight: 93477f9eeb 7e562a92a3 ed385d5c90 4f518ca975 ccf919bb37 2d3bf54505
3/replaced_key: bc49a231a4 10d191d5ad fc9353cf44 5216502788 2a05713d26 d7901f8642
3/no_counters: 67f2f51018 4fcb4d0e6b 6cadcc4840 cc645102b9 27740f0140 098aae9a87
3/single: 31e835962d f5c026154e 63d8eccb7f db6a93f7af be29eec75e 22c708e7a1
3/empty: 87c7c03588 87c7c03588 97ab7c6a62 97ab7c6a62 b7b206002c b7b206002c
3/touched: d62a7e2f39 3977c3fc72 62b3db6cc8 66450dd584 aa2f3bc6ef 97c32133bb
3/clock_behind: ea8033f12b b682f8f500 d969bc35ef 67babec287 842c1d6eda 293527dbfe
4/steady: 3fe0937218 c66905434f 8ee1955326 f114dc4c3f 79c1b9d82a 462f20e153
4/idle_then_spending: 6ea03d84e7 672237e5a7 b68fc8e1ab f1be3981b1 857ebd6935 ed77eac689
4/thinned: a1dce05714 084610ea47 52e10f637e 2f648cd248 13263dce65 a51a27a405
4/gap_over_midnight: 6db4f7e609 2a65aaea7e 7d3ec6d8c0 aca3f4a02b ffe08f1664 53278742ec
4/replaced_key: 4707bdb031 2836d792ce 651548d703 3edf166956 0020c92ef6 838b33f2b9
4/no_counters: af3f0bed7f af328f4e25 ce6b001e58 f3e6e83f16 73485c9b17 480604af04
4/single: 7915c3c1a6 96dcb4199d fa239d5cfb 11600a892e d52f110354 a65f87854f
4/empty: 45d4148067 a87b8ec4eb c834c74be3 e85679b373 b1973583fd df5ae774e6
4/touched: a7cde070ca 88572a7144 acfaac3d28 8305755617 850910f693 655de01ddc
4/clock_behind: 55cfddefb6 29a99122c7 e83594636c 79bcf6058c d47d236170 d2d157d87c
5/steady: f9804cc135 0beeec95b1 2030dc253c 1fb107aba1 493596ecfb db18db1cc9
5/idle_then_spending: f0a8ad7309 9c0979a724 7cf3ba0c1d badedb2a22 3fb30f50b5 8994abea4f
5/thinned: e7071b837f a70d2b7640 415ceaee6a a7357884a5 c864d120f7 cfeeb82041
5/gap_over_midnight: 80eb8aafed b95ea06ce2 212fca1291 ca4705a47f c6bfc8a456 b7bb10f729
5/replaced_key: b7e65743b9 32426e7157 e336111ca8 f58fb99db8 17eb50190c da044792b9
5/no_counters: 8214179574 4d877f1000 6a5ae5e87a f8a759c562 c078042616 4cf684628a
5/single: f52583ab8b 96497a9851 809ab46a1b a70d6e60e4 c8ea06d14d 6506657f61
5/empty: cd9f60ee30 cd9f60ee30 0bf664c5b3 0bf664c5b3 573e750581 573e750581
5/touched: aadc7d110a c06e372917 73e542d5b1 70d3030d3b 339a2e078a 961c6fc3c4
5/clock_behind: fa7abc44d2 6a7bbe132f 64bcef432b 287e855a66 d3972185f8 1ff33972e7
6/steady: e8f74bc2e0 6203d488e5 dfdc26560c ca48b88c27 373f816eea af5630ff00
6/idle_then_spending: 28dff67340 ca18c892c3 64073e5f62 e2e7e60f88 6900826aae 7ac01a64de
6/thinned: 02c6022ab0 525f3cb38d 5001d2b3a9 a4d2b13821 c39ea8acb4 bd69350c2d
6/gap_over_midnight: bda6fd01fb cfc993fc48 455c2ae7e1 ad703433ae 8c7f3ff755 116e707263
6/replaced_key: 4ec973c02b 011d664f80 e571bf2cd7 3a2e0f7e7c 52ee9b26c9 1230988691
6/no_counters: dde8a3eb7c 670417bc10 97f6ff173c a529cbcce1 b31a665d1e 6b0604fd5b
6/single: e342be1bd2 f8524bad86 6095681d14 db0e6dd449 9fad3aca17 23315a15b0
6/empty: b557081026 b557081026 be389ace9b be389ace9b 1e227d2c19 1e227d2c19
6/touched: 0f6ca3e994 55fdcb675e 9463d3612b 06243542f6 ee0b47f513 750c79a262
6/clock_behind: fe19d431d9 b3c2080467 5f39d944d4 d1032a2835 18114a62ef 977e8b46fb
7/steady: 3e6c2edeee 76d0bcbb2b 6cf2d28062 36aaeccdfd 13b36e7171 7de2681168
7/idle_then_spending: 9321daec7c e5889fa5c3 d8703adefa 8175c7b592 c903d6901e 42ef4cbeda
7/thinned: 2f7777993e ff1da12998 2465b7d24a 36f256ac5f ae166a23b2 5b2bbfb8a2
7/gap_over_midnight: 4a6d128ce2 4305e8006e 8514b10828 3646dca831 2afb9638f1 ee4a264986
7/replaced_key: f56c544e2e edbd6eb3de 73f46f25b4 1595eb93e2 40487263b8 19b0c2903a
7/no_counters: a4f0cd4d31 ac055bf54f bf92e0b540 e863072244 7dfb0347a4 b3b58faa97
7/single: 86e422a8a2 e72a145882 b7864e8502 d9f868428e d5b7dd974d c969d9cab3
7/empty: 2028387e4d cb11c20748 abbb847536 3b407e8a12 6c32c68064 0d8d6dc0b7
7/touched: 9b35fd5ab1 2e58349b26 711714affc 2af792d20c df78df94c6 04243f21c3
7/clock_behind: a43d2481de b23643bca7 afde983955 c8f195ae82 58ce7971b8 0af5b1b07b
8/steady: 0f46975f2a fbfb857589 6803c5fe05 e757da8fc6 03b7d067a1 2bb2b8822b
8/idle_then_spending: a641843ff2 6736c29bab b40934a8a3 a9e64e2367 1c7ab93aa3 70f31bb74c
8/thinned: b2ebc23ace 40e7ed3b34 4bcec1a523 31f9db9d3f 3e6d59d6ee a2af6a640b
8/gap_over_midnight: 1c5c559219 6f8bd13500 8fc01f04fa 75ce6cfbf4 457dbad11b 474181a03f
8/replaced_key: c03205d462 121a90043e 9c4c406688 e7a5488eab 61ee2d6df0 11faec9ed6
8/no_counters: cfe1bfa0f6 d4d21a960d 15c37921da 61f546e028 452fc4240e fb89b7030e
8/single: 455018e79e daf3d5612d 97fbbade69 c201d31c41 2ddedeef6f f68f08041a
8/empty: 9f1cbdef42 9f1cbdef42 ec868a033d ec868a033d bfb23a6259 bfb23a6259
8/touched: 8022c91a5a 8d1cc4cc4a 18b34eb88b 7ff75f147d dc63f9a32b 87b2896dcc
8/clock_behind: 99d4230624 b3d0f9022b 17767eef83 09a9f5f913 1bf47260f9 30c3d34a3d
"""


if __name__ == "__main__":  # print the table (see the module's docstring)
    print(_table())
