"""Provider-side caps (watchdog.core.caps): the estimator on the shapes of spend a key can
have, the proposal, and when the watchdog must refuse to set it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from watchdog.core import caps
from watchdog.core.model import BudgetPolicy, CapChange, CapsPolicy, KeyBudget, KeyUsage
from watchdog.providers.base import ActivityRow

TODAY = date(2026, 11, 27)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CAPS = CapsPolicy(manage=True, factor=1.3, min_daily=1.0)
BUDGET = BudgetPolicy()
HASH = "a" * 64


def row(day: date, usage: float, byok: float = 0.0) -> ActivityRow:
    return ActivityRow(day, "openai/gpt-4.1", "OpenAI", usage, 1, 100, 10, byok_usage=byok)


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


def key(**fields: Any) -> KeyUsage:
    return replace(KeyUsage(usage=100.0, name="batch", hash=HASH, usage_daily=0.0), **fields)


def ours(limit: float, reset: str | None = "daily", key_hash: str = HASH) -> CapChange:
    """The latest audit row: the watchdog set `limit` over `reset`."""
    return CapChange(NOW, key_hash, "batch", None, None, limit, reset, "daemon", "caps")


def expected_of(rows: list[ActivityRow]) -> caps.Estimate:
    return caps.estimate(caps.daily_spend(rows, TODAY))


def plan(
    k: KeyUsage,
    expected: float = 4.0,
    *,
    last: CapChange | None = None,
    allow_raise: bool = False,
    budget: BudgetPolicy = BUDGET,
) -> caps.KeyPlan:
    found = caps.Estimate(expected, 30, expected, expected, 30)
    return caps.plan_key(k, found, CAPS, budget, last, allow_raise=allow_raise)


# -- the estimator ------------------------------------------------------------------------


def test_a_quiet_key_expects_nothing_and_gets_min_daily() -> None:
    found = expected_of([])
    assert (found.expected, found.days) == (0.0, 30)
    assert caps.proposed_limit(found.expected, CAPS) == (1.0, "min_daily")


def test_a_steady_key_expects_about_its_usual_day() -> None:
    rows = [row(days_ago(n), 10.0 + (n % 3) * 0.1) for n in range(1, 31)]
    found = expected_of(rows)
    assert found.expected == pytest.approx(10.2)
    assert caps.proposed_limit(found.expected, CAPS) == (13.26, "p95 × 1.3")


def test_a_weekly_batch_day_is_not_blocked_by_its_cap() -> None:
    """$40 one day a week, $1 the others: the cap covers the batch day, with the factor."""
    rows = [row(days_ago(n), 40.0 if n % 7 == 0 else 1.0) for n in range(1, 31)]
    found = expected_of(rows)
    assert found.expected == 40.0
    assert found.mean < 10  # a mean would have capped the batch day at about $8
    limit, _ = caps.proposed_limit(found.expected, CAPS)
    assert limit == 52.0 > 40.0


def test_one_odd_day_does_not_set_the_cap_for_a_month() -> None:
    """A runaway day among steady ones: the second busiest day counts, not the runaway."""
    rows = [row(days_ago(n), 2.0) for n in range(1, 31)] + [row(days_ago(9), 200.0)]
    found = expected_of(rows)
    assert (found.expected, found.peak) == (2.0, 202.0)


def test_a_job_that_runs_twice_a_month_keeps_its_days() -> None:
    rows = [row(days_ago(n), 30.0 if n in (5, 20) else 0.5) for n in range(1, 31)]
    assert expected_of(rows).expected == 30.0


def test_a_brand_new_key_is_judged_on_its_own_days_only() -> None:
    """Created three days ago: three days counted (the busiest), not 27 days of $0 first."""
    rows = [row(days_ago(3), 5.0), row(days_ago(2), 7.0), row(days_ago(1), 6.0)]
    found = expected_of(rows)
    assert (found.days, found.expected, found.active_days) == (3, 7.0, 3)


def test_a_key_created_today_expects_nothing() -> None:
    found = expected_of([row(TODAY, 50.0)])  # today is not a completed day
    assert (found.expected, found.days) == (0.0, 30)


def test_days_are_summed_and_quiet_days_count_as_zero() -> None:
    rows = [row(days_ago(4), 1.0), row(days_ago(4), 2.5), row(days_ago(1), 1.0)]
    assert caps.daily_spend(rows, TODAY) == [3.5, 0.0, 0.0, 1.0]


def test_activity_outside_the_30_completed_days_is_left_out() -> None:
    rows = [row(days_ago(31), 99.0), row(TODAY, 99.0), row(days_ago(30), 1.0)]
    daily = caps.daily_spend(rows, TODAY)
    assert (len(daily), daily[0], sum(daily)) == (30, 1.0, 1.0)


def test_byok_spend_counts_only_when_the_limit_counts_it() -> None:
    rows = [row(days_ago(1), 1.0, byok=3.0)]
    assert caps.daily_spend(rows, TODAY) == [1.0]
    assert caps.daily_spend(rows, TODAY, with_byok=True) == [4.0]


def test_no_days_estimate_to_zero() -> None:
    assert caps.estimate([]) == caps.Estimate(0.0, 0, 0.0, 0.0, 0)


# -- the proposal -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "cents"),
    [(5.331, 5.34), (5.33, 5.33), (1.3 * 4.1, 5.33), (0.001, 0.01), (52.0, 52.0)],
)
def test_limits_round_up_to_the_cent(amount: float, cents: float) -> None:
    assert caps.ceil_cent(amount) == cents


def test_the_proposal_is_factor_times_expected_rounded_up() -> None:
    assert caps.proposed_limit(3.333, CAPS) == (4.34, "p95 × 1.3")  # 4.3329 → 4.34


def test_the_proposal_is_never_below_min_daily() -> None:
    assert caps.proposed_limit(0.5, CapsPolicy(min_daily=2.5)) == (2.5, "min_daily")


def test_a_budget_keys_daily_limit_is_used_exactly() -> None:
    budget = BudgetPolicy(keys=(KeyBudget("batch*", daily_limit=0.5),))
    p = plan(key(), expected=40.0, budget=budget)
    assert (p.proposed, p.basis, p.change) == (0.5, "[[budget.keys]] batch*", "set")


def test_only_the_first_matching_budget_keys_entry_counts() -> None:
    """The first match has no daily_limit: the estimate decides, not a later entry."""
    budget = BudgetPolicy(
        keys=(KeyBudget("batch", monthly_limit=100.0), KeyBudget("*", daily_limit=9.0))
    )
    assert plan(key(), expected=4.0, budget=budget).proposed == 5.2


def test_a_pinned_key_is_planned_even_without_its_activity() -> None:
    budget = BudgetPolicy(keys=(KeyBudget(HASH, daily_limit=7.0),))
    p = caps.plan_key(key(), None, CAPS, budget, None, problem="activity unavailable: 502")
    assert (p.proposed, p.change) == (7.0, "set")


def test_a_key_without_its_activity_is_an_error_row() -> None:
    p = caps.plan_key(key(), None, CAPS, BUDGET, None, problem="activity unavailable: 502")
    assert (p.change, p.shown_change) == ("error", "error: activity unavailable: 502")


# -- changes and refusals -----------------------------------------------------------------


def test_a_key_without_a_limit_gets_one() -> None:
    p = plan(key())
    assert (p.proposed, p.change, p.shown_change) == (5.2, "set", "set")


def test_the_same_limit_again_is_no_change() -> None:
    p = plan(key(limit=5.2, limit_reset="daily"), last=ours(5.2))
    assert (p.change, p.applies) == ("none", False)


def test_never_below_what_the_key_spent_today() -> None:
    p = plan(key(usage_daily=6.0))
    assert p.change == "refused"
    assert p.shown_change == "refused: $5.20 is not above today's spend $6.00"


def test_not_at_today_s_spend_either() -> None:
    """A cap equal to today's spend would stop the key at once, like one below it."""
    assert plan(key(usage_daily=5.2)).change == "refused"


