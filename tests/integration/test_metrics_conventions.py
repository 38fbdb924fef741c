"""/metrics follows Prometheus' conventions: `promtool check metrics` accepts it (base units,
`_total` counters, `_timestamp_seconds` moments), and spend, limits, ratios and forecasts
share one `window` vocabulary ("day", "week", "month") so they divide without relabelling;
burn rates are labelled by the span they are averaged `over`."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_server import NOW, App, view
from watchdog.core.model import BudgetPolicy, Finding, PollHealth, TargetHealth
from watchdog.core.view import KeyRow, TargetView, View, starting

PROMTOOL = shutil.which("promtool")
WINDOWS = {"day", "week", "month"}


def rich_view() -> View:
    """Every family present: findings, targets with traffic, provider and tick errors."""
    v = view(
        findings=[
            Finding("spike", "warning", 5.0, 2.0, "m"),
            Finding("daily_limit", "critical", 21.0, 20.0, "m", key="batch"),
        ]
    )
    poll = replace(
        v.poll,
        errors_by_kind=(("provider_budget", 1), ("state", 2), ("tick", 3), ("transient", 4)),
    )
    target = TargetView(
        id="ops-slack",
        shown="slack://****",
        severities=("critical",),
        health=TargetHealth(sent=5, failed=1, pending=2),
    )
    row = KeyRow(
        name="batch",
        hash="b" * 64,
        label=None,
        workspace_id=None,
        disabled=False,
        spent_today=21.0,
        spent_month=40.0,
        burn_rate_per_hour=3.6,
        limit=50.0,
        limit_remaining=29.0,
        limit_reset="daily",
        daily_limit=20.0,
        monthly_limit=None,
        action="revoke",
        armed=False,
        reason="m",
        headroom=0.0,
        findings=(Finding("daily_limit", "critical", 21.0, 20.0, "m", key="batch"),),
    )
    return replace(v, poll=poll, targets=(*v.targets, target), keys=(row,), keys_watched=True)


def scrape(v: View) -> str:
    return App(v).client.get("/metrics").text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def labelled(text: str, name: str, label: str) -> dict[str, float]:
    return {
        dict(labels)[label]: value
        for (metric, labels), value in samples(text).items()
        if metric == name
    }


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is absent (Debian's prometheus package)")
@pytest.mark.parametrize(
    "v",
    [
        rich_view(),
        starting(NOW, BudgetPolicy(), PollHealth(started_at=NOW)),
        view(budget=BudgetPolicy()),  # no limits configured
    ],
    ids=["full", "starting", "no-limits"],
)
def test_metrics_pass_promtool_check_metrics(v: View) -> None:
    result = subprocess.run(
        [PROMTOOL or "promtool", "check", "metrics"],
        input=scrape(v),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


def test_spend_limits_and_ratios_share_one_window_vocabulary() -> None:
    text = scrape(rich_view())
    spent = labelled(text, "budget_watchdog_spent_usd", "window")
    limits = labelled(text, "budget_watchdog_limit_usd", "window")
    ratios = labelled(text, "budget_watchdog_limit_used_ratio", "window")
    forecast = labelled(text, "budget_watchdog_forecast_spent_usd", "window")
    assert set(spent) == WINDOWS
    assert set(limits) == set(ratios) == {"day", "month"}
    assert set(forecast) == {"month"}
    for window, limit in limits.items():  # spent / on(window) limit, no relabelling
        assert ratios[window] == pytest.approx(spent[window] / limit)
    assert limits == {"day": 20.0, "month": 400.0}
    assert spent["day"] == 12.0


def test_burn_rates_are_per_second_and_labelled_by_the_span_they_cover() -> None:
    v = rich_view()
    text = scrape(v)
    rates = labelled(text, "budget_watchdog_burn_rate_usd_per_second", "over")
    expected = {over: r.per_hour for over, r in v.rates()}
    assert set(rates) == {"10m", "1h", "24h", "7d"}
    for over, per_hour in expected.items():
        assert per_hour is not None
        assert rates[over] == pytest.approx(per_hour / 3600)
    assert "burn_rate_usd_per_hour" not in text


def test_metrics_use_base_units_and_counter_suffixes() -> None:
    text = scrape(rich_view())
    values = samples(text)
    assert values[("budget_watchdog_runway_seconds", ())] == 8 * 86400  # 8 days of credit
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    types = dict(line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE "))
    assert all(n.startswith("budget_watchdog_") for n in names)
    for unit in ("days", "hours", "minutes", "hour", "day", "daily", "today", "monthly"):
        assert not [n for n in names if unit in n.split("_")], unit
    for name, kind in types.items():
        assert (kind == "counter") == name.endswith("_total"), name
        if "timestamp" in name:
            assert name.endswith("_timestamp_seconds") and kind == "gauge", name


def test_every_error_kind_the_view_counted_is_exported() -> None:
    v = rich_view()
    v = replace(v, poll=replace(v.poll, errors_by_kind=(*v.poll.errors_by_kind, ("odd", 7))))
    text = scrape(v)
    polls = labelled(text, "budget_watchdog_poll_errors_total", "kind")
    ticks = labelled(text, "budget_watchdog_tick_errors_total", "kind")
    assert ticks == {"state": 2.0, "tick": 3.0}
    assert polls["transient"] == 4 and polls["provider_budget"] == 1 and polls["odd"] == 7
    assert polls["auth"] == 0 and polls["rate_limited"] == 0 and polls["bad_response"] == 0
    assert not {"state", "tick"} & set(polls)  # a failure counted once


def test_per_target_series_are_labelled_by_target_id() -> None:
    text = scrape(rich_view())
    sent = labelled(text, "budget_watchdog_notifications_sent_total", "target")
    failed = labelled(text, "budget_watchdog_notifications_failed_total", "target")
    pending = labelled(text, "budget_watchdog_notifications_pending", "target")
    assert sent == {"target-1": 0.0, "ops-slack": 5.0}
    assert failed["ops-slack"] == 1.0 and pending["ops-slack"] == 2.0
    assert "slack://" not in text and "json://" not in text


def test_finding_severity_is_the_worst_over_keys() -> None:
    v = rich_view()
    v = replace(
        v,
        findings=(
            Finding("daily_limit", "critical", 21.0, 20.0, "m", key="batch"),
            Finding("daily_limit", "warning", 17.0, 20.0, "m", key="other"),
        ),
    )
    severity = labelled(scrape(v), "budget_watchdog_finding_severity", "rule")
    assert severity["daily_limit"] == 2


def test_a_stale_view_reports_its_age_in_seconds() -> None:
    app = App(view())
    app.clock.advance(minutes=20)
    values = samples(app.client.get("/metrics").text)
    assert values[("budget_watchdog_data_age_seconds", ())] == pytest.approx(20 * 60 + 5)
    assert values[("budget_watchdog_last_successful_poll_timestamp_seconds", ())] == (
        NOW.timestamp()
    )
    assert values[("budget_watchdog_permit_armed", ())] == 0


def test_per_key_series_are_labelled_by_the_key_s_name() -> None:
    text = scrape(rich_view())
    assert labelled(text, "budget_watchdog_key_permit_armed", "key") == {"batch": 0.0}
    assert labelled(text, "budget_watchdog_key_finding_severity", "key") == {"batch": 2.0}
    assert labelled(text, "budget_watchdog_key_burn_rate_usd_per_second", "key") == {"batch": 0.001}
    limits = samples(text)
    assert limits[("budget_watchdog_key_limit_usd", (("key", "batch"), ("window", "day")))] == 20
    assert "b" * 64 not in text  # never the hash, let alone the secret
