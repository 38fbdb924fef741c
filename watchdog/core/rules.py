"""Budget rules: pure judgements of one tick's Metrics into Findings.

Each rule yields at most one finding per key, `warning` or `critical`, with the value, the
threshold, the window, and a sentence a person understands at 3 a.m. Two ideas keep them
useful rather than noisy:

- Prediction: a critical limit that the current rate crosses before the next poll is
  critical *now*, so the permit is revoked before the money is spent, not a poll after.
- Hysteresis: a finding that is already active (`held`) stays until its value is back
  inside its threshold by `budget.hysteresis`, so a value hovering at the line does not flap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from watchdog.core.burn import Metrics
from watchdog.core.model import (
    SEVERITY_ORDER,
    WATCHED,
    BudgetPolicy,
    Finding,
    PollHealth,
    Severity,
)
from watchdog.core.words import clock, duration, usd
from watchdog.core.words import rate as _rate

RULES = (
    "daily_limit",
    "monthly_limit",
    "monthly_forecast",
    "buffer_days",
    "min_balance",
    "key_limit",
    "spike",
    "stale",
    "auth",
    "provider_budget",
    "key_disable",
    "permit_write",
    "clock",
    "state",
    "tick",
)
# The clock may trail the newest sample by this much (a provider's clock, rounding) before
# the data is taken as coming from the future.
CLOCK_SLACK = timedelta(seconds=5)


def evaluate(
    metrics: Metrics,
    budget: BudgetPolicy,
    poll: PollHealth,
    *,
    horizon: timedelta,
    held: Mapping[tuple[str, str], Severity] | None = None,
    disable_error: str | None = None,
    permit_error: str | None = None,
    key_permit_error: str | None = None,
) -> list[Finding]:
    """Given this tick's metrics, the budget, polling state, the prediction horizon (time
    to the next poll, with margin) and the findings active before (`held`), return the
    findings, most severe first."""
    held = held or {}
    ctx = _Context(metrics, budget, horizon, held)
    found = [
        *ctx.limits(),
        ctx.forecast(),
        ctx.buffer(),
        ctx.min_balance(),
        ctx.key_limit(),
        ctx.spike(),
        _stale(metrics.now, poll, budget, held),
        _auth(poll),
        _provider_budget(poll),
        _key_disable(disable_error),
        _permit_write(permit_error, key_permit_error),
        _clock_behind(metrics),
    ]
    return _ranked(f for f in found if f is not None)


def _ranked(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then in the order of RULES."""
    return sorted(findings, key=lambda f: (-SEVERITY_ORDER[f.severity], RULES.index(f.rule)))


def evaluate_key(
    metrics: Metrics,
    budget: BudgetPolicy,
    key: str,
    *,
    horizon: timedelta,
    held: Mapping[tuple[str, str], Severity] | None = None,
) -> list[Finding]:
    """One key's findings (KEY_RULES): its own daily and monthly limits (`budget` carries
    them), its provider limit whatever its reset, and a spike against its own baseline;
    with the same prediction and hysteresis as the account's. Each finding carries the
    key's name in `key`, and its sentence starts with it."""
    ctx = _Context(metrics, budget, horizon, held or {}, key)
    found = [*ctx.limits(), ctx.key_limit(), ctx.spike()]
    return _ranked(
        replace(f, key=key, message=f"Key {key}: {f.message[:1].lower()}{f.message[1:]}")
        for f in found
        if f is not None
    )


KEY_RULES = ("daily_limit", "monthly_limit", "key_limit", "spike")