def test_today_s_spend_counts_byok_when_the_limit_does() -> None:
    k = key(usage_daily=2.0, byok_usage=10.0, byok_usage_daily=4.0, include_byok_in_limit=True)
    assert plan(k).spent_today == 6.0
    assert plan(k).change == "refused"


def test_a_hand_set_lower_limit_is_not_raised() -> None:
    p = plan(key(limit=3.0, limit_reset="daily"))
    assert (p.change, p.hand_set) == ("refused", True)
    assert p.reason == "hand-set limit $3.00 is lower; --raise raises it"


def test_a_hand_set_lower_limit_is_raised_with_raise() -> None:
    p = plan(key(limit=3.0, limit_reset="daily"), allow_raise=True)
    assert (p.change, p.proposed, p.hand_set) == ("raise", 5.2, True)


def test_a_hand_set_higher_limit_is_lowered() -> None:
    p = plan(key(limit=50.0, limit_reset="daily"))
    assert (p.change, p.hand_set) == ("lower", True)


def test_our_own_lower_limit_is_raised_without_raise() -> None:
    p = plan(key(limit=3.0, limit_reset="daily"), last=ours(3.0))
    assert (p.change, p.hand_set) == ("raise", False)


@pytest.mark.parametrize("reset", ["monthly", "weekly", None])
def test_a_hand_set_limit_of_another_period_is_not_replaced(reset: str | None) -> None:
    """Even a higher one: a monthly (or lifetime) cap is not swapped for a daily one."""
    p = plan(key(limit=500.0, limit_reset=reset))
    assert p.change == "refused"
    assert p.reason == (
        f"hand-set {reset or 'lifetime'} limit $500.00; --raise replaces it with a daily one"
    )


