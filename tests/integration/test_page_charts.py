"""The status page's spend charts, from views built the way the tick builds them (samples
through `burn.measure`, the account's activity, `view.build`), at the three states an
operator meets: a fresh install, the middle of a month under the limit, and over budget.

The HTML is checked here (fast, no browser); test_page_chromium.py renders the same three
states in headless Chromium and checks the screenshots.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tests.integration.test_page_operator import text
from watchdog.core import burn, rules
from watchdog.core.model import BudgetPolicy, PollHealth, Sample
from watchdog.core.permit import Decision
from watchdog.core.view import View, build
from watchdog.page import COLORS, render, savings

BERLIN = ZoneInfo("Europe/Berlin")
BUDGET = BudgetPolicy(timezone="Europe/Berlin", tz=BERLIN, daily_limit=30.0, monthly_limit=400.0)
# The charts by id, with the viewBox each keeps whatever the data (so the page scales).
CHARTS = {
    "month-chart": (940, 240),
    "daily-chart": (940, 200),
    "models-chart": (940, 200),
}
# (model, provider, share of a day's spend): six pairs, so the top five leave one out.
MODELS = (
    ("anthropic/claude-sonnet-4", "Anthropic", 0.44),
    ("openai/gpt-4o", "OpenAI", 0.22),
    ("google/gemini-2.5-flash", "Google Vertex", 0.14),
    ("meta-llama/llama-3.3-70b-instruct", "DeepInfra", 0.11),
    ("mistralai/mistral-small-3.2", "Mistral", 0.06),
    ("qwen/qwen-2.5-72b-instruct", "Together", 0.03),
)


@dataclass(frozen=True)
class State:
    """A page at a moment: the view and the clock the server reads."""

    name: str
    view: View
    now: datetime


def per_day(day: date, level: float) -> float:
    """A believable day's spend around `level`: busier midweek, quiet at weekends."""
    return round(level * (0.55 if day.weekday() >= 5 else 1.0 + 0.08 * (day.day % 5)), 2)


def account(
    now: datetime,
    *,
    installed: datetime | None,
    level: float,
    surge_from: date | None = None,
    activity: bool = True,
    budget: BudgetPolicy = BUDGET,
) -> View:
    """The view the tick would build at `now` for an account spending `per_day(day,
    level)` each UTC day (three times that from `surge_from`), evenly over its hours: a
    sample every hour since `installed` (none when None) with the provider's UTC counters
    as the key endpoint reports them, and the account's activity for the 30 complete UTC
    days before today (none when `activity` is False: no management key)."""

    def spend_on(day: date) -> float:
        surge = 3.0 if surge_from is not None and day >= surge_from else 1.0
        return per_day(day, level) * surge

    today = now.astimezone(UTC).date()
    history = burn.History()
    t = datetime.combine(today - timedelta(days=31), time(0), tzinfo=UTC)
    used, day_used, week_used, month_used = 0.0, 0.0, 0.0, 0.0
    while t <= now:
        if installed is not None and t >= installed:
            history.add(
                Sample(
                    ts=t,
                    usage=used,
                    usage_daily=day_used,
                    usage_weekly=week_used,
                    usage_monthly=month_used,
                    balance=round(1_200.0 - used, 4),
                )
            )
        spent = spend_on(t.date()) / 24
        used, day_used, week_used, month_used = (
            used + spent,
            day_used + spent,
            week_used + spent,
            month_used + spent,
        )
        t += timedelta(hours=1)
        if t.hour == 0:  # the provider's windows restart at 00:00 UTC
            day_used = 0.0
            week_used = 0.0 if t.weekday() == 0 else week_used
            month_used = 0.0 if t.day == 1 else month_used
    rows = [
        (day, model, provider, round(spend_on(day) * share, 4))
        for day in (today - timedelta(days=k) for k in range(30, 0, -1))
        for model, provider, share in MODELS
    ]
    metrics = burn.measure(history, now, budget.tz)
    poll = PollHealth(
        started_at=(installed or now) - timedelta(minutes=2),
        last_success=history.last.ts if history.last is not None else None,
        polls=len(history),
    )
    findings = rules.evaluate(metrics, budget, poll, horizon=timedelta(minutes=2))
    critical = [f for f in findings if f.severity == "critical"]
    if history.last is None:
        decision = Decision(False, "starting: no poll yet")
    elif critical:
        decision = Decision(False, f"{critical[0].rule} critical")
    else:
        decision = Decision(True, "no finding demands a stop")
    return build(
        now=now,
        budget=budget,
        metrics=metrics,
        findings=findings,
        decision=decision,
        poll=poll,
        key_name="batch",
        scope="key",
        chart=history.hourly(now, 168),
        latest=history.last,
        activity=rows if activity else (),
        month_days=burn.daily_spend(history, now, now.astimezone(budget.tz).day, budget.tz),
    )


