"""Every rule, its thresholds, its sentence, prediction and hysteresis, with plain values."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.core import rules
from watchdog.core.burn import Metrics, Rate
from watchdog.core.model import BudgetPolicy, Finding, PollHealth, Severity
from watchdog.core.view import finding_json

NOW = datetime(2026, 11, 27, 14, 9, tzinfo=UTC)
HORIZON = timedelta(seconds=75)


def rate(per_hour: float | None, window: timedelta = timedelta(hours=1)) -> Rate:
    return Rate(per_hour, window, window, "own samples")


def metrics(**overrides: Any) -> Metrics:
    base: dict[str, Any] = {
        "now": NOW,
        "last_sample_at": NOW,
        "spent_today": 1.0,
        "spent_today_source": "own samples",
        "spent_week": 5.0,
        "spent_month": 30.0,
        "spent_month_source": "own samples",
        "rate_now": rate(0.1),
        "rate_1h": rate(0.1),
        "rate_24h": rate(0.1),
        "avg_daily": rate(0.1),
        "hourly_baseline": rate(0.1),
        "balance": 500.0,
        "runway_days": 200.0,
        "forecast_month": 80.0,
        "day_start": datetime(2026, 11, 27, tzinfo=UTC),
        "day_end": datetime(2026, 11, 28, tzinfo=UTC),
        "month_start": datetime(2026, 11, 1, tzinfo=UTC),
        "month_end": datetime(2026, 12, 1, tzinfo=UTC),
        "key_limit": None,
        "key_limit_remaining": None,
        "counter_resets": 0,
    }
    base.update(overrides)
    return Metrics(**base)


def budget(**kwargs: Any) -> BudgetPolicy:
    if "timezone" in kwargs:
        from zoneinfo import ZoneInfo

        kwargs["tz"] = ZoneInfo(kwargs["timezone"])
    return BudgetPolicy(**kwargs)


def poll(**kwargs: Any) -> PollHealth:
    return PollHealth(**{"last_success": NOW, "started_at": NOW - timedelta(hours=1), **kwargs})


def run(
    m: Metrics,
    b: BudgetPolicy | None = None,
    p: PollHealth | None = None,
    held: dict[tuple[str, str], Severity] | None = None,
) -> dict[str, Finding]:
    found = rules.evaluate(m, b or budget(), p or poll(), horizon=HORIZON, held=held)
    return {f.rule: f for f in found}


def test_the_daily_limit_sentence() -> None:
    found = run(
        metrics(spent_today=18.40, rate_1h=rate(3.10), rate_now=rate(3.10)), budget(daily_limit=20)
    )
    f = found["daily_limit"]
    assert f.severity == "warning"
    assert f.message == (
        "$18.40 spent today, 92% of the $20.00 daily limit; at $3.10/h the limit is reached at "
        "14:40 UTC."
    )
    assert (f.value, f.threshold, f.window) == (18.40, 16.0, "today")


@pytest.mark.parametrize(
    ("spent", "severity"),
    [(15.99, None), (16.0, "warning"), (19.99, "warning"), (20.0, "critical"), (35.0, "critical")],
)
def test_daily_limit_thresholds(spent: float, severity: str | None) -> None:
    found = run(
        metrics(spent_today=spent, rate_1h=rate(0.0), rate_now=rate(0.0)), budget(daily_limit=20)
    )
    assert (found["daily_limit"].severity if "daily_limit" in found else None) == severity


def test_monthly_limit_in_another_zone_names_its_clock() -> None:
    found = run(
        metrics(spent_month=330.0, rate_1h=rate(2.0), rate_now=rate(2.0)),
        budget(monthly_limit=400, timezone="Europe/Berlin"),
    )
    # 35 h at $2/h from 14:09 UTC: Nov 29 01:09 UTC, 02:09 in Berlin.
    assert found["monthly_limit"].message == (
        "$330.00 spent this month, 82% of the $400.00 monthly limit; at $2.00/h the limit is "
        "reached at Nov 29 02:09 CET."
    )


def test_a_crossing_before_the_next_poll_is_critical_now() -> None:
    # $19.60 spent, $30/h: $20 is reached in 48 s, before the poll 60 s from now.
    found = run(
        metrics(spent_today=19.60, rate_1h=rate(12.0), rate_now=rate(30.0)), budget(daily_limit=20)
    )
    f = found["daily_limit"]
    assert f.severity == "critical"
    assert f.predicted
    assert f.message.endswith(
        "at $30.00/h the limit is reached at 14:10 UTC, before the next poll."
    )


def test_a_crossing_after_the_next_poll_waits() -> None:
    found = run(
        metrics(spent_today=18.0, rate_1h=rate(3.0), rate_now=rate(3.0)), budget(daily_limit=20)
    )
    assert found["daily_limit"].severity == "warning"
    assert not found["daily_limit"].predicted


def test_a_crossing_after_midnight_is_not_today() -> None:
    late = NOW.replace(hour=23, minute=59, second=30)
    found = run(
        metrics(now=late, spent_today=19.99, rate_1h=rate(0.5), rate_now=rate(0.5)),
        budget(daily_limit=20),
    )
    assert found["daily_limit"].severity == "warning"
    assert "not reached today" in found["daily_limit"].message


def test_monthly_forecast_warns_with_its_basis() -> None:
    found = run(
        metrics(
            forecast_month=520.0,
            rate_24h=Rate(
                1.5, timedelta(days=1), timedelta(hours=3), "own samples over 3.0 h of 24 h"
            ),
        ),
        budget(monthly_limit=400),
    )
    f = found["monthly_forecast"]
    assert f.severity == "warning"
    assert f.message == (
        "At $1.50/h (the last 24 hours) this month ends at $520.00, 130% of the $400.00 "
        "monthly limit."
    )
    assert f.basis == "own samples over 3.0 h of 24 h"


@pytest.mark.parametrize(("runway", "severity"), [(7.5, None), (6.9, "warning"), (2.9, "critical")])
def test_buffer_days(runway: float, severity: str | None) -> None:
    found = run(
        metrics(
            runway_days=runway,
            balance=runway * 10,
            avg_daily=Rate(10 / 24, timedelta(days=7), timedelta(days=7), "7 days"),
        )
    )
    assert (found["buffer_days"].severity if "buffer_days" in found else None) == severity


def test_buffer_sentence() -> None:
    avg = Rate(
        16.2 / 24, timedelta(days=7), timedelta(days=2), "own samples over 2.0 days of 7.0 days"
    )
    found = run(metrics(balance=42.10, runway_days=42.10 / 16.2, avg_daily=avg))
    assert found["buffer_days"].message == (
        "$42.10 of credit lasts 2.6 days at the average burn of $16.20/day (own samples over "
        "2.0 days of 7.0 days); keep at least 3 days."
    )


def test_no_spend_means_no_buffer_finding() -> None:
    assert "buffer_days" not in run(metrics(runway_days=float("inf"), balance=1.0))


def test_min_balance_exhausted_and_predicted() -> None:
    assert (
        run(metrics(balance=-0.5))["min_balance"].message
        == "Balance is -$0.50: credit is exhausted."
    )
    found = run(
        metrics(balance=0.3, rate_now=rate(30.0), rate_1h=rate(30.0)), budget(min_balance=0)
    )
    assert found["min_balance"].severity == "critical"
    assert found["min_balance"].predicted


def test_min_balance_warns_near_the_floor() -> None:
    found = run(metrics(balance=12.0), budget(min_balance=10))
    assert found["min_balance"].severity == "warning"
    assert "min_balance" not in run(metrics(balance=13.0), budget(min_balance=10))


@pytest.mark.parametrize(
    ("remaining", "severity"),
    [(30.0, None), (15.0, "warning"), (0.0, "critical"), (-2.0, "critical")],
)
def test_key_limit(remaining: float, severity: str | None) -> None:
    found = run(metrics(key_limit=100.0, key_limit_remaining=remaining))
    assert (found["key_limit"].severity if "key_limit" in found else None) == severity


def test_spike_needs_both_the_factor_and_the_absolute_floor() -> None:
    idle = metrics(rate_1h=rate(0.04), hourly_baseline=rate(0.001))
    assert "spike" not in run(idle)  # 40x, but only $0.04/h
    busy = metrics(rate_1h=rate(5.0), hourly_baseline=rate(0.5))
    f = run(busy)["spike"]
    assert f.severity == "warning"
    assert f.message == "Burning $5.00/h (own samples), 10.0x the usual $0.50/h (own samples)."
    assert "spike" not in run(metrics(rate_1h=rate(1.9), hourly_baseline=rate(0.5)))


def test_stale_after_the_configured_age_then_critical() -> None:
    assert "stale" not in run(metrics(), p=poll(last_success=NOW - timedelta(minutes=9)))
    warn = run(metrics(), p=poll(last_success=NOW - timedelta(minutes=11)))["stale"]
    assert warn.severity == "warning"
    assert warn.message.startswith("No successful poll for 11 min")
    assert (
        run(metrics(), p=poll(last_success=NOW - timedelta(minutes=31)))["stale"].severity
        == "critical"
    )


def test_never_polled_is_stale_from_the_start() -> None:
    found = run(metrics(), p=PollHealth(last_success=None, started_at=NOW - timedelta(minutes=12)))
    assert found["stale"].message.startswith("No successful poll since start")


def test_auth_is_critical() -> None:
    found = run(metrics(), p=poll(auth_error="GET /key: HTTP 401 (key invalid or disabled)"))
    assert found["auth"].severity == "critical"
    assert "HTTP 401" in found["auth"].message


def test_findings_are_ordered_most_severe_first() -> None:
    found = rules.evaluate(
        metrics(spent_today=25.0, rate_1h=rate(5.0), hourly_baseline=rate(0.5)),
        budget(daily_limit=20),
        poll(),
        horizon=HORIZON,
    )
    assert [f.rule for f in found] == ["daily_limit", "spike"]
    assert rules.severity_of(found) == "critical"


def test_hysteresis_holds_a_finding_until_it_is_clearly_back() -> None:
    b = budget(daily_limit=20)
    held: dict[tuple[str, str], Severity] = {("daily_limit", "*"): "warning"}
    still = run(metrics(spent_today=15.5, rate_1h=rate(0.0)), b, held=held)
    assert still["daily_limit"].severity == "warning"  # 15.5 >= 16 x 0.95
    assert "daily_limit" not in run(metrics(spent_today=15.1, rate_1h=rate(0.0)), b, held=held)
    assert "daily_limit" not in run(metrics(spent_today=15.5, rate_1h=rate(0.0)), b)  # not held


def test_hysteresis_de_escalates_only_below_the_margin() -> None:
    b = budget(daily_limit=20)
    held: dict[tuple[str, str], Severity] = {("daily_limit", "*"): "critical"}
    m = metrics(spent_today=19.5, rate_1h=rate(0.0), rate_now=rate(0.0))
    assert run(m, b, held=held)["daily_limit"].severity == "critical"
    m = metrics(spent_today=18.9, rate_1h=rate(0.0), rate_now=rate(0.0))
    assert run(m, b, held=held)["daily_limit"].severity == "warning"


def test_a_finding_as_json_is_rounded_and_complete() -> None:
    f = run(metrics(spent_today=18.123456, rate_1h=rate(0.0)), budget(daily_limit=20))[
        "daily_limit"
    ]
    d = finding_json(f)
    assert d["rule"] == "daily_limit" and d["severity"] == "warning" and d["value"] == 18.1235
    assert set(d) >= {"rule", "severity", "value", "threshold", "message"}


values = st.floats(min_value=0, max_value=1000, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    spent=values,
    month=values,
    balance=st.floats(min_value=-50, max_value=1000),
    r=values,
    base=st.floats(min_value=0, max_value=50),
    runway=st.floats(min_value=0, max_value=30),
)
def test_a_value_held_constant_never_flips(
    spent: float, month: float, balance: float, r: float, base: float, runway: float
) -> None:
    m = metrics(
        spent_today=spent,
        spent_month=month,
        balance=balance,
        rate_1h=rate(r),
        rate_now=rate(r),
        hourly_baseline=rate(base),
        runway_days=runway,
        forecast_month=month + r * 24,
        key_limit=100.0,
        key_limit_remaining=balance,
    )
    b = budget(daily_limit=20, monthly_limit=400, min_balance=5)
    held: dict[tuple[str, str], Severity] = {}
    seen = []
    for _ in range(4):
        found = rules.evaluate(m, b, poll(), horizon=HORIZON, held=held)
        held = {f.ident: f.severity for f in found}
        seen.append(sorted((f.rule, f.severity) for f in found))
    assert seen[1] == seen[2] == seen[3]
    assert {r for r, _ in seen[0]} <= {r for r, _ in seen[1]}  # holding only keeps, never drops
    assert dataclasses.is_dataclass(m)


def test_a_spike_minutes_old_is_judged_and_told_by_the_10_minute_rate() -> None:
    """Right after a $3.70 step the hour average says $0.41/h while the last 10 minutes
    burn $59.69/h: the spike fires on, and names, the rate that explains it."""
    fast = Rate(59.69, timedelta(minutes=10), timedelta(minutes=10), "own samples, full 10 min")
    m = metrics(rate_now=fast, rate_1h=rate(0.41), hourly_baseline=rate(0.4))
    spike = run(m)["spike"]
    assert spike.value == 59.69 and spike.window == "10m"
    assert "$59.69/h" in spike.message and "own samples, full 10 min" in spike.message
