"""Pre-flight: may a job that costs $X launch now? Pure functions of this tick's numbers.

Headroom is what may still be spent before a critical threshold: the room left under each
configured limit today and this month, and the balance above the critical buffer
(buffer_days_critical days of average spend) and above min_balance. The smallest wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.core.burn import Metrics
from watchdog.core.model import BudgetPolicy
from watchdog.core.words import usd


@dataclass(frozen=True)
class Room:
    """Room left under one threshold, in USD (negative when already over)."""

    name: str
    left: float
    text: str


def rooms(metrics: Metrics, budget: BudgetPolicy) -> list[Room]:
    """Every threshold's remaining room that is known."""
    m = metrics
    out = [
        Room(name, limit - spent, f"{usd(limit)} {label} limit")
        for name, label, limit, spent in (
            ("daily_limit", "daily", budget.daily_limit, m.spent_today),
            ("monthly_limit", "monthly", budget.monthly_limit, m.spent_month),
        )
        if limit is not None and spent is not None
    ]
    if m.balance is not None:
        per_day = m.avg_daily.per_day
        if per_day is not None and budget.buffer_days_critical > 0:
            buffer = budget.buffer_days_critical * per_day
            days = budget.buffer_days_critical
            out.append(
                Room(
                    "buffer_days",
                    m.balance - buffer,
                    f"{usd(buffer)} critical buffer ({days:g} days at {usd(per_day)}/day)",
                )
            )
        out.append(
            Room(
                "min_balance",
                m.balance - budget.min_balance,
                f"{usd(budget.min_balance)} minimum balance",
            )
        )
    return out


def headroom(metrics: Metrics, budget: BudgetPolicy) -> float | None:
    """The smallest room left (0 when over), or None when no threshold is known."""
    return smallest(rooms(metrics, budget))


def smallest(known: Sequence[Room]) -> float | None:
    return max(0.0, min(r.left for r in known)) if known else None


def shortfalls(known: Sequence[Room], cost: float, reserved: float = 0.0) -> list[str]:
    """Why a job of `cost` (on top of `reserved` holds) would break one of the thresholds
    `known` (see rooms); [] if none. Cheap: the rooms are computed once per tick."""
    reasons = []
    need = cost + reserved
    for room in known:
        if need > room.left:
            held = f" (with {usd(reserved)} reserved)" if reserved else ""
            reasons.append(
                f"{usd(cost)}{held} would exceed the {room.text}: {usd(max(0.0, room.left))} left"
            )
    return reasons