def fresh_install() -> State:
    """Installed a minute ago, no poll has answered yet, no management key: nothing known."""
    now = datetime(2026, 11, 15, 14, 9, tzinfo=UTC)
    return State("fresh-install", account(now, installed=None, level=8.0, activity=False), now)


def mid_month() -> State:
    """Nov 15, installed on the 4th (the 1st to 3rd from the activity), about $10 a day
    against a $400 month: under the limit, the forecast under it too."""
    now = datetime(2026, 11, 15, 14, 9, tzinfo=UTC)
    installed = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
    return State("mid-month", account(now, installed=installed, level=10.0), now)


def over_budget() -> State:
    """Nov 20, a batch job tripled the spend from the 12th: past the $400 limit, and the
    forecast far past it."""
    now = datetime(2026, 11, 20, 14, 9, tzinfo=UTC)
    installed = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    view = account(now, installed=installed, level=14.0, surge_from=date(2026, 11, 12))
    return State("over-budget", view, now)


STATES = (fresh_install, mid_month, over_budget)


def charts(html: str) -> dict[str, tuple[int, int]]:
    """Each chart's id and viewBox size, as the page declares them."""
    found = re.findall(r'<svg id="([\w-]+)" viewBox="0 0 (\d+) (\d+)"', html)
    return {ident: (int(w), int(h)) for ident, w, h in found}


def svg(html: str, ident: str) -> str:
    match = re.search(rf'<svg id="{ident}".*?</svg>', html, flags=re.S)
    assert match, f"no {ident} on the page"
    return match.group(0)


def bars(chart: str) -> list[str]:
    """The bars' tooltips, in order."""
    return re.findall(r"<rect [^>]*><title>(.*?)</title></rect>", chart)


def page(state: State) -> str:
    return render(state.view.at(state.now), state.now)


def test_every_state_has_the_three_charts_at_fixed_sizes_and_refreshes_itself() -> None:
    for make in STATES:
        html = page(make())
        found = charts(html)
        assert {k: found[k] for k in CHARTS} == CHARTS
        assert found["burn-chart"] == (940, 200)
        assert '<meta http-equiv="refresh" content="60">' in html
        lowered = html.lower()
        assert "<script" not in lowered and " on" + "load=" not in lowered
        assert "http://" not in html and "https://" not in html  # no CDN, nothing fetched


def test_a_fresh_install_says_what_is_unknown_and_where_the_history_comes_from() -> None:
    state = fresh_install()
    html = page(state)
    words = text(html)
    assert state.view.state == "unknown" and "UNKNOWN" in words
    assert "No findings yet: nothing is known until a poll answers." in words
    month = svg(html, "month-chart")
    assert "No spend known for this month yet" in month
    assert 'id="month-limit"' in month  # the limit is known before any spend is
    assert 'id="month-forecast"' not in month
    assert all(tip.endswith("unknown") for tip in bars(month))  # days so far, all grey
    assert "Spent: unknown; monthly limit $400.00." in words
    assert "Spent this month unknown against the $400.00 monthly limit" in words  # the card
    for chart in ("daily-chart", "models-chart"):
        assert "No activity yet" in svg(html, chart)
    assert words.count("from the provider's activity, which needs a management key") == 2


def test_mid_month_shows_the_curve_the_limit_and_the_forecast_under_it() -> None:
    state = mid_month()
    html = page(state)
    words = text(html)
    m = state.view.metrics
    assert m is not None and m.spent_month is not None and m.forecast_month is not None
    assert m.spent_month < m.forecast_month < 400.0
    month = svg(html, "month-chart")
    tips = bars(month)
    assert len(tips) == 15  # Nov 1 to today, the 15th, in Berlin
    assert tips[0].startswith("Nov 1: $") and "unknown" not in tips[0]  # from the activity
    assert tips[-1].startswith("Nov 15: $") and tips[-1].endswith("so far (today)")
    assert 'id="month-limit"' in month and "monthly limit $400.00" in month
    assert f"forecast {usd(m.forecast_month)}" in month
    # The projection runs from today's spend to the month's last day (Nov 30).
    line = re.search(r'<line id="month-forecast" x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)"', month)
    assert line and float(line.group(1)) < float(line.group(2))
    assert f'stroke="{COLORS["critical"]}" stroke-width="2.5"' not in month
    share = f"{m.spent_month / 400:.0%}"
    assert (
        f"Spent {usd(m.spent_month)} this month so far; forecast {usd(m.forecast_month)} by "
        f"Nov 30; {share} of the $400.00 monthly limit." in words
    )
    assert "over it" not in words