def test_a_hand_set_monthly_limit_is_replaced_with_raise() -> None:
    p = plan(key(limit=500.0, limit_reset="monthly"), allow_raise=True)
    assert (p.change, p.proposed) == ("set", 5.2)


def test_raise_does_not_lift_the_today_s_spend_rule() -> None:
    p = plan(key(limit=3.0, limit_reset="daily", usage_daily=8.0), allow_raise=True)
    assert p.change == "refused"


def test_a_disabled_key_is_listed_and_left_alone() -> None:
    p = caps.plan_key(key(disabled=True), None, CAPS, BUDGET, None)
    assert (p.change, p.reason, p.proposed) == ("none", "disabled: left alone", None)


# -- ours or hand-set ---------------------------------------------------------------------


def test_a_limit_is_ours_when_the_latest_audit_row_set_exactly_it() -> None:
    assert caps.is_ours(ours(5.2), 5.2, "daily")
    assert caps.is_ours(ours(5.2), 5.2000001, "daily")  # the provider's float


def test_a_limit_changed_since_our_row_is_hand_set() -> None:
    assert not caps.is_ours(ours(5.2), 4.0, "daily")
    assert not caps.is_ours(ours(5.2), 5.2, "weekly")
    assert not caps.is_ours(None, 5.2, "daily")


def test_the_latest_row_per_hash_decides() -> None:
    """Newest first, as Store.cap_log gives them: an older row that matches is not enough."""
    log = [ours(4.0), ours(5.2), ours(1.0, key_hash="b" * 64)]
    latest = caps.latest_changes(log)
    assert latest[HASH].new_limit == 4.0
    assert not caps.is_ours(latest[HASH], 5.2, "daily")
    assert latest["b" * 64].new_limit == 1.0


# -- workspaces ---------------------------------------------------------------------------

WS = "11111111-1111-1111-1111-111111111111"


def workspace(
    monthly_limit: float | None = 400.0,
    budgets: dict[str, float] | None = None,
    spent: float | None = 120.0,
    last: CapChange | None = None,
    allow_raise: bool = False,
) -> caps.WorkspacePlan:
    return caps.plan_workspace(
        WS,
        "prod",
        "Production",
        monthly_limit,
        budgets or {},
        spent,
        last,
        allow_raise=allow_raise,
    )


