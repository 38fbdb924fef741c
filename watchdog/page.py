"""GET /: a small status page a person reads, rendered on the server.

Plain HTML and inline CSS, the 7-day burn chart as inline SVG: no CDN, no JavaScript, so
it works on an air-gapped host and in a terminal browser (the chart degrades to text).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, tzinfo
from html import escape

from watchdog.core.burn import Rate
from watchdog.core.model import BudgetPolicy, Finding, PermitChange, Silence
from watchdog.core.view import TargetView, View
from watchdog.core.words import clock, days, duration, percent, timestamp, usd
from watchdog.core.words import rate as rate_text

# When each finding started, by (rule, key): the alert states' `since`.
Since = Mapping[tuple[str, str], datetime]
COLORS = {"ok": "#1a7f37", "warning": "#b35900", "critical": "#c62828", "unknown": "#57606a"}
CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
  background:#f6f8fa;color:#1f2328}
main{max-width:980px;margin:0 auto;padding:20px}
h1{font-size:22px;margin:0 0 4px}
.sub{color:#57606a;margin-bottom:16px}
.badge{display:inline-block;padding:3px 10px;border-radius:12px;color:#fff;font-weight:600;
  margin-right:6px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:12px;
  margin:16px 0}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 14px}
.card h2{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:#57606a;
  margin:0 0 6px}
.big{font-size:24px;font-weight:600}
.bar{height:10px;background:#eaeef2;border-radius:5px;overflow:hidden;margin:8px 0 4px;
  position:relative}
.bar span{display:block;height:100%}
.muted{color:#57606a;font-size:13px}
ul.findings{list-style:none;padding:0;margin:0}
ul.findings li{background:#fff;border:1px solid #d0d7de;border-left:5px solid;border-radius:6px;
  padding:8px 12px;margin:6px 0}
svg{background:#fff;border:1px solid #d0d7de;border-radius:8px;width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{text-align:left;padding:4px 6px;border-bottom:1px solid #eaeef2}
ul.silences{padding-left:18px;margin:6px 0}
"""