class _Context:
    def __init__(
        self,
        metrics: Metrics,
        budget: BudgetPolicy,
        horizon: timedelta,
        held: Mapping[tuple[str, str], Severity],
        key: str = WATCHED,
    ) -> None:
        self.key = key
        self.m = metrics
        self.b = budget
        self.tz = budget.tz
        self.horizon_h = horizon.total_seconds() / 3600
        self.held = held
        # The 1-hour average lags a runaway that began minutes ago; the short window
        # catches it. Predictions use whichever is faster, so they err towards stopping.
        rates = [r for r in (metrics.rate_now.per_hour, metrics.rate_1h.per_hour) if r is not None]
        self.rate = max(rates) if rates else None

    def limits(self) -> tuple[Finding | None, Finding | None]:
        """The daily and monthly limits of the budget (the account's, or one key's)."""
        m, b = self.m, self.b
        return (
            self.limit("daily_limit", m.spent_today, b.daily_limit, "today", "daily", m.day_end),
            self.limit(
                "monthly_limit",
                m.spent_month,
                b.monthly_limit,
                "this month",
                "monthly",
                m.month_end,
            ),
        )

    def _held(self, rule: str) -> Severity | None:
        return self.held.get((rule, self.key))

    def _relax(self, rule: str, severity: Severity) -> float:
        """Multiplier for an upper threshold: below 1 while the finding is held."""
        held = self._held(rule)
        if held is not None and SEVERITY_ORDER[held] >= SEVERITY_ORDER[severity]:
            return 1 - self.b.hysteresis
        return 1.0

    def limit(
        self,
        rule: str,
        spent: float | None,
        limit: float | None,
        window: str,
        name: str,
        window_end: datetime,
    ) -> Finding | None:
        if spent is None or limit is None:
            return None
        warn_at = self.b.warn_ratio * limit
        rate = self.rate
        reach = None
        if rate is not None and rate > 0 and spent < limit:
            reach = _after(self.m.now, (limit - spent) / rate)
        predicted = (
            reach is not None
            and reach <= window_end
            and reach <= self.m.now + timedelta(hours=self.horizon_h)
        )
        if spent >= limit * self._relax(rule, "critical"):
            severity: Severity = "critical"
            threshold = limit
            tail = (
                "; the limit is reached"
                if spent >= limit
                else "; just under the limit, held until it falls back"
            )
            predicted = False
        elif predicted:
            severity, threshold = "critical", limit
            when = clock(reach, self.tz, self.m.now)
            tail = f"; at {_rate(rate)} the limit is reached at {when}, before the next poll"
        elif spent >= warn_at * self._relax(rule, "warning"):
            severity, threshold = "warning", warn_at
            tail = self._reach_text(rate, reach, window_end)
        else:
            return None
        # Written only for a finding: a key far from its limits is judged every tick.
        share = f"{usd(spent)} spent {window}, {spent / limit:.0%} of the {usd(limit)} {name} limit"
        return Finding(
            rule,
            severity,
            spent,
            threshold,
            share + tail + ".",
            window=window,
            predicted=predicted,
            basis=self._basis(rule),
        )

    def _reach_text(self, rate: float | None, reach: datetime | None, window_end: datetime) -> str:
        if rate is None:
            return ""
        if reach is None or reach > window_end:
            which = "today" if window_end == self.m.day_end else "this month"
            return f"; at {_rate(rate)} the limit is not reached {which}"
        return f"; at {_rate(rate)} the limit is reached at {clock(reach, self.tz, self.m.now)}"

    def _basis(self, rule: str) -> str:
        m = self.m
        if rule == "daily_limit":
            return m.spent_today_source
        if rule in ("monthly_limit", "monthly_forecast"):
            return m.spent_month_source
        return ""

    def forecast(self) -> Finding | None:
        limit, forecast = self.b.monthly_limit, self.m.forecast_month
        if limit is None or forecast is None:
            return None
        if forecast <= limit * self._relax("monthly_forecast", "warning"):
            return None
        rate = self.m.rate_24h
        message = (
            f"At {_rate(rate.per_hour)} (the last 24 hours) this month ends at "
            f"{usd(forecast)}, {forecast / limit:.0%} of the {usd(limit)} monthly limit."
        )
        return Finding(
            "monthly_forecast",
            "warning",
            forecast,
            limit,
            message,
            window="month end",
            basis=rate.basis,
        )

    def buffer(self) -> Finding | None:
        runway, avg = self.m.runway_days, self.m.avg_daily
        if runway is None or math.isinf(runway) or avg.per_day is None:
            return None
        held = self._held("buffer_days")
        h = 1 + self.b.hysteresis
        crit, warn = self.b.buffer_days_critical, self.b.buffer_days_warning
        if runway < crit * (h if held == "critical" else 1):
            severity: Severity = "critical"
            threshold = crit
        elif runway < warn * (h if held is not None else 1):
            severity, threshold = "warning", warn
        else:
            return None
        balance = self.m.balance or 0.0
        message = (
            f"{usd(balance)} of credit lasts {runway:.1f} days at the average burn of "
            f"{usd(avg.per_day)}/day ({avg.basis}); keep at least {threshold:g} days."
        )
        return Finding(
            "buffer_days",
            severity,
            runway,
            threshold,
            message,
            window="7-day average",
            unit="days",
            basis=avg.basis,
        )

    def min_balance(self) -> Finding | None:
        balance = self.m.balance
        if balance is None:
            return None
        floor = self.b.min_balance
        held = self._held("min_balance")
        margin = max(floor * self.b.hysteresis, 0.01) if held else 0.0
        rate = self.rate
        if balance <= floor + (margin if held == "critical" else 0.0):
            text = (
                "credit is exhausted" if balance <= 0 else f"at or under the {usd(floor)} minimum"
            )
            return Finding(
                "min_balance",
                "critical",
                balance,
                floor,
                f"Balance is {usd(balance)}: {text}.",
                unit="usd",
            )
        if rate is not None and rate > 0 and balance - rate * self.horizon_h <= floor:
            when = clock(_after(self.m.now, (balance - floor) / rate), self.tz, self.m.now)
            return Finding(
                "min_balance",
                "critical",
                balance,
                floor,
                f"Balance is {usd(balance)}; at {_rate(rate)} it reaches {usd(floor)} at {when}, "
                "before the next poll.",
                predicted=True,
            )
        warn_floor = floor / self.b.warn_ratio if floor > 0 else None
        if warn_floor is not None and balance <= warn_floor + (margin if held else 0.0):
            return Finding(
                "min_balance",
                "warning",
                balance,
                warn_floor,
                f"Balance is {usd(balance)}, close to the {usd(floor)} minimum.",
            )
        return None

    def key_limit(self) -> Finding | None:
        limit, remaining = self.m.key_limit, self.m.key_limit_remaining
        if limit is None or remaining is None or limit <= 0:
            return None
        used = limit - remaining
        share = used / limit
        rate = self.rate

        def text() -> str:  # written only for a finding: most keys are far from their limit
            return f"The key has used {usd(used)} of its {usd(limit)} provider limit ({share:.0%})"

        if remaining <= limit * self.b.hysteresis * (
            1 if self._held("key_limit") == "critical" else 0
        ):
            return Finding(
                "key_limit", "critical", used, limit, text() + "; the provider will refuse it now."
            )
        if rate is not None and rate > 0 and remaining - rate * self.horizon_h <= 0:
            when = clock(_after(self.m.now, remaining / rate), self.tz, self.m.now)
            return Finding(
                "key_limit",
                "critical",
                used,
                limit,
                text() + f"; at {_rate(rate)} it is used up at {when}, before the next poll.",
                predicted=True,
            )
        if share >= self.b.warn_ratio * self._relax("key_limit", "warning"):
            return Finding("key_limit", "warning", used, limit * self.b.warn_ratio, text() + ".")
        return None

    def spike(self) -> Finding | None:
        # The faster of the 10-minute and 1-hour rates, as predictions use: the hour
        # average hides a runaway that began minutes ago, and the message names the rate
        # that explains it (with its basis).
        base = self.m.hourly_baseline
        if base.per_hour is None:
            return None
        known = [r for r in (self.m.rate_now, self.m.rate_1h) if r.per_hour is not None]
        rate = max(known, key=lambda r: r.per_hour or 0.0) if known else self.m.rate_1h
        if rate.per_hour is None:
            return None
        relax = self._relax("spike", "warning")
        threshold = max(self.b.spike_factor * base.per_hour, self.b.spike_min_rate)
        if rate.per_hour <= threshold * relax:
            return None
        factor = rate.per_hour / base.per_hour if base.per_hour > 0 else math.inf
        times = f"{factor:.1f}x" if math.isfinite(factor) else "far above"
        message = (
            f"Burning {_rate(rate.per_hour)} ({rate.basis}), {times} the usual "
            f"{_rate(base.per_hour)} ({base.basis})."
        )
        return Finding(
            "spike",
            "warning",
            rate.per_hour,
            threshold,
            message,
            window="10m" if rate is self.m.rate_now else "1h",
            unit="usd_per_hour",
            basis=rate.basis,
        )


