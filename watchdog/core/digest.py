"""The digest: when it is due, and what it says. Pure.

A digest goes out on its schedule in local time (`digest.at` in `budget.timezone`, every
day or on `digest.day`), DST-safe: the slot is a local wall-clock time, turned into an
instant by the zone's rules on that date. After downtime it catches up once (the latest
missed slot, not every one), and never twice (the caller records the slot it sent in the
same transaction as the message).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

from watchdog.core.burn import Metrics
from watchdog.core.model import BudgetPolicy
from watchdog.core.words import against, days, rate, timestamp, usd

Schedule = Literal["daily", "weekly", "off"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class DigestPolicy:
    """[digest]: when the digest goes out."""

    schedule: Schedule = "weekly"
    day: str = "mon"
    at: time = time(9, 0)


def slot_at(day: date, at: time, tz: tzinfo) -> datetime:
    """The instant of wall-clock `at` on `day` in `tz`, in UTC. A time that repeats (fall
    back) is its first occurrence; one the clocks skip (spring forward) is read with the
    offset before the gap, so it lands as long after the gap's start as it was meant to
    (02:30 on a night that skips 02:00–03:00 goes out at 03:30): once, either way."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def latest_slot(now: datetime, policy: DigestPolicy, tz: tzinfo) -> datetime | None:
    """The most recent scheduled instant at or before `now` (None when off)."""
    if policy.schedule == "off":
        return None
    today = now.astimezone(tz).date()
    for back in range(8):
        day = today - timedelta(days=back)
        if policy.schedule == "weekly" and WEEKDAYS[day.weekday()] != policy.day:
            continue
        slot = slot_at(day, policy.at, tz)
        if slot <= now:
            return slot
    return None


def due(
    now: datetime, last_slot: datetime | None, since: datetime, policy: DigestPolicy, tz: tzinfo
) -> datetime | None:
    """The slot to send now, or None. `last_slot` is the slot last sent (None: never);
    `since` is when the watchdog began keeping this schedule (a first start sends nothing
    for slots before it). Only the latest missed slot is sent: a catch-up, once."""
    slot = latest_slot(now, policy, tz)
    if slot is None or slot < since:
        return None
    if last_slot is not None and slot <= last_slot:
        return None
    return slot


def period_start(slot: datetime, policy: DigestPolicy) -> datetime:
    """The start of the period a digest sent at `slot` covers: a day or a week back."""
    return slot - (timedelta(days=7) if policy.schedule == "weekly" else timedelta(days=1))


@dataclass(frozen=True)
class Fired:
    """Something that fired during the period: a rule, its worst severity, how often."""

    rule: str
    severity: str
    times: int


def compose(
    *,
    start: datetime,
    end: datetime,
    metrics: Metrics,
    budget: BudgetPolicy,
    period_spend: float | None,
    top_models: Sequence[tuple[str, str, float]],
    savings: Sequence[tuple[str, float]],
    caps: str,
    fired: Sequence[Fired],
) -> tuple[str, str]:
    """The digest's title and Markdown body."""
    tz = budget.tz
    title = f"[DIGEST] budget-watchdog, {start.astimezone(tz):%b %d} – {end.astimezone(tz):%b %d}"
    m = metrics
    lines = [
        f"**Spend {timestamp(start, tz)} – {timestamp(end, tz)}: {usd(period_spend)}**",
        "",
        f"- Today: {against(m.spent_today, budget.daily_limit)}",
        f"- This month: {against(m.spent_month, budget.monthly_limit)}; forecast "
        f"{usd(m.forecast_month)} at {rate(m.rate_24h.per_hour)}",
        f"- Balance: {usd(m.balance)}; runway {days(m.runway_days)}",
        f"- Provider caps: {caps}",
        "",
    ]
    if top_models:
        total = sum(spend for _, _, spend in top_models) or 1.0
        lines.append("**Where the money went** (the account's activity, last 30 days)")
        lines += [
            f"- {model} via {provider}: {usd(spend)} ({spend / total:.0%} of these)"
            for model, provider, spend in top_models
        ]
        lines.append("")
    if savings:
        lines.append("**Top savings found** (estimates at today's prices)")
        lines += [f"- {usd(amount)}: {text}" for text, amount in savings[:3]]
        lines.append("")
    if fired:
        lines.append("**What fired in the period**")
        lines += [
            f"- {f.rule} ({f.severity}){'' if f.times == 1 else f', {f.times} times'}"
            for f in fired
        ]
    else:
        lines.append("Nothing fired in the period.")
    return title, "\n".join(lines)
