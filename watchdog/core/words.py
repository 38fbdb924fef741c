"""How numbers are written for people and for JSON: money, rates, durations, times.

One place for each form, so every message, the status text, the page and the API agree
("$1,234.50", "12 min", "14:40 UTC", "$3.10/h"). Pure.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, tzinfo

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
# The longest duration any setting or request takes; longer is a mistake, not a wish.
MAX_DURATION = timedelta(days=366)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_DURATION_FORMS = "a duration like '90s', '5m', '4h', '7d' or seconds"


def parse_duration(value: object) -> timedelta:
    """Given "90s", "5m", "4h", "7d", "1h30m", a number of seconds or a timedelta, return
    a timedelta. Raise ValueError for anything else, a negative duration, or one longer
    than MAX_DURATION (366 days) — never OverflowError. The config, `hold=` and `gate`
    all read durations with this.

    Hand-written: the format is four units and a regex; a dependency would cost more.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"expected {_DURATION_FORMS}")
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond float range
            seconds = math.inf
    elif isinstance(value, str):
        text = value.strip().lower()
        if len(text) > 64:
            raise ValueError(f"{value[:40]!r}… is not {_DURATION_FORMS}")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif text and re.fullmatch(rf"(?:{_DURATION_RE.pattern}\s*)+", text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_RE.findall(text))
        else:
            raise ValueError(f"{value!r} is not {_DURATION_FORMS}")
    else:
        raise ValueError(f"expected {_DURATION_FORMS}")
    if math.isnan(seconds):
        raise ValueError(f"expected {_DURATION_FORMS}")
    if seconds < 0:
        raise ValueError("must not be negative")
    # Compared as floats, before timedelta() sees the number: it overflows past ~2.7 My.
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"must be at most {format_duration(MAX_DURATION)}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Given a timedelta, return the shortest exact form ("90s", "5m", "4h", "7d")."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def usd(value: float | None) -> str:
    """Dollars as people write them: "$1,234.50", "-$0.50", "unknown" (None or not finite)."""
    if value is None or not math.isfinite(value):
        return "unknown"
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def rate(per_hour: float | None) -> str:
    """A burn rate: "$3.10/h", or "an unknown rate"."""
    return "an unknown rate" if per_hour is None else f"{usd(per_hour)}/h"


def percent(share: float) -> str:
    """A share: "92%"."""
    return f"{share:.0%}"


def against(spent: float | None, limit: float | None) -> str:
    """Spend against a limit: "$18.40 of $20.00 (92%)", "$3.00 (no limit set)", "unknown"."""
    if spent is None:
        return "unknown"
    if not limit:
        return f"{usd(spent)} (no limit set)"
    return f"{usd(spent)} of {usd(limit)} ({percent(spent / limit)})"


def duration(seconds: float) -> str:
    """A duration as people say it: "45 s", "12 min", "1 h 35 min", "2.5 days"."""
    if not math.isfinite(seconds):
        return "ever"
    if seconds >= 2 * DAY:
        return f"{seconds / DAY:.1f} days"
    if seconds >= HOUR:
        hours, minutes = divmod(round(seconds / MINUTE), 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if seconds >= 2 * MINUTE:
        return f"{seconds / MINUTE:.0f} min"
    return f"{seconds:.0f} s"


def span(delta: timedelta) -> str:
    """`duration` of a timedelta."""
    return duration(delta.total_seconds())


def days(value: float | None) -> str:
    """A runway: "7.2 days", "no spend" (infinite), "unknown"."""
    if value is None:
        return "unknown"
    return "no spend" if math.isinf(value) else f"{value:.1f} days"


def clock(when: datetime | None, tz: tzinfo, now: datetime) -> str:
    """A moment to the minute in `tz`: "14:40 UTC" today, "Nov 28 09:15 CET" otherwise."""
    if when is None:
        return "an unknown time"
    local = (when + timedelta(seconds=30)).astimezone(tz)  # to the nearest minute
    zone = local.tzname() or ""
    if local.date() == now.astimezone(tz).date():
        return f"{local:%H:%M} {zone}".strip()
    return f"{local:%b %d %H:%M} {zone}".strip()


def timestamp(when: datetime, tz: tzinfo) -> str:
    """A full local time: "2026-11-27 14:40 UTC"."""
    local = when.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".strip()


def money(value: float | None) -> float | None:
    """An amount for JSON: rounded to 1/100 cent; None when unknown or not finite."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, 4)


def rounded(value: float | None, digits: int = 1) -> float | None:
    """A figure for JSON (days, seconds): rounded; None when unknown or not finite."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None