def test_over_budget_draws_the_overrun_and_the_forecast_in_red() -> None:
    state = over_budget()
    html = page(state)
    words = text(html)
    m = state.view.metrics
    assert m is not None and m.spent_month is not None and m.forecast_month is not None
    assert m.spent_month > 400.0 and m.forecast_month > 2 * 400.0
    assert state.view.state == "critical" and "PERMIT REVOKED" in words
    month = svg(html, "month-chart")
    red = COLORS["critical"]
    assert 'id="month-forecast"' in month
    assert re.search(rf'<line id="month-forecast"[^>]*stroke="{red}"', month)
    assert f'fill="{red}"><title>Nov 20:' in month  # today's total is past the limit
    assert f"the forecast is {usd(m.forecast_month - 400)} over it" in words


def test_without_a_monthly_limit_the_curve_and_forecast_still_show() -> None:
    state = mid_month()
    unlimited = replace(BUDGET, monthly_limit=None)
    view = account(
        state.now, installed=datetime(2026, 11, 4, 9, tzinfo=UTC), level=10.0, budget=unlimited
    )
    html = render(view, state.now)
    month = svg(html, "month-chart")
    assert 'id="month-limit"' not in month
    assert 'id="month-forecast"' in month and len(bars(month)) == 15
    assert "no monthly limit set." in text(html)


def test_the_last_30_days_come_from_the_activity_with_the_tallest_day_labelled() -> None:
    state = mid_month()
    daily = state.view.daily
    assert len(daily) == 30
    html = page(state)
    chart = svg(html, "daily-chart")
    tips = bars(chart)
    assert len(tips) == 30
    first, last = daily[0], daily[-1]
    assert tips[0] == f"{first[0]:%b} {first[0].day} (UTC): {usd(first[1])}"
    assert tips[-1] == f"Nov 14 (UTC): {usd(last[1])}"
    highest = max(v for _, v in daily)
    assert f">{usd(highest)}</text>" in chart
    assert "daily limit $30.00" in chart
    total = sum(v for _, v in daily)
    assert f"From the provider's activity, per UTC day: {usd(total)} over 30 days" in text(html)


def test_where_the_money_goes_shows_the_top_models_with_amounts_and_shares() -> None:
    state = mid_month()
    html = page(state)
    chart = svg(html, "models-chart")
    total = sum(v for _, v in state.view.daily)
    top = state.view.top_models
    assert [model for model, _, _ in top] == [model for model, _, _ in MODELS[:5]]
    for model, provider, spend in top:
        assert f"<title>{model} via {provider}: {usd(spend)}, {spend / total:.0%}</title>" in chart
    assert "qwen" not in chart  # the sixth is left out
    widths = [float(w) for w in re.findall(r'<rect x="12" y="[\d.]+" width="([\d.]+)"', chart)]
    assert widths == sorted(widths, reverse=True) and widths[0] == 640.0
    shown = sum(s for _, _, s in top)
    assert f"took {usd(shown)} of {usd(total)} ({shown / total:.0%})." in text(html)


def test_savings_are_listed_largest_first_with_their_total() -> None:
    found = (
        ("Route openai/gpt-4o by price: same tokens at today's prices.", 12.5),
        ("Move <formatting> calls to a mid-tier model.", 40.25),
    )
    html = savings(found)
    assert html.index("$40.25") < html.index("$12.50")
    assert "&lt;formatting&gt;" in html  # escaped
    assert "Together $52.75" in html
    assert savings(()) == ""


def usd(value: float) -> str:
    assert math.isfinite(value)
    return f"${value:,.2f}"


def test_the_savings_found_show_under_where_the_money_goes() -> None:
    state = mid_month()
    found = (("Route openai/gpt-4o by price: same tokens at today's prices.", 12.5),)
    words = text(render(replace(state.view, savings=found), state.now))
    assert "Savings found $12.50 Route openai/gpt-4o by price: same tokens" in words
    where = words.index("Where the money goes")
    assert where < words.index("Savings found") < words.index("Burn, last 7")
    assert "Savings found" not in text(page(state))
