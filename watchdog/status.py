"""The status view: everything /status, /metrics, the page and `status` show, built once
per tick from the tick's results. Pure; the server only reads the latest view, so a
request does no database work and never waits for the tick.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from watchdog import __version__, preflight
from watchdog.alerts import Silence
from watchdog.burn import Metrics, Rate
from watchdog.config import Settings
from watchdog.notify import Target
from watchdog.permit import Decision
from watchdog.rules import Finding, severity_of
from watchdog.store import TargetHealth


@dataclass(frozen=True)
class PollInfo:
    last_success: datetime | None
    last_error: str | None
    last_error_kind: str | None
    last_error_at: datetime | None
    polls: int
    errors_by_kind: Mapping[str, int]


@dataclass(frozen=True)
class View:
    """One tick's picture. `status` is the /status body before reservations are added."""

    generated_at: datetime
    status: dict[str, Any]
    metrics: Metrics | None
    findings: list[Finding]
    armed: bool
    permit_reason: str
    poll: PollInfo
    stale_after: timedelta
    settings: Settings
    chart: list[tuple[datetime, float | None]] = field(default_factory=list)
    rooms: list[preflight.Room] = field(default_factory=list)
    headroom: float | None = None

    def data_age(self, now: datetime) -> float | None:
        if self.poll.last_success is None:
            return None
        return max(0.0, (now - self.poll.last_success).total_seconds())

    def fresh(self, now: datetime) -> bool:
        age = self.data_age(now)
        return age is not None and age <= self.stale_after.total_seconds()


def starting_view(settings: Settings, now: datetime) -> View:
    """The view before the first tick has finished: nothing known, permit not armed."""
    poll = PollInfo(None, None, None, None, 0, {})
    status: dict[str, Any] = {
        "state": "unknown",
        "permit": "revoked",
        "permit_reason": "starting: no poll yet",
        "balance": None,
        "spent_today": None,
        "spent_month": None,
        "burn_rate_per_hour": None,
        "runway_days": None,
        "forecast_month": None,
        "findings": [],
        "last_poll_at": None,
        "last_error": None,
        "version": __version__,
        "generated_at": now.isoformat(),
    }
    return View(
        now,
        status,
        None,
        [],
        False,
        "starting: no poll yet",
        poll,
        settings.budget.stale_after,
        settings,
    )


def build(
    *,
    now: datetime,
    settings: Settings,
    metrics: Metrics,
    findings: Sequence[Finding],
    decision: Decision,
    poll: PollInfo,
    key_name: str,
    scope: str,
    silences: Mapping[str, Silence] = {},
    targets: Sequence[Target] = (),
    target_health: Mapping[str, TargetHealth] = {},
    chart: list[tuple[datetime, float | None]] | None = None,
    permit_history: Sequence[tuple[datetime, str, str, str]] = (),
) -> View:
    """Given one tick's results, return the View the server and CLI show."""
    b = settings.budget
    m = metrics
    rooms = preflight.rooms(m, b)
    headroom = preflight.smallest(rooms)
    targets_out = []
    for target in targets:
        health = target_health.get(target.id, TargetHealth())
        targets_out.append(
            {
                "target": target.shown,
                "severities": list(target.severities),
                "sent": health.sent,
                "failed": health.failed,
                "pending": health.pending,
                "last_ok": _iso(health.last_ok),
                "last_error": health.last_error,
                "last_error_at": _iso(health.last_error_at),
                "healthy": health.last_error_at is None
                or (health.last_ok is not None and health.last_ok > health.last_error_at),
            }
        )
    status: dict[str, Any] = {
        "state": severity_of(list(findings)),
        "permit": "armed" if decision.armed else "revoked",
        "permit_reason": "" if decision.armed else decision.reason,
        "balance": _money(m.balance),
        "spent_today": _money(m.spent_today),
        "spent_week": _money(m.spent_week),
        "spent_month": _money(m.spent_month),
        "burn_rate_per_hour": _money(m.rate_1h.per_hour),
        "runway_days": _days(m.runway_days),
        "forecast_month": _money(m.forecast_month),
        "headroom_usd": _money(headroom),
        "findings": [f.to_dict() for f in findings],
        "last_poll_at": _iso(poll.last_success),
        "last_error": poll.last_error,
        "last_error_kind": poll.last_error_kind,
        "last_error_at": _iso(poll.last_error_at),
        "data_age_s": _round((now - poll.last_success).total_seconds())
        if poll.last_success
        else None,
        "burn_rates": {
            name: _rate(rate)
            for name, rate in (
                ("10m", m.rate_now),
                ("1h", m.rate_1h),
                ("24h", m.rate_24h),
                ("7d", m.avg_daily),
            )
        },
        "average_daily": _money(m.avg_daily.per_day),
        "average_daily_basis": m.avg_daily.basis,
        "spent_today_source": m.spent_today_source,
        "limits": {
            "daily": b.daily_limit,
            "monthly": b.monthly_limit,
            "key": m.key_limit,
            "key_remaining": _money(m.key_limit_remaining),
        },
        "silences": [
            {"rule": s.rule, "until": s.until.isoformat(), "reason": s.reason}
            for s in silences.values()
            if s.until > now
        ],
        "notify_targets": targets_out,
        "permit_history": [
            {"at": at.isoformat(), "state": state, "by": actor, "reason": reason}
            for at, state, actor, reason in permit_history
        ],
        "key": key_name,
        "scope": scope,
        "timezone": b.timezone,
        "version": __version__,
        "generated_at": now.isoformat(),
    }
    return View(
        generated_at=now,
        status=status,
        metrics=m,
        findings=list(findings),
        armed=decision.armed,
        permit_reason=decision.reason,
        poll=poll,
        stale_after=b.stale_after,
        settings=settings,
        chart=chart or [],
        rooms=rooms,
        headroom=headroom,
    )


