"""How numbers are written for people and for JSON: money, rates, durations, times.

One place for each form, so every message, the status text, the page and the API agree
("$1,234.50", "12 min", "14:40 UTC", "$3.10/h"). Pure.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, tzinfo

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


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
