"""The words of a notification: title and Markdown body for an alert event. Pure.

A message says what happened (the finding's sentence), the numbers around it (spend
against the limits, burn, runway, balance, permit, data age) and what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from watchdog.core.burn import Metrics
from watchdog.core.model import BudgetPolicy, Event, OutboxRow, Recipient
from watchdog.core.words import against, days, duration, rate, timestamp, usd

ADVICE = {
    "daily_limit": "Find the job that is spending (`budget-watchdog report` shows which models), "
    "stop it, or raise `budget.daily_limit`.",
    "monthly_limit": "Find what is spending (`budget-watchdog report`), stop it, or raise "
    "`budget.monthly_limit`.",
    "monthly_forecast": "Nothing is blocked yet. At this pace the month ends over budget: slow "
    "down batch work or raise `budget.monthly_limit`.",
    "buffer_days": "Top up credits, or slow down: the credit runs out within the buffer you asked "
    "to keep.",
    "min_balance": "Top up credits now.",
    "key_limit": "Raise the key's limit at the provider, or move the work to another key.",
    "spike": "Something started spending much faster than usual: check recent jobs and "
    "`budget-watchdog report`.",
    "stale": "The watchdog cannot read the provider: check the network, the provider's status "
    "page and `budget-watchdog status` for the last error.",
    "auth": "Check the key: it may have been revoked, disabled, replaced, or be of the wrong type.",
    "key_disable": "The key could not be disabled at the provider: stop running jobs by hand.",
    "permit_write": "Make `killswitch.path`'s directory writable by the service (and free "
    "some disk space); until then every job is refused.",
    "permit": "Running jobs are not stopped; new launches are refused until the permit re-arms "
    "by itself (or `budget-watchdog arm` after a manual trip or a latch).",
}
TITLE_KIND = {
    "firing": "",
    "repeat": "still firing",
    "escalated": "escalated",
    "de-escalated": "de-escalated",
    "resolved": "",
    "unsilenced": "silence ended",
    "revoked": "",
    "armed": "",
}


@dataclass(frozen=True)
class Context:
    """What surrounds an event: this tick's numbers, the permit, the key's name."""

    metrics: Metrics | None
    budget: BudgetPolicy
    permit: str  # "armed" | "revoked"
    permit_reason: str = ""
    key_name: str = "watched key"
    data_age_s: float | None = None


def route(
    events: Sequence[Event], ctx: Context, targets: Sequence[Recipient], now: datetime
) -> list[OutboxRow]:
    """One outbox row per (event, target whose severities include the event's)."""
    rows = []
    for event in events:
        head, text = title(event, ctx.key_name), body(event, ctx)
        for target in targets:
            if event.severity in target.severities:
                rows.append(
                    OutboxRow(now, target.id, event.severity, event.kind, event.rule, head, text)
                )
    return rows


def title(event: Event, key_name: str) -> str:
    """ "[CRITICAL] daily_limit on batch key", "[RESOLVED] spike on batch key", …"""
    if event.kind in ("revoked", "armed"):
        return f"[PERMIT {event.kind.upper()}] batch launches for {key_name} (budget-watchdog)"
    label = "RESOLVED" if event.kind == "resolved" else event.severity.upper()
    extra = TITLE_KIND[event.kind]
    head = f"[{label}{', ' + extra if extra else ''}]"
    return f"{head} {event.rule} on {key_name} (budget-watchdog)"


def body(event: Event, ctx: Context) -> str:
    """The Markdown body: the sentence, the numbers, what to do."""
    lines = [f"**{event.message}**", ""]
    lines += [f"- {line}" for line in facts(ctx)]
    lines.append("")
    if event.kind in ("resolved", "armed"):
        lines.append("No action needed.")
    else:
        lines.append(f"What to do: {ADVICE.get(event.rule, 'Check the status page.')}")
        if event.kind == "escalated" and event.previous:
            lines.append(f"(Was {event.previous} since {_time(event.since, ctx)}.)")
    return "\n".join(lines)


def facts(ctx: Context) -> list[str]:
    """The numbers every message carries, one short line each."""
    m, b = ctx.metrics, ctx.budget
    out = []
    if m is not None:
        out.append(f"Spent today: {against(m.spent_today, b.daily_limit)}")
        out.append(f"Spent this month: {against(m.spent_month, b.monthly_limit)}")
        burn = rate(m.rate_1h.per_hour) if m.rate_1h.per_hour is not None else "unknown"
        out.append(f"Burn rate: {burn} over the last hour; runway {days(m.runway_days)}")
        out.append(f"Balance: {usd(m.balance)}")
    if ctx.permit == "revoked":
        reason = f" ({ctx.permit_reason})" if ctx.permit_reason else ""
        out.append(f"Permit: REVOKED{reason}: new batch launches are blocked until it re-arms")
    else:
        out.append("Permit: armed: batch jobs may launch")
    if ctx.data_age_s is not None:
        out.append(f"Data age: {duration(ctx.data_age_s)}")
    return out


def _time(when: datetime, ctx: Context) -> str:
    return timestamp(when, ctx.budget.tz)