def _stale(
    now: datetime, poll: PollHealth, budget: BudgetPolicy, held: Mapping[tuple[str, str], Severity]
) -> Finding | None:
    since = poll.last_success or poll.started_at
    age = (now - since).total_seconds()
    limit = budget.stale_after.total_seconds()
    if age <= limit:
        return None
    severity: Severity = "critical" if age > 3 * limit else "warning"
    what = (
        f"No successful poll for {duration(age)}"
        if poll.last_success
        else f"No successful poll since start {duration(age)} ago"
    )
    return Finding(
        "stale",
        severity,
        age,
        limit,
        f"{what} (stale after {duration(limit)}): the numbers are out of date.",
        unit="seconds",
    )


def _auth(poll: PollHealth) -> Finding | None:
    if poll.auth_error is None:
        return None
    return Finding(
        "auth",
        "critical",
        None,
        None,
        f"The provider rejected the key: {poll.auth_error}. Check or replace the key.",
        unit="",
    )


def _after(now: datetime, hours: float) -> datetime | None:
    """`now` plus `hours`, or None when that is too far away to matter (or to represent)."""
    if not math.isfinite(hours) or hours > 24 * 400:
        return None
    return now + timedelta(hours=max(0.0, hours))


def _provider_budget(poll: PollHealth) -> Finding | None:
    """A budget at the provider (a workspace's) refuses the key: spending has stopped there,
    whatever ours say. A budget finding, not a wrong key: critical, as a crossed limit."""
    if poll.budget_error is None:
        return None
    return Finding(
        "provider_budget",
        "critical",
        None,
        None,
        f"A budget at the provider refuses the key: {poll.budget_error}.",
        unit="",
    )


