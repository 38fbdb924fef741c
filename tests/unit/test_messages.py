"""Message words: when the event happened, how late it went out, which rate explains it
and what backs that rate, and the plain-text form of a body. Plain values, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from watchdog.core import burn, messages
from watchdog.core.model import BudgetPolicy, Event, Finding, Sample
from watchdog.core.words import rate

T0 = datetime(2026, 11, 27, 14, 9, tzinfo=UTC)
BERLIN = BudgetPolicy(timezone="Europe/Berlin", tz=ZoneInfo("Europe/Berlin"), daily_limit=20.0)


def ctx(metrics: burn.Metrics | None = None, budget: BudgetPolicy = BERLIN) -> messages.Context:
    return messages.Context(metrics=metrics, budget=budget, permit="armed", data_age_s=3.0)


def event(kind: str = "firing", rule: str = "daily_limit", **kwargs: object) -> Event:
    fields: dict[str, object] = {
        "kind": kind,
        "rule": rule,
        "key": "*",
        "severity": "warning",
        "since": T0,
        "at": T0,
        "message": "$17.00 spent today, 85% of the $20.00 daily limit.",
    }
    fields.update(kwargs)
    return Event(**fields)  # type: ignore[arg-type]


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_every_message_says_when_its_event_happened_in_the_budget_zone() -> None:
    text = messages.body(event(), ctx())
    assert lines(text, "- When:") == ["- When: 2026-11-27 15:09 CET"]
    # The same moment for machines (json:// payloads carry the body): ISO 8601, UTC.
    assert text.splitlines()[-1] == "Event time: 2026-11-27T14:09:00+00:00"


def test_a_lasting_alert_says_since_when_it_fires() -> None:
    later = T0 + timedelta(hours=4)
    text = messages.body(event("repeat", at=later), ctx())
    assert lines(text, "- When:") == ["- When: 2026-11-27 19:09 CET; firing since 15:09 CET"]
    assert "Event time: 2026-11-27T18:09:00+00:00" in text


def test_a_resolution_held_by_a_silence_says_when_it_ended_and_until_when_it_was_held() -> None:
    held = event(
        "resolved",
        rule="spike",
        since=T0 - timedelta(hours=1),
        at=T0,
        held_until=T0 + timedelta(hours=2),
        message="Resolved after 1 h. It was: …",
    )
    text = messages.body(held, ctx())
    assert lines(text, "- When:") == [
        "- When: 2026-11-27 15:09 CET; held by a silence until 17:09 CET "
        "(the numbers below are from then)"
    ]
    assert "Event time: 2026-11-27T14:09:00+00:00" in text
    assert messages.title(held, "batch") == "[RESOLVED] spike on batch (budget-watchdog)"


def test_a_late_message_says_how_late_on_its_when_line() -> None:
    text = messages.body(event(), ctx())
    late = messages.delivered_late(text, 19 * 60)
    assert lines(late, "- When:") == ["- When: 2026-11-27 15:09 CET; delivered 19 min late"]
    assert late.replace("; delivered 19 min late", "") == text
    assert messages.delivered_late(text, 90) == text  # on time: unchanged


def test_a_late_message_without_a_when_line_says_so_at_the_top() -> None:
    assert messages.delivered_late("**hello**", 600) == "_Delivered 10 min late._\n\n**hello**"


def runaway() -> burn.Metrics:
    """Three minutes after start, $3.70 spent in the last three of them; the provider's
    usage_daily says $7.40 since midnight: its average is what "1h" fell back to."""
    history = burn.History()
    for minute, usage, daily in ((0, 100.0, 3.70), (1, 100.0, 3.70), (3, 103.70, 7.40)):
        ts = T0 + timedelta(minutes=minute)
        history.add(Sample(ts=ts, usage=usage, usage_daily=daily))
    return burn.measure(history, T0 + timedelta(minutes=3), UTC)


def test_a_spike_message_shows_the_fast_rate_that_explains_it_and_its_basis() -> None:
    m = runaway()
    assert m.rate_now.per_hour is not None and m.rate_1h.per_hour is not None
    assert m.rate_now.per_hour > 10 * m.rate_1h.per_hour  # the case of the issue
    text = messages.body(event(rule="spike"), ctx(m))
    assert lines(text, "- Burn rate:") == [
        f"- Burn rate: {rate(m.rate_now.per_hour)} ({m.rate_now.basis})"
    ]
    assert "over the last hour" not in text


def test_a_limit_message_shows_the_faster_rate_as_its_prediction_does() -> None:
    m = runaway()
    text = messages.body(event(rule="daily_limit"), ctx(m))
    assert f"Burn rate: {rate(m.rate_now.per_hour)} ({m.rate_now.basis})" in text


def test_a_slow_one_hour_rate_says_it_is_the_providers_daily_average() -> None:
    history = burn.History()
    history.add(Sample(ts=T0, usage=100.0, usage_daily=5.0))
    m = burn.measure(history, T0 + timedelta(seconds=30), UTC)
    assert m.rate_1h.basis.startswith("provider usage_daily")
    text = messages.body(event(rule="daily_limit"), ctx(m))
    assert lines(text, "- Burn rate:") == [
        f"- Burn rate: {rate(m.rate_1h.per_hour)} ({m.rate_1h.basis})"
    ]


def test_long_run_rules_show_the_average_they_judge_by() -> None:
    m = runaway()
    buffer = messages.body(event(rule="buffer_days"), ctx(m))
    assert f"Burn rate: {rate(m.avg_daily.per_hour)} ({m.avg_daily.basis})" in buffer
    forecast = messages.body(event(rule="monthly_forecast"), ctx(m))
    assert f"Burn rate: {rate(m.rate_24h.per_hour)} ({m.rate_24h.basis})" in forecast


def test_data_age_says_when_the_last_poll_was() -> None:
    m = runaway()
    text = messages.body(event(), ctx(m))
    assert lines(text, "- Data age:") == ["- Data age: 3 s (last poll 15:12 CET)"]


def test_plain_text_is_the_markdown_without_its_markup() -> None:
    text = messages.body(event(), ctx(runaway()))
    plain = messages.plain_text(text)
    assert plain.splitlines()[0] == "$17.00 spent today, 85% of the $20.00 daily limit."
    assert (
        "What to do: Find the job that is spending (budget-watchdog report shows which "
        "models), stop it, or raise budget.daily_limit." in plain
    )
    bullets = [line for line in plain.splitlines() if line.startswith("- ")]
    assert len(bullets) == len([line for line in text.splitlines() if line.startswith("- ")])
    assert "**" not in plain and "`" not in plain
    assert messages.plain_text("keep daily_limit and snake_case; _this_ loses marks") == (
        "keep daily_limit and snake_case; this loses marks"
    )


def test_route_gives_each_target_the_same_words() -> None:
    from watchdog.core.model import Recipient

    found = Finding("daily_limit", "warning", 17.0, 16.0, "x")
    rows = messages.route(
        [event(finding=found)],
        ctx(),
        [Recipient("a", ("warning",)), Recipient("b", ("critical",))],
        T0,
    )
    assert [r.target for r in rows] == ["a"]
    assert "Event time: 2026-11-27T14:09:00+00:00" in rows[0].body
