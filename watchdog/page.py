"""GET /: a small status page a person reads, rendered on the server.

Plain HTML and inline CSS, the charts as inline SVG of fixed viewBox (they scale with the
window): this month's cumulative spend against the monthly limit with the forecast to
month end, the last 30 days of daily spend, where the money goes, and the 7-day hourly
burn. No CDN, no JavaScript (a meta refresh reloads it every minute), so it works on an
air-gapped host and in a terminal browser: each chart has a line of text beside it.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, tzinfo
from html import escape

from watchdog.core.burn import Rate
from watchdog.core.model import BudgetPolicy, Finding, PermitChange, Silence
from watchdog.core.view import UNKNOWN, TargetView, View
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
p.caption{margin:4px 0 14px}
h2.chart{margin:22px 0 6px}
ul.savings{list-style:none;padding:0;margin:8px 0}
ul.savings li{background:#fff;border:1px solid #d0d7de;border-left:5px solid #1a7f37;
  border-radius:6px;padding:6px 12px;margin:6px 0}
ul.savings b{display:inline-block;min-width:90px;color:#1a7f37}
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
<meta http-equiv="refresh" content="60">
<title>budget-watchdog: {escape(state)}</title><style>{CSS}</style></head>
<body><main>
<h1>budget-watchdog · {escape(view.key_name)}</h1>
<div class="sub">{head}</div>{reason}
<div class="grid">{"".join(cards)}</div>
<h2>Findings</h2>
{_findings(view.findings, started, {s.rule for s in silences}, tz, now, view.state)}
{_keys(view)}
<h2 class="chart">This month against the limit</h2>
{month_chart(view, now)}
<h2 class="chart">Daily spend, last 30 days</h2>
{daily_chart(view.daily, b.daily_limit)}
<h2 class="chart">Where the money goes</h2>
{models_chart(view.top_models, view.daily)}{savings(view.savings)}
<h2 class="chart">Burn, last 7 days (USD per hour)</h2>
{chart(view.chart, b.timezone, tz)}
<h2>Silences</h2>
{_silences(silences, tz, now)}
<h2>Permit history</h2>
{_permit_history(view.permit_history, tz, now)}
<h2>Notifications</h2>
{_targets(view.targets, tz, now)}
<p class="muted">{poll}{_last_error(view, now)}<br>Generated {escape(timestamp(now, tz))} ·
times in {escape(b.timezone)} · budget-watchdog {escape(view.version)} ·
<a href="/status">/status</a> · <a href="/metrics">/metrics</a></p>
</main></body></html>
"""


# The page lists at most this many keys (the most spent this month first); /status and
# `report --by key` list them all.
PAGE_KEYS = 100


def _keys(view: View) -> str:
    """Every key of the account: spend today and this month against its limits, bars as
    the account's, its provider cap and its permit."""
    if not view.keys_watched:
        return ""
    if not view.keys:
        return '<h2>Keys</h2><p class="muted">No key listed yet.</p>'
    b = view.budget
    rows = []
    shown = sorted(view.keys, key=lambda k: (-(k.spent_month or 0.0), k.name))[:PAGE_KEYS]
    largest = max((k.spent_month or 0.0 for k in shown), default=0.0)
    for k in shown:
        armed = k.armed and view.armed
        permit = (
            f'<span style="color:{COLORS["ok"]}">armed</span>'
            if armed
            else f'<span style="color:{COLORS["critical"]}" title="{escape(k.reason)}">'
            "revoked</span>"
        )
        cap = "none" if k.limit is None else f"{usd(k.limit)} {escape(k.limit_reset or 'total')}"
        if k.limit is not None and k.limit_remaining is not None:
            cap += f" ({usd(k.limit_remaining)} left)"
        rows.append(
            f"<tr><td>{escape(k.name)}{' (disabled)' if k.disabled else ''}</td>"
            f"<td>{_key_cell(k.spent_today, k.daily_limit, b)}</td>"
            f"<td>{_key_cell(k.spent_month, k.monthly_limit, b, largest)}</td>"
            f"<td>{cap}</td><td>{permit}</td></tr>"
        )
    more = len(view.keys) - len(shown)
    tail = f'<p class="muted">… and {more} more keys (see /status).</p>' if more > 0 else ""
    return (
        "<h2>Keys</h2><table><tr><th>key</th><th>today</th><th>this month</th>"
        f"<th>provider cap</th><th>permit</th></tr>{''.join(rows)}</table>{tail}"
    )


