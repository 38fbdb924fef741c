"""The words of a notification: title and Markdown body for an alert event. Pure.

A message says what happened (the finding's sentence) and when, the numbers around it
(spend against the limits, burn with what backs it, runway, balance, permit, data age) and
what to do next. Its last line gives the event time for machines
(`Event time: 2026-11-27T14:09:00+00:00`). The courier adds how late a message went out
(`delivered_late`), and e-mail gets a plain-text part (`plain_text`) beside the HTML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from watchdog.core.burn import Metrics, Rate
from watchdog.core.model import BudgetPolicy, Event, OutboxRow, Recipient
from watchdog.core.words import against, clock, days, duration, rate, timestamp, usd

# A message that goes out later than this after it was written says how late.
LATE_AFTER_S = 120.0
WHEN = "- When: "
EVENT_TIME = "Event time: "

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
    "provider_budget": "A provider-side budget (the workspace's) is reached: raise it at the "
    "provider, or wait for it to reset; jobs using the key fail until then.",
    "auth": "Check the key: it may have been revoked, disabled, replaced, or be of the wrong type.",
    "key_disable": "The key could not be disabled at the provider: stop running jobs by hand.",
    "clock": "Check the host's clock (timedatectl, NTP): launches resume when it has caught "
    "up with the newest data.",
    "state": "The state file cannot be written (a full disk, a read-only file): free space or "
    "fix its permissions; launches are refused until then.",
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
    "notice": "",
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
    per_key: bool = False  # one key of the account: no runway or balance of its own


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
    label = {"resolved": "RESOLVED", "notice": "NOTICE"}.get(event.kind, event.severity.upper())
    extra = TITLE_KIND[event.kind]
    head = f"[{label}{', ' + extra if extra else ''}]"
    return f"{head} {event.rule} on {key_name} (budget-watchdog)"


def body(event: Event, ctx: Context) -> str:
    """The Markdown body: the sentence, when, the numbers, what to do, the event time."""
    lines = [f"**{event.message}**", ""]
    lines.append(WHEN + when(event, ctx))
    lines += [f"- {line}" for line in facts(ctx, event.rule)]
    lines.append("")
    if event.kind in ("resolved", "armed", "notice"):
        lines.append("No action needed.")
    else:
        lines.append(f"What to do: {ADVICE.get(event.rule, 'Check the status page.')}")
        if event.kind == "escalated" and event.previous:
            lines.append(f"(Was {event.previous} since {_time(event.since, ctx)}.)")
    lines += ["", EVENT_TIME + event_time(event.at)]
    return "\n".join(lines)


def when(event: Event, ctx: Context) -> str:
    """When it happened, in the budget's zone: "2026-11-27 14:09 UTC; firing since 13:02
    UTC", and for a message a silence held, until when."""
    text = _time(event.at, ctx)
    if event.kind in ("repeat", "escalated", "de-escalated", "unsilenced") and (
        event.since < event.at
    ):
        text += f"; firing since {clock(event.since, ctx.budget.tz, event.at)}"
    if event.held_until is not None:
        until = clock(event.held_until, ctx.budget.tz, event.at)
        text += f"; held by a silence until {until} (the numbers below are from then)"
    return text


def event_time(at: datetime) -> str:
    """The event time for machines: ISO 8601 in UTC, to the second."""
    return at.astimezone(UTC).isoformat(timespec="seconds")


def facts(ctx: Context, rule: str = "") -> list[str]:
    """The numbers every message carries, one short line each; the burn rate is the one
    that explains `rule`, and says what backs it."""
    m, b = ctx.metrics, ctx.budget
    out = []
    if m is not None:
        out.append(f"Spent today: {against(m.spent_today, b.daily_limit)}")
        out.append(f"Spent this month: {against(m.spent_month, b.monthly_limit)}")
        out.append(f"Burn rate: {rate_words(explaining_rate(m, rule))}")
        if not ctx.per_key:
            avg = m.avg_daily
            at = f" at {usd(avg.per_day)}/day ({avg.basis})" if avg.per_day is not None else ""
            out.append(f"Runway: {days(m.runway_days)}{at}")
            out.append(f"Balance: {usd(m.balance)}")
    if ctx.permit == "revoked":
        reason = f" ({ctx.permit_reason})" if ctx.permit_reason else ""
        out.append(f"Permit: REVOKED{reason}: new batch launches are blocked until it re-arms")
    else:
        out.append("Permit: armed: batch jobs may launch")
    if ctx.data_age_s is not None:
        polled = ""
        if m is not None and m.last_sample_at is not None:
            polled = f" (last poll {clock(m.last_sample_at, b.tz, m.now)})"
        out.append(f"Data age: {duration(ctx.data_age_s)}{polled}")
    return out


def explaining_rate(m: Metrics, rule: str) -> Rate:
    """The burn rate a message about `rule` shows: the long-run average the rule judges
    by (buffer_days, monthly_forecast), else the faster of the 10-minute and 1-hour
    rates (a fresh runaway shows in the first before the second)."""
    if rule == "buffer_days":
        return m.avg_daily
    if rule == "monthly_forecast":
        return m.rate_24h
    known = [r for r in (m.rate_now, m.rate_1h) if r.per_hour is not None]
    return max(known, key=lambda r: r.per_hour or 0.0) if known else m.rate_1h


def rate_words(r: Rate) -> str:
    """A rate and what backs it: "$59.69/h (own samples, full 10 min)"."""
    return f"{rate(r.per_hour)} ({r.basis})"


def delivered_late(text: str, delay_s: float) -> str:
    """Given a body and how long after it was written it goes out, return the body saying
    how late it is ("delivered 19 min late" on its When line), unchanged when on time."""
    if delay_s <= LATE_AFTER_S:
        return text
    note = f"delivered {duration(delay_s)} late"
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(WHEN):
            lines[i] = f"{line}; {note}"
            return "\n".join(lines)
    return f"_{note[0].upper()}{note[1:]}._\n\n{text}"


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w_])_(\S(?:.*?\S)?)_(?![\w_])")
_CODE = re.compile(r"`([^`]*)`")


def plain_text(markdown: str) -> str:
    """The plain-text form of a body: the Markdown without its markup (bold, emphasis,
    inline code), line for line, so bullets stay "- x" one per line."""
    text = _CODE.sub(r"\1", markdown)
    text = _BOLD.sub(r"\1", text)
    return _EMPHASIS.sub(r"\1", text)


def _time(when: datetime, ctx: Context) -> str:
    return timestamp(when, ctx.budget.tz)
