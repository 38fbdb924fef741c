"""GET /: a small status page a person reads, rendered on the server.

Plain HTML and inline CSS, the 7-day burn chart as inline SVG: no CDN, no JavaScript, so
it works on an air-gapped host and in a terminal browser (the chart degrades to text).
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from watchdog.rules import usd
from watchdog.status import View

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
"""


def render(view: View, now: datetime, reserved: float = 0.0) -> str:
    """The whole page for `view` at `now`."""
    s = view.status
    state = str(s.get("state", "unknown"))
    armed = bool(view.armed)
    limits = s.get("limits") or {}
    head = (
        f'<span class="badge" style="background:{COLORS.get(state, COLORS["unknown"])}">'
        f"{escape(state.upper())}</span>"
        f'<span class="badge" style="background:{COLORS["ok"] if armed else COLORS["critical"]}">'
        f"PERMIT {'ARMED' if armed else 'REVOKED'}</span>"
    )
    reason = (
        "" if armed else f'<div class="sub">Launches blocked: {escape(view.permit_reason)}</div>'
    )
    cards = [
        _limit_card("Spent today", s.get("spent_today"), limits.get("daily"), "daily limit"),
        _limit_card(
            "Spent this month",
            s.get("spent_month"),
            limits.get("monthly"),
            "monthly limit",
            forecast=s.get("forecast_month"),
        ),
        _runway_card(s, view),
        _burn_card(s),
        _headroom_card(s.get("headroom_usd"), reserved),
    ]
    if limits.get("key"):
        used = limits["key"] - (limits.get("key_remaining") or 0.0)
        cards.append(_limit_card("Key limit (provider)", used, limits["key"], "key limit"))
    age = view.data_age(now)
    fresh = view.fresh(now)
    poll = (
        f"Last poll {escape(str(s.get('last_poll_at') or 'never'))}"
        + ("" if age is None else f" ({age:.0f} s ago)")
        + ("" if fresh else ' — <b style="color:#c62828">STALE</b>')
    )
    error = f"<br>Last error: {escape(str(s['last_error']))}" if s.get("last_error") else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="30">