def _key_cell(
    spent: float | None, limit: float | None, budget: BudgetPolicy, largest: float = 0.0
) -> str:
    spent = _finite(spent)
    if spent is None:
        return "unknown"
    if limit:
        share = spent / limit
        color = (
            COLORS["critical"]
            if share >= 1
            else COLORS["warning"]
            if share >= budget.warn_ratio
            else COLORS["ok"]
        )
        return f"{usd(spent)} of {usd(limit)}{_bar(share, color)}"
    return f"{usd(spent)}{_bar(spent / largest, COLORS['ok']) if largest > 0 else ''}"


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
    spent = _finite(spent)
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
    elif limit:
        body += f'<div class="muted">against the {usd(limit)} {name}</div>'
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
    state: str = "ok",
) -> str:
    if not findings and state == UNKNOWN:
        return '<p class="muted">No findings yet: nothing is known until a poll answers.</p>'
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
        f'<svg id="burn-chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="hourly spend, last 7 days'
        f' ({escape(zone)})">{axis}{"".join(bars)}</svg>'
    )


# -- the spend charts ---------------------------------------------------------------------
# Each is a fixed viewBox, CHART_W wide, drawn in user units; the page scales it to fit.

CHART_W = 940
MONTH_H = 240
DAILY_H = 200
MODELS_H = 200
TOP_ROWS = 5  # models drawn (the view keeps the top five)
INK, MUTED, GRID, BLUE, UNKNOWN_FILL = "#1f2328", "#57606a", "#eaeef2", "#0969da", "#d0d7de"
# A white outline under a label drawn across bars, so it stays readable.
HALO = 'paint-order="stroke" stroke="#fff" stroke-width="4" stroke-linejoin="round"'

# One colour per model row, largest first.
MODEL_COLORS = ("#0969da", "#8250df", "#bf3989", "#1a7f37", "#b35900")


def _day(day: date) -> str:
    """A date on an axis: "Nov 3"."""
    return f"{day:%b} {day.day}"


def _scale(top: float, most: int = 5) -> tuple[float, float]:
    """A round axis top at or above `top`, and its grid step: the smallest step of 1, 2,
    2.5 or 5 times a power of ten ($0.01 at the least) that needs at most `most` lines."""
    if not math.isfinite(top) or top <= 0:
        top = 1.0
    magnitude = 10 ** math.floor(math.log10(max(top / most, 0.01)))
    for step in (m * magnitude * scale for scale in (1, 10) for m in (1, 2, 2.5, 5)):
        step = max(step, 0.01)
        lines = math.ceil(top / step - 1e-9)
        if lines <= most:
            return lines * step, step
    raise AssertionError("unreachable: ten times the magnitude always fits")


def _grid(top: float, step: float, left: int, right: float, base: float, plot_h: float) -> str:
    """Horizontal grid lines with their amounts at the left."""
    out = []
    k = 0
    while k * step <= top * (1 + 1e-9):
        y = base - k * step / top * plot_h
        out.append(
            f'<line x1="{left}" x2="{right:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" fill="{MUTED}" '
            f'text-anchor="end">{usd(k * step)}</text>'
        )
        k += 1
    return "".join(out)


def _svg(ident: str, width: int, height: int, label: str, body: str) -> str:
    return (
        f'<svg id="{ident}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}">{body}</svg>'
    )


def _empty(width: int, height: int, message: str) -> str:
    return (
        f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" font-size="15" fill="{MUTED}" '
        f'text-anchor="middle" {HALO}>{escape(message)}</text>'
    )