def from_store(store: Any, settings: Settings, now: datetime) -> dict[str, Any]:
    """A /status body rebuilt from the state file, for when the daemon is down: the
    numbers measured from the stored samples, the alerts and permit as last decided."""
    from watchdog import burn
    from watchdog.gate import check
    from watchdog.notify import targets_from

    since = burn.samples_needed_since(now, settings.budget.tz)
    history = burn.history_from(store.history(since), now)
    metrics = burn.measure(history, now, settings.budget.tz)
    alerts = store.load_alerts()
    findings = [
        Finding(a.rule, a.severity, a.value, a.threshold, a.message, key=a.key)
        for a in alerts.values()
    ]
    saved = store.get_meta("permit") or {}
    # Whatever the state file says, the permit is what a job would find now.
    verdict = check(permit=str(settings.killswitch.path), now=now.timestamp())
    health = store.get_meta("poll_health") or {}
    last = store.last_sample()
    poll = PollInfo(
        last.ts if last else None,
        health.get("last_error"),
        health.get("last_error_kind"),
        None,
        0,
        {},
    )
    view = build(
        now=now,
        settings=settings,
        metrics=metrics,
        findings=findings,
        decision=Decision(verdict.go, "; ".join(verdict.reasons)),
        poll=poll,
        key_name=saved.get("key_name") or "watched key",
        scope="key",
        silences=store.silences(now),
        targets=targets_from(settings.notify.targets),
        target_health=store.target_health(),
    )
    return view.status


def summary_line(status: Mapping[str, Any]) -> str:
    """One line for systemd's STATUS=: state, spend today, runway, permit."""
    parts = [f"state {status.get('state')}", f"permit {status.get('permit')}"]
    if status.get("spent_today") is not None:
        parts.append(f"today ${status['spent_today']:,.2f}")
    if status.get("runway_days") is not None:
        parts.append(f"runway {status['runway_days']:.1f}d")
    return ", ".join(parts)


def render_text(status: Mapping[str, Any], *, source: str) -> str:
    """A readable summary of a /status body, for `budget-watchdog status`."""
    lines = [f"budget-watchdog {status.get('version', '')} — {source}"]
    lines.append(
        f"State: {str(status.get('state', 'unknown')).upper()}    "
        f"Permit: {str(status.get('permit', 'unknown')).upper()}"
        + (f" ({status['permit_reason']})" if status.get("permit_reason") else "")
    )
    limits = status.get("limits") or {}
    lines.append(f"Spent today:  {_against(status.get('spent_today'), limits.get('daily'))}")
    lines.append(f"Spent month:  {_against(status.get('spent_month'), limits.get('monthly'))}")
    if status.get("forecast_month") is not None:
        lines.append(f"Month end:    ${status['forecast_month']:,.2f} forecast")
    burn = status.get("burn_rate_per_hour")
    lines.append(f"Burn rate:    {'unknown' if burn is None else f'${burn:,.2f}/h'} (last hour)")
    balance, runway = status.get("balance"), status.get("runway_days")
    lines.append(
        f"Balance:      {'unknown' if balance is None else f'${balance:,.2f}'}"
        + ("" if runway is None else f", runway {runway:.1f} days")
    )
    if status.get("headroom_usd") is not None:
        reserved = status.get("reserved_usd") or 0
        lines.append(
            f"Headroom:     ${status['headroom_usd']:,.2f}"
            + (f" (${reserved:,.2f} reserved)" if reserved else "")
        )
    age = status.get("data_age_s")
    lines.append(
        f"Last poll:    {status.get('last_poll_at') or 'never'}"
        + ("" if age is None else f" ({age:.0f} s ago)")
    )
    if status.get("last_error"):
        lines.append(f"Last error:   {status['last_error']}")
    findings = status.get("findings") or []
    lines.append("")
    lines.append("Findings:" if findings else "Findings:     none")
    for f in findings:
        lines.append(f"  [{f['severity'].upper():8}] {f['rule']}: {f['message']}")
    for s in status.get("silences") or []:
        lines.append(
            f"Silenced:     {s['rule']} until {s['until']}"
            + (f" ({s['reason']})" if s.get("reason") else "")
        )
    history = status.get("permit_history") or []
    if history:
        lines.append("Permit history (newest first):")
        for h in history[:5]:
            lines.append(f"  {h['at']}  {h['state']:<13} {h['by']}: {h['reason']}")
    for t in status.get("notify_targets") or []:
        mark = "ok" if t.get("healthy") else f"FAILING: {t.get('last_error')}"
        pending = f", {t['pending']} pending" if t.get("pending") else ""
        lines.append(f"Target:       {t['target']} ({t['sent']} sent{pending}) {mark}")
    return "\n".join(lines) + "\n"


def _against(spent: float | None, limit: float | None) -> str:
    if spent is None:
        return "unknown"
    if not limit:
        return f"${spent:,.2f}"
    return f"${spent:,.2f} of ${limit:,.2f} ({spent / limit:.0%})"


def _rate(rate: Rate) -> dict[str, Any]:
    return {
        "per_hour": _money(rate.per_hour),
        "covered_s": round(rate.covered.total_seconds()),
        "basis": rate.basis,
    }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _money(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 4)


def _days(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 2)


def _round(value: float) -> float:
    return round(value, 1)