<title>budget-watchdog: {escape(state)}</title><style>{CSS}</style></head>
<body><main>
<h1>budget-watchdog · {escape(str(s.get("key", "")))}</h1>
<div class="sub">{head}</div>{reason}
<div class="grid">{"".join(cards)}</div>
<h2>Findings</h2>
{_findings(s.get("findings") or [])}
<h2>Burn, last 7 days (USD per hour)</h2>
{chart(view.chart, s.get("timezone", "UTC"))}
<h2>Notifications</h2>
{_targets(s)}
<p class="muted">{poll}{error}<br>Generated {escape(now.isoformat(timespec="seconds"))} ·
budget-watchdog {escape(str(s.get("version", "")))} · <a href="/status">/status</a> ·
<a href="/metrics">/metrics</a></p>
</main></body></html>
"""


def _bar(share: float, color: str) -> str:
    width = max(0.0, min(1.0, share)) * 100
    return f'<div class="bar"><span style="width:{width:.1f}%;background:{color}"></span></div>'


def _limit_card(
    title: str, spent: float | None, limit: float | None, name: str, forecast: float | None = None
) -> str:
    body = f'<div class="big">{usd(spent)}</div>'
    if limit and spent is not None:
        share = spent / limit
        color = (
            COLORS["critical"]
            if share >= 1
            else COLORS["warning"]
            if share >= 0.8
            else COLORS["ok"]
        )
        body += _bar(share, color)
        body += f'<div class="muted">{share:.0%} of the {usd(limit)} {name}</div>'
    else:
        body += f'<div class="muted">no {name} set</div>'
    if forecast is not None:
        body += f'<div class="muted">Forecast at month end: {usd(forecast)}</div>'
    return f'<section class="card"><h2>{escape(title)}</h2>{body}</section>'


def _runway_card(s: dict[str, object], view: View) -> str:
    runway = s.get("runway_days")
    b = view.settings.budget
    body = f'<div class="big">{usd(s.get("balance"))}</div>'  # type: ignore[arg-type]
    if isinstance(runway, int | float):
        target = max(b.buffer_days_warning, 1.0)
        color = (
            COLORS["critical"]
            if runway < b.buffer_days_critical
            else COLORS["warning"]
            if runway < b.buffer_days_warning
            else COLORS["ok"]
        )
        body += _bar(runway / (2 * target), color)
        body += (
            f'<div class="muted">Runway {runway:.1f} days at '
            f"{usd(s.get('average_daily'))}/day; keep {b.buffer_days_warning:g} "  # type: ignore[arg-type]
            f"(critical under {b.buffer_days_critical:g})</div>"
        )
    else:
        body += '<div class="muted">Runway unknown</div>'
    return f'<section class="card"><h2>Balance and runway</h2>{body}</section>'


def _burn_card(s: dict[str, object]) -> str:
    rates = s.get("burn_rates") or {}
    rows = "".join(
        f"<tr><td>{escape(w)}</td><td>{usd(r.get('per_hour'))}/h</td>"
        f'<td class="muted">{escape(str(r.get("basis", "")))}</td></tr>'
        for w, r in rates.items()  # type: ignore[attr-defined]
    )
    return f'<section class="card"><h2>Burn rate</h2><table>{rows}</table></section>'


def _headroom_card(headroom: object, reserved: float) -> str:
    value = headroom if isinstance(headroom, int | float) else None
    extra = f'<div class="muted">{usd(reserved)} reserved by running jobs</div>' if reserved else ""
    return (
        f'<section class="card"><h2>Headroom</h2><div class="big">{usd(value)}</div>'
        f'<div class="muted">may still be spent before a critical threshold</div>{extra}</section>'
    )


def _findings(findings: list[dict[str, object]]) -> str:
    if not findings:
        return '<p class="muted">No findings: spend is within every limit.</p>'
    items = "".join(
        f'<li style="border-left-color:{COLORS.get(str(f["severity"]), "#57606a")}">'
        f"<b>{escape(str(f['severity']).upper())} · {escape(str(f['rule']))}</b><br>"
        f"{escape(str(f['message']))}</li>"
        for f in findings
    )
    return f'<ul class="findings">{items}</ul>'


def _targets(s: dict[str, object]) -> str:
    targets = s.get("notify_targets") or []
    if not targets:
        return '<p class="muted">No notification targets configured.</p>'
    rows = "".join(
        f"<tr><td>{escape(str(t['target']))}</td><td>{t['sent']} sent</td>"
        f"<td>{t['pending']} pending</td><td>"
        + (
            "ok"
            if t["healthy"]
            else f'<b style="color:#c62828">failing</b>: {escape(str(t["last_error"]))}'
        )
        + "</td></tr>"
        for t in targets  # type: ignore[attr-defined]
    )
    return f"<table>{rows}</table>"


def chart(
    points: list[tuple[datetime, float | None]], zone: str, width: int = 940, height: int = 200
) -> str:
    """Hourly spend as an SVG bar chart, a day per band, the tallest bar labelled."""
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
            f"<title>{when:%a %H:00} UTC: ${value:,.2f}</title></rect>"
        )
        if when.hour == 0:
            bars.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="6" y2="{height - bottom}" stroke="#d0d7de"/>'
            )
            bars.append(
                f'<text x="{x + 3:.1f}" y="{height - 8}" font-size="11" fill="#57606a">'
                f"{when:%a %d}</text>"
            )
    axis = (
        f'<text x="4" y="16" font-size="11" fill="#57606a">${top:,.2f}</text>'
        f'<text x="4" y="{height - bottom}" font-size="11" fill="#57606a">$0</text>'
    )
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="hourly spend, last 7 days'
        f' ({escape(zone)})">{axis}{"".join(bars)}</svg>'
    )