def _caption(text: str) -> str:
    """A chart's line of text (already escaped), for people and terminal browsers."""
    return f'<p class="muted caption">{text}</p>'


def _pace_color(value: float, limit: float | None, warn_ratio: float, base: str) -> str:
    if not limit:
        return base
    if value >= limit:
        return COLORS["critical"]
    return COLORS["warning"] if value >= warn_ratio * limit else base


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def month_chart(view: View, now: datetime, width: int = CHART_W, height: int = MONTH_H) -> str:
    """This month so far as cumulative bars per local day, the monthly limit as a line, and
    a dashed projection from today's spend to the forecast on the month's last day.

    Days nobody knows (no sample, no activity) are grey and carry the total so far. The
    projection starts at today's total: the larger of the bars' sum and the month's spend
    as the card shows it (the forecast's own base); they agree once the provider's monthly
    counter has been read."""
    m, b = view.metrics, view.budget
    limit = b.monthly_limit or None
    spent = _finite(m.spent_month) if m is not None else None
    forecast = _finite(m.forecast_month) if m is not None else None
    today = now.astimezone(b.tz).date()
    length = calendar.monthrange(today.year, today.month)[1]
    last = today.replace(day=length)
    own = [(d, v) for d, v in view.month_days if (d.year, d.month) == (today.year, today.month)]
    cumulative: list[tuple[date, float, bool]] = []  # (day, total so far, known that day)
    total = 0.0
    for day, value in sorted(own):
        if value is not None:
            total += max(0.0, value)
        cumulative.append((day, total, value is not None))
    anything = any(known for _, _, known in cumulative)
    # Both figures are lower bounds (ours miss what happened before install or while
    # down; the provider's counter counts from its own UTC month): the larger is the best.
    bounds = [v for v in (spent, total if anything else None) if v is not None]
    start = max(bounds) if bounds else None

    left, right, top_pad, bottom = 76, 16, 14, 26
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    base = height - bottom
    slot = plot_w / length
    peak = max([total if anything else 0.0, start or 0.0, forecast or 0.0, limit or 0.0])
    top, step = _scale(peak * 1.05)

    def x_of(day: date) -> float:
        return left + (day.day - 1 + 0.5) * slot

    def y_of(value: float) -> float:
        return base - max(0.0, value) / top * plot_h

    parts = [_grid(top, step, left, width - right, base, plot_h)]
    if today < last:  # the rest of the month, shaded
        x = left + today.day * slot
        parts.append(
            f'<rect x="{x:.1f}" y="{top_pad}" width="{left + plot_w - x:.1f}" '
            f'height="{plot_h}" fill="#f6f8fa"/>'
        )
    for day, value, known in cumulative:
        x, w = left + (day.day - 1) * slot + slot * 0.15, slot * 0.7
        h = max(value / top * plot_h, 2.0)
        fill = _pace_color(value, limit, b.warn_ratio, BLUE) if known else UNKNOWN_FILL
        note = f"{usd(value)} this month by the end of it" if known else "unknown"
        if day == today:
            note = f"{usd(value)} this month so far (today)" if known else "today: unknown"
        parts.append(
            f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'fill="{fill}"><title>{escape(_day(day))}: {escape(note)}</title></rect>'
        )
    # Weekly labels from the 1st, and the last day's (a weekly one too close to it yields).
    for k in [*range(1, length - 2, 7), length]:
        day = today.replace(day=k)
        parts.append(
            f'<text x="{x_of(day):.1f}" y="{height - 8}" font-size="11" fill="{MUTED}" '
            f'text-anchor="middle">{escape(_day(day))}</text>'
        )
    if limit is not None:
        y = y_of(limit)
        parts.append(
            f'<line id="month-limit" x1="{left}" x2="{width - right}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="{COLORS["critical"]}" stroke-width="2"/>'
            f'<text x="{left + 6}" y="{y - 6:.1f}" font-size="12" fill="{COLORS["critical"]}" '
            f"{HALO}>"
            f"monthly limit {usd(limit)}</text>"
        )
    if start is not None and forecast is not None:
        color = _pace_color(forecast, limit, b.warn_ratio, MUTED)
        x1, y1, x2, y2 = x_of(today), y_of(start), x_of(last), y_of(forecast)
        label_y = y2 - 10 if y2 - 10 > top_pad + 10 else y2 + 18
        parts.append(
            f'<line id="month-forecast" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" '
            f'y2="{y2:.1f}" stroke="{color}" stroke-width="2.5" stroke-dasharray="7 5"/>'
            f'<circle cx="{x2:.1f}" cy="{y2:.1f}" r="4" fill="{color}"/>'
            f'<text x="{x2:.1f}" y="{label_y:.1f}" font-size="12" font-weight="600" '
            f'fill="{color}" text-anchor="end" {HALO}>forecast {usd(forecast)}</text>'
        )
    if not anything and start is None:
        parts.append(_empty(width, height - bottom, "No spend known for this month yet"))
    svg = _svg(
        "month-chart",
        width,
        height,
        "cumulative spend this month per day, the monthly limit and the forecast to month end",
        "".join(parts),
    )
    said = [f"Spent {usd(start)} this month so far" if start is not None else "Spent: unknown"]
    if forecast is not None:
        said.append(f"forecast {usd(forecast)} by {_day(last)}")
    if limit is not None and start is not None:
        said.append(f"{percent(start / limit)} of the {usd(limit)} monthly limit")
        if forecast is not None and forecast > limit:
            said.append(f"the forecast is {usd(forecast - limit)} over it")
    elif limit is not None:
        said.append(f"monthly limit {usd(limit)}")
    else:
        said.append("no monthly limit set")
    return svg + _caption(escape("; ".join(said)) + ".")