def test_a_workspace_without_a_monthly_budget_gets_monthly_limit() -> None:
    w = workspace()
    assert (w.proposed, w.change, w.audit_hash) == (400.0, "set", f"workspace:{WS}")


def test_without_monthly_limit_budgets_are_reported_not_changed() -> None:
    w = workspace(None, {"monthly": 250.0})
    assert (w.change, w.current_limit, w.current_reset) == ("none", 250.0, "monthly")


def test_a_workspace_budget_is_never_set_below_this_month_s_spend() -> None:
    w = workspace(spent=410.0)
    assert w.shown_change == "refused: $400.00 is not above this month's spend $410.00"


def test_a_hand_set_lower_workspace_budget_is_not_raised() -> None:
    assert workspace(budgets={"monthly": 300.0}).change == "refused"
    assert workspace(budgets={"monthly": 300.0}, allow_raise=True).change == "raise"
    ours_300 = ours(300.0, "monthly", key_hash=f"workspace:{WS}")
    assert workspace(budgets={"monthly": 300.0}, last=ours_300).change == "raise"


def test_a_workspace_budget_keeps_the_provider_s_order() -> None:
    """lifetime > monthly > weekly > daily, or the provider refuses the PUT."""
    w = workspace(budgets={"lifetime": 350.0})
    assert w.shown_change == "refused: the lifetime budget $350.00 must stay above the monthly one"
    assert workspace(budgets={"weekly": 450.0}).change == "refused"
    assert workspace(budgets={"lifetime": 1000.0, "weekly": 100.0}).change == "set"


# -- records and output -------------------------------------------------------------------


def survey(*keys: caps.KeyPlan) -> caps.Survey:
    return caps.Survey(NOW, CAPS, 400.0, False, keys=keys, workspaces=(workspace(),))


def test_a_change_is_recorded_with_its_reason() -> None:
    p = plan(key(limit=50.0, limit_reset="daily"))
    record = caps.change_record(p, NOW, "alice (cli)", survey(p))
    assert record == CapChange(
        NOW,
        HASH,
        "batch",
        50.0,
        "daily",
        5.2,
        "daily",
        "alice (cli)",
        "caps: p95 of 30 days $4.00 × 1.3",
    )


def test_a_refusal_is_not_a_change_to_record() -> None:
    p = plan(key(usage_daily=9.0))
    with pytest.raises(ValueError, match="not a change"):
        caps.change_record(p, NOW, "daemon", survey(p))


def test_the_json_has_the_contract_fields() -> None:
    data = caps.as_json(survey(plan(key(limit=3.0, limit_reset="daily"))))
    json.dumps(data)  # serialisable as it is
    (entry,) = data["keys"]
    assert {
        k: entry[k]
        for k in (
            "name",
            "hash",
            "expected_daily",
            "proposed_limit",
            "current_limit",
            "current_reset",
            "change",
        )
    } == {
        "name": "batch",
        "hash": HASH,
        "expected_daily": 4.0,
        "proposed_limit": 5.2,
        "current_limit": 3.0,
        "current_reset": "daily",
        "change": "refused: hand-set limit $3.00 is lower; --raise raises it",
    }
    assert data["estimator"]["name"] == "p95"
    assert data["workspaces"][0]["change"] == "set"
    assert data["dry_run"] is True


def test_the_table_says_it_was_a_dry_run_and_names_the_estimator() -> None:
    text = caps.render(survey(plan(key())))
    assert "dry run: nothing changed" in text
    assert "95th percentile" in text
    line = next(line for line in text.splitlines() if line.strip().startswith("batch"))
    assert line.split() == ["batch", "$4.00", "$5.20", "p95", "×", "1.3", "none", "$0.00", "set"]
    assert "--apply makes the 2 changes" in text
