"""The status view, judged at the moment it is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watchdog.core import burn, view
from watchdog.core.model import BudgetPolicy, PollHealth, Sample
from watchdog.core.permit import Decision

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)
BUDGET = BudgetPolicy(daily_limit=20.0, stale_after=timedelta(minutes=10))


def built(latest: Sample | None = None, stale_revokes: bool = True) -> view.View:
    history = burn.History.from_samples([Sample(T0, 100.0, usage_daily=2.0)])
    return view.build(
        now=T0,
        budget=BUDGET,
        metrics=burn.measure(history, T0, UTC),
        findings=[],
        decision=Decision(True, "no finding demands a stop"),
        poll=PollHealth(started_at=T0 - timedelta(minutes=1), last_success=T0),
        key_name="batch",
        scope="key",
        stale_revokes=stale_revokes,
        latest=latest,
    )


def test_a_view_read_after_its_data_went_stale_says_so_and_revokes() -> None:
    """A hung tick builds no new view: staleness follows the clock at read time."""
    v = built()
    assert v.to_json(T0 + timedelta(minutes=5))["permit"] == "armed"
    late = v.to_json(T0 + timedelta(minutes=11))
    assert late["permit"] == "revoked" and late["state"] == "warning" and late["stale"]
    assert [f["rule"] for f in late["findings"]] == ["stale"]
    very_late = v.to_json(T0 + timedelta(minutes=31))
    assert very_late["state"] == "critical"


def test_with_on_stale_keep_the_permit_stays_but_the_state_warns() -> None:
    late = built(stale_revokes=False).to_json(T0 + timedelta(minutes=11))
    assert late["permit"] == "armed" and late["state"] == "warning"


def test_byok_spend_is_shown_with_whether_spend_includes_it() -> None:
    latest = Sample(T0, 100.0, byok_usage=7.5, byok_usage_daily=1.25, byok_counted=True)
    body = built(latest).to_json(T0)
    assert body["byok"] == {
        "spent_total": 7.5,
        "spent_today": 1.25,
        "spent_month": None,
        "included_in_spend": True,
    }
    assert built().to_json(T0)["byok"] is None


def test_the_activity_gives_30_full_days_and_the_top_models() -> None:
    from datetime import date

    now = datetime(2026, 11, 27, 9, tzinfo=UTC)
    activity = [
        (date(2026, 11, 26), "openai/gpt-4.1", "OpenAI", 3.0),
        (date(2026, 11, 26), "anthropic/claude", "Anthropic", 1.0),
        (date(2026, 11, 20), "openai/gpt-4.1", "Azure", 2.5),
        (date(2026, 10, 1), "old/model", "X", 99.0),  # beyond the 30 days
        (date(2026, 11, 27), "openai/gpt-4.1", "OpenAI", 7.0),  # today: not complete
    ]
    daily = view.daily_from(activity, now)
    assert len(daily) == 30 and daily[0][0] == date(2026, 10, 28)
    assert daily[-1] == (date(2026, 11, 26), 4.0)
    assert dict(daily)[date(2026, 11, 21)] == 0.0  # a day without rows spent nothing
    top = view.top_models_from(activity, now)
    assert top[0] == ("openai/gpt-4.1", "OpenAI", 3.0)  # today's partial day left out
    assert [m for m, _, _ in top] == ["openai/gpt-4.1", "openai/gpt-4.1", "anthropic/claude"]
    assert sum(spend for _, _, spend in top) == sum(value for _, value in daily)
    assert view.daily_from([], now) == ()