_NO_ACTIVITY = (
    "No activity read yet: these figures come from the provider's activity, which needs a "
    "management key (an account without spend in 30 days has none either)."
)


def daily_chart(
    daily: Sequence[tuple[date, float]],
    daily_limit: float | None,
    width: int = CHART_W,
    height: int = DAILY_H,
) -> str:
    """The account's spend per UTC day over the last 30 complete days, from the provider's
    activity (so a fresh install has them), the tallest bar labelled, and the daily limit
    drawn when it is at most 2.5 times the tallest day (higher, it would flatten the bars)."""
    left, right, top_pad, bottom = 76, 16, 22, 26
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    base = height - bottom
    if not daily:
        top, step = _scale(daily_limit or 1.0)
        body = _grid(top, step, left, width - right, base, plot_h) + _empty(
            width, height - bottom, "No activity yet"
        )
        return _svg("daily-chart", width, height, "daily spend, last 30 days", body) + _caption(
            escape(_NO_ACTIVITY)
        )
    highest = max(v for _, v in daily)
    shows_limit = bool(daily_limit) and daily_limit is not None and daily_limit <= 2.5 * highest
    top, step = _scale(max(highest, daily_limit if shows_limit and daily_limit else 0.0) * 1.05)
    slot = plot_w / len(daily)
    parts = [_grid(top, step, left, width - right, base, plot_h)]
    peak_at = max(range(len(daily)), key=lambda i: (daily[i][1], i))
    for i, (day, value) in enumerate(daily):
        x, w = left + i * slot + slot * 0.12, slot * 0.76
        h = max(value / top * plot_h, 1.0)
        parts.append(
            f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'fill="{_pace_color(value, daily_limit, 2.0, BLUE)}">'
            f"<title>{escape(_day(day))} (UTC): {usd(value)}</title></rect>"
        )
        if (i % 7 == 0 and i < len(daily) - 3) or i == len(daily) - 1:
            parts.append(
                f'<text x="{x + w / 2:.1f}" y="{height - 8}" font-size="11" fill="{MUTED}" '
                f'text-anchor="middle">{escape(_day(day))}</text>'
            )
        if i == peak_at and value > 0:
            parts.append(
                f'<text x="{x + w / 2:.1f}" y="{base - h - 5:.1f}" font-size="11" '
                f'fill="{INK}" text-anchor="middle">{usd(value)}</text>'
            )
    if shows_limit and daily_limit:
        y = base - daily_limit / top * plot_h
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{COLORS["critical"]}" stroke-dasharray="4 4"/>'
            f'<text x="{left + 6}" y="{y - 5:.1f}" font-size="11" '
            f'fill="{COLORS["critical"]}" {HALO}>daily limit {usd(daily_limit)}</text>'
        )
    total = sum(v for _, v in daily)
    svg = _svg("daily-chart", width, height, "daily spend, last 30 days", "".join(parts))
    said = (
        f"From the provider's activity, per UTC day: {usd(total)} over {len(daily)} days "
        f"({_day(daily[0][0])} to {_day(daily[-1][0])}), {usd(total / len(daily))}/day on "
        f"average, the most {usd(highest)} on {_day(daily[peak_at][0])}."
    )
    return svg + _caption(escape(said))