def _key_disable(error: str | None) -> Finding | None:
    """A provider-side disable that failed (an action of the last tick) is critical."""
    if error is None:
        return None
    return Finding(
        "key_disable",
        "critical",
        None,
        None,
        f"Could not disable the key at the provider: {error}. "
        "Retrying every poll; stop the jobs by hand if this persists.",
        unit="",
    )


def _permit_write(error: str | None, key_error: str | None = None) -> Finding | None:
    """The permit could not be written last tick: jobs reading the file see no-go while
    the watchdog thinks it armed, so it is critical until a write succeeds. Only some
    keys' permit files: their jobs see no-go (the failed files are removed), the account
    stands, and the operator is told (a warning) until they can be written."""
    if error is None:
        if key_error is None:
            return None
        return Finding(
            "permit_write",
            "warning",
            None,
            None,
            f"Could not write some keys' permit files: {key_error}. Jobs on those keys see "
            "no permit (no-go) until they can be written; other keys and the account's "
            "permit are not affected. Check the directory's owner and free space.",
            unit="",
        )
    return Finding(
        "permit_write",
        "critical",
        None,
        None,
        f"Could not write the permit: {error}. Jobs see no permit (no-go) until it can be "
        "written; check the directory's owner and free space.",
        unit="",
    )


def _clock_behind(m: Metrics) -> Finding | None:
    """The newest sample is later than now: the clock stepped back (NTP, a restored VM).
    Windows, rates and freshness cannot be trusted until it catches up, so: critical."""
    if m.last_sample_at is None or m.last_sample_at <= m.now + CLOCK_SLACK:
        return None
    behind = (m.last_sample_at - m.now).total_seconds()
    return Finding(
        "clock",
        "critical",
        behind,
        CLOCK_SLACK.total_seconds(),
        f"The clock is {duration(behind)} behind the newest data (it stepped back?): spend "
        "windows and rates are not trusted until it catches up.",
        unit="seconds",
    )


def severity_of(findings: list[Finding]) -> str:
    """The overall state: "critical", "warning" or "ok"."""
    if any(f.severity == "critical" for f in findings):
        return "critical"
    return "warning" if findings else "ok"