def render(view: View, now: datetime, reserved: float = 0.0) -> str:
    """The whole page for `view` at `now`. Every time is shown in the budget's zone and
    relative to `now` ("15:02 CET, 7 min ago")."""
    m, b = view.metrics, view.budget
    tz = b.tz
    state, armed = view.state, view.armed
    head = (
        f'<span class="badge" style="background:{COLORS.get(state, COLORS["unknown"])}">'
        f"{escape(state.upper())}</span>"
        f'<span class="badge" style="background:{COLORS["ok"] if armed else COLORS["critical"]}">'
        f"PERMIT {'ARMED' if armed else 'REVOKED'}</span>"
    )
    reason = (
        ""
        if armed
        else f'<div class="sub">Launches blocked: {escape(view.permit_reason)}'
        f"{_blocked_since(view.permit_history, tz, now)}</div>"
    )
    cards = [
        _limit_card("Spent today", m.spent_today if m else None, b.daily_limit, "daily limit", b),
        _limit_card(
            "Spent this month",
            m.spent_month if m else None,
            b.monthly_limit,
            "monthly limit",
            b,
            forecast=m.forecast_month if m else None,
        ),
        _runway_card(view),
        _burn_card(view.rates()),
        _headroom_card(view.headroom, reserved),
    ]
    if m is not None and m.key_limit:
        used = m.key_limit - (m.key_limit_remaining or 0.0)
        cards.append(_limit_card("Key limit (provider)", used, m.key_limit, "key limit", b))
    silences = tuple(s for s in view.silences if s.until > now)
    started = view.started()
    last = view.poll.last_success
    if last is not None:  # the stale finding started when the data went stale
        started.setdefault(("stale", _stale_key(view.findings)), last + b.stale_after)
    poll = f"Last poll {_when(last, tz, now)}" + (
        "" if view.fresh(now) else ' — <b style="color:#c62828">STALE</b>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="30">
<title>budget-watchdog: {escape(state)}</title><style>{CSS}</style></head>
<body><main>
<h1>budget-watchdog · {escape(view.key_name)}</h1>
<div class="sub">{head}</div>{reason}
<div class="grid">{"".join(cards)}</div>
<h2>Findings</h2>
{_findings(view.findings, started, {s.rule for s in silences}, tz, now)}
<h2>Silences</h2>
{_silences(silences, tz, now)}
<h2>Burn, last 7 days (USD per hour)</h2>
{chart(view.chart, b.timezone, tz)}
<h2>Permit history</h2>
{_permit_history(view.permit_history, tz, now)}
<h2>Notifications</h2>
{_targets(view.targets, tz, now)}
<p class="muted">{poll}{_last_error(view, now)}<br>Generated {escape(timestamp(now, tz))} ·
times in {escape(b.timezone)} · budget-watchdog {escape(view.version)} ·
<a href="/status">/status</a> · <a href="/metrics">/metrics</a></p>
</main></body></html>
"""


def _when(when: datetime | None, tz: tzinfo, now: datetime) -> str:
    """A moment for a person, escaped: "14:40 CET, 12 min ago", "Nov 28 09:15 CET, in
    2 h", "never"."""
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    relative = f"{duration(seconds)} ago" if seconds >= 0 else f"in {duration(-seconds)}"
    return escape(f"{clock(when, tz, now)}, {relative}")


def _stale_key(findings: tuple[Finding, ...]) -> str:
    return next((f.key for f in findings if f.rule == "stale"), "")


def _blocked_since(history: tuple[PermitChange, ...], tz: tzinfo, now: datetime) -> str:
    """The revocation in force, from the newest audit line: " — revoked 15:02 CET, 7 min
    ago by rules"; "" when that line is not a revocation."""
    latest = history[0] if history else None
    if latest is None or latest.state in ("armed", "arm requested"):
        return ""
    return f" — {escape(latest.state)} {_when(latest.at, tz, now)} by {escape(latest.by)}"


def _last_error(view: View, now: datetime) -> str:
    poll = view.poll
    if not poll.last_error:
        return ""
    kind = f" ({escape(poll.last_error_kind)})" if poll.last_error_kind else ""
    at = f" {_when(poll.last_error_at, view.budget.tz, now)}" if poll.last_error_at else ""
    return f"<br>Last error{kind}{at}: {escape(poll.last_error)}"


def _bar(share: float, color: str) -> str:
    width = max(0.0, min(1.0, share)) * 100
    return f'<div class="bar"><span style="width:{width:.1f}%;background:{color}"></span></div>'


def _limit_card(
    title: str,
    spent: float | None,
    limit: float | None,
    name: str,
    budget: BudgetPolicy,
    forecast: float | None = None,
) -> str:
    body = f'<div class="big">{usd(spent)}</div>'
    if limit and spent is not None:
        share = spent / limit
        color = (
            COLORS["critical"]
            if share >= 1
            else COLORS["warning"]
            if share >= budget.warn_ratio
            else COLORS["ok"]
        )
        body += _bar(share, color)
        body += f'<div class="muted">{percent(share)} of the {usd(limit)} {name}</div>'
    else:
        body += f'<div class="muted">no {name} set</div>'
    if forecast is not None:
        body += f'<div class="muted">Forecast at month end: {usd(forecast)}</div>'
    return f'<section class="card"><h2>{escape(title)}</h2>{body}</section>'


def _runway_card(view: View) -> str:
    m, b = view.metrics, view.budget
    runway = m.runway_days if m is not None else None
    body = f'<div class="big">{usd(m.balance if m is not None else None)}</div>'
    if m is not None and runway is not None:
        target = max(b.buffer_days_warning, 1.0)
        color = (
            COLORS["critical"]
            if runway < b.buffer_days_critical
            else COLORS["warning"]
            if runway < b.buffer_days_warning
            else COLORS["ok"]
        )
        body += _bar(runway / (2 * target), color)
        lasts = "no spend to run it down" if math.isinf(runway) else days(runway)
        body += (
            f'<div class="muted">Runway {lasts} at '
            f"{usd(m.avg_daily.per_day)}/day; keep {days(b.buffer_days_warning)} "
            f"(critical under {days(b.buffer_days_critical)})</div>"
        )
    else:
        body += '<div class="muted">Runway unknown</div>'
    return f'<section class="card"><h2>Balance and runway</h2>{body}</section>'


def _burn_card(rates: list[tuple[str, Rate]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(window)}</td>"
        f"<td>{'unknown' if r.per_hour is None else escape(rate_text(r.per_hour))}</td>"
        f'<td class="muted">{escape(r.basis)}</td></tr>'
        for window, r in rates
    )
    return f'<section class="card"><h2>Burn rate</h2><table>{rows}</table></section>'


def _headroom_card(headroom: float | None, reserved: float) -> str:
    extra = f'<div class="muted">{usd(reserved)} reserved by running jobs</div>' if reserved else ""
    return (
        f'<section class="card"><h2>Headroom</h2><div class="big">{usd(headroom)}</div>'
        f'<div class="muted">may still be spent before a critical threshold</div>{extra}</section>'
    )


def _findings(
    findings: tuple[Finding, ...],
    since: Since,
    silenced: set[str],
    tz: tzinfo,
    now: datetime,
) -> str:
    if not findings:
        return '<p class="muted">No findings: spend is within every limit.</p>'
    items = []
    for f in findings:
        notes = []
        started = since.get(f.ident)
        if started is not None:
            notes.append(f"since {_when(started, tz, now)}")
        if f.rule in silenced:
            notes.append("notifications silenced")
        note = f'<br><span class="muted">{" · ".join(notes)}</span>' if notes else ""
        items.append(
            f'<li style="border-left-color:{COLORS.get(f.severity, "#57606a")}">'
            f"<b>{escape(f.severity.upper())} · {escape(f.rule)}</b><br>"
            f"{escape(f.message)}{note}</li>"
        )
    return f'<ul class="findings">{"".join(items)}</ul>'


def _silences(silences: tuple[Silence, ...], tz: tzinfo, now: datetime) -> str:
    """Active silences: which rule, until when, why, since when. A silence holds back
    notifications only; the permit still follows the findings."""
    if not silences:
        return '<p class="muted">No active silences: every alert is delivered.</p>'
    items = "".join(
        f"<li><b>{escape(s.rule)}</b> silenced until {_when(s.until, tz, now)}"
        + (f" — {escape(s.reason)}" if s.reason else " — no reason given")
        + (
            f' <span class="muted">(set {_when(s.created_at, tz, now)})</span>'
            if s.created_at is not None
            else ""
        )
        + "</li>"
        for s in sorted(silences, key=lambda s: (s.until, s.rule))
    )
    return (
        f'<ul class="silences">{items}</ul><p class="muted">Silences hold back '
        "notifications only: the permit still follows the findings.</p>"
    )


def _permit_history(history: tuple[PermitChange, ...], tz: tzinfo, now: datetime) -> str:
    """The permit's audit trail, newest first: when, what, by whom or which rule, why."""
    if not history:
        return '<p class="muted">No permit changes recorded yet.</p>'
    rows = "".join(
        f"<tr><td>{_when(c.at, tz, now)}</td>"
        f'<td><b style="color:{_PERMIT_COLORS.get(c.state, COLORS["unknown"])}">'
        f"{escape(c.state)}</b></td>"
        f"<td>by {escape(c.by)}</td><td>{escape(c.reason)}</td></tr>"
        for c in history
    )
    return f"<table>{rows}</table>"


_PERMIT_COLORS = {
    "armed": COLORS["ok"],
    "arm requested": COLORS["ok"],
    "revoked": COLORS["critical"],
    "tripped": COLORS["critical"],
}


def _targets(targets: tuple[TargetView, ...], tz: tzinfo, now: datetime) -> str:
    if not targets:
        return '<p class="muted">No notification targets configured.</p>'
    rows = "".join(
        f"<tr><td>{escape(t.shown)}</td><td>{t.health.sent} sent</td>"
        f"<td>{t.health.pending} pending</td><td>"
        + (
            "ok" + (f" (last {_when(t.health.last_ok, tz, now)})" if t.health.last_ok else "")
            if t.health.healthy
            else f'<b style="color:#c62828">failing</b> (last error '
            f"{_when(t.health.last_error_at, tz, now)}): {escape(str(t.health.last_error))}"
        )
        + "</td></tr>"
        for t in targets
    )
    return f"<table>{rows}</table>"


def chart(
    points: tuple[tuple[datetime, float | None], ...],
    zone: str,
    tz: tzinfo,
    width: int = 940,
    height: int = 200,
) -> str:
    """Hourly spend as an SVG bar chart, a day per band (in the budget's time zone), the
    tallest bar labelled."""
    if not points:
        return '<p class="muted">No history yet.</p>'
    top = max((v for _, v in points if v is not None), default=0.0) or 1.0
    left, bottom, plot_h = 50, 24, height - 34
    step = (width - left - 10) / len(points)
    bars = []
    for i, (when, value) in enumerate(points):
        x = left + i * step
        if value is None:
            bars.append(
                f'<rect x="{x:.1f}" y="{height - bottom - 2}" width="{max(step - 1, 1):.1f}" '
                'height="2" fill="#d0d7de"/>'
            )
            continue
        h = value / top * plot_h
        bars.append(
            f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="#0969da">'
            f"<title>{escape(timestamp(when, tz))}: {usd(value)}</title></rect>"
        )
        local = when.astimezone(tz)
        if local.hour == 0:
            bars.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="6" y2="{height - bottom}" stroke="#d0d7de"/>'
            )
            bars.append(
                f'<text x="{x + 3:.1f}" y="{height - 8}" font-size="11" fill="#57606a">'
                f"{local:%a %d}</text>"
            )
    axis = (
        f'<text x="4" y="16" font-size="11" fill="#57606a">{usd(top)}</text>'
        f'<text x="4" y="{height - bottom}" font-size="11" fill="#57606a">{usd(0.0)}</text>'
    )
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="hourly spend, last 7 days'
        f' ({escape(zone)})">{axis}{"".join(bars)}</svg>'
    )