def models_chart(
    top_models: Sequence[tuple[str, str, float]],
    daily: Sequence[tuple[date, float]],
    width: int = CHART_W,
    height: int = MODELS_H,
) -> str:
    """The models that took the most over the last 30 days as bars, each with its amount
    and its share of the account's spend over them."""
    rows = list(top_models[:TOP_ROWS])
    if not rows:
        body = _empty(width, height, "No activity yet")
        return _svg("models-chart", width, height, "spend by model, last 30 days", body) + (
            _caption(escape(_NO_ACTIVITY))
        )
    shown = sum(spend for _, _, spend in rows)
    total = max(sum(v for _, v in daily), sum(spend for _, _, spend in top_models))
    largest = max(spend for _, _, spend in rows) or 1.0
    left, bar_max, row_h, top_pad = 12, 640, (height - 12) / TOP_ROWS, 8
    parts = []
    for i, (model, provider, spend) in enumerate(rows):
        y = top_pad + i * row_h
        color = MODEL_COLORS[i % len(MODEL_COLORS)]
        share = spend / total if total > 0 else 0.0
        w = max(spend / largest * bar_max, 2.0)
        parts.append(
            f'<text x="{left}" y="{y + 13:.1f}" font-size="13" fill="{INK}">'
            f'<tspan font-weight="600">{escape(model)}</tspan>'
            f'<tspan fill="{MUTED}"> via {escape(provider or "unknown provider")}</tspan></text>'
            f'<rect x="{left}" y="{y + 18:.1f}" width="{w:.1f}" height="{row_h - 24:.1f}" '
            f'rx="3" fill="{color}"><title>{escape(model)} via {escape(provider)}: '
            f"{usd(spend)}, {percent(share)}</title></rect>"
            f'<text x="{left + w + 8:.1f}" y="{y + row_h - 9:.1f}" font-size="13" '
            f'fill="{INK}"><tspan font-weight="600">{usd(spend)}</tspan>'
            f'<tspan fill="{MUTED}"> · {percent(share)}</tspan></text>'
        )
    svg = _svg("models-chart", width, height, "spend by model, last 30 days", "".join(parts))
    said = (
        f"From the provider's activity, the last 30 days: the top {len(rows)} "
        f"(model, provider) took {usd(shown)} of {usd(total)}"
        + (f" ({percent(shown / total)})" if total > 0 else "")
        + "."
    )
    return svg + _caption(escape(said))


def savings(found: Sequence[tuple[str, float]]) -> str:
    """The savings the audit found, largest first: each estimate with its basis in its
    message; "" when there are none to show."""
    if not found:
        return ""
    ranked = sorted(found, key=lambda item: -item[1] if math.isfinite(item[1]) else 0.0)
    items = "".join(
        f"<li><b>{usd(saving)}</b> {escape(message)}</li>" for message, saving in ranked
    )
    total = sum(s for _, s in found if math.isfinite(s) and s > 0)
    said = f"Together {usd(total)}: estimates, each on the basis its message gives."
    return f'<h3>Savings found</h3><ul class="savings">{items}</ul>{_caption(escape(said))}'
