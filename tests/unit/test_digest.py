"""When the digest is due and what it says, with plain values."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.core import burn
from watchdog.core.digest import DigestPolicy, Fired, compose, due, latest_slot, slot_at
from watchdog.core.model import BudgetPolicy, Sample

BERLIN = ZoneInfo("Europe/Berlin")
WEEKLY = DigestPolicy("weekly", "mon", time(9, 0))
DAILY = DigestPolicy("daily", "mon", time(9, 0))
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def test_weekly_is_due_on_the_day_at_the_local_time() -> None:
    monday_0800_utc = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Berlin (CET)
    assert due(monday_0800_utc - timedelta(seconds=1), None, LONG_AGO, WEEKLY, BERLIN) != (
        monday_0800_utc
    )
    assert due(monday_0800_utc, None, LONG_AGO, WEEKLY, BERLIN) == monday_0800_utc


def test_never_twice_for_the_same_slot() -> None:
    slot = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    later = slot + timedelta(hours=3)
    assert due(later, slot, LONG_AGO, WEEKLY, BERLIN) is None


def test_after_downtime_it_catches_up_once_with_the_latest_slot() -> None:
    last = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # sent three weeks ago
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # down since: two Mondays missed
    slot = due(now, last, LONG_AGO, WEEKLY, BERLIN)
    assert slot == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert due(now, slot, LONG_AGO, WEEKLY, BERLIN) is None


def test_a_first_start_sends_nothing_for_slots_before_it() -> None:
    started = datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert due(started + timedelta(hours=1), None, started, DAILY, BERLIN) is None
    next_day = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    assert due(next_day, None, started, DAILY, BERLIN) == next_day


def test_the_local_time_follows_dst() -> None:
    summer = slot_at(datetime(2026, 7, 6).date(), time(9, 0), BERLIN)
    winter = slot_at(datetime(2026, 12, 7).date(), time(9, 0), BERLIN)
    assert summer.hour == 7 and winter.hour == 8  # 09:00 CEST and 09:00 CET, in UTC


def test_a_skipped_local_time_still_goes_out_once() -> None:
    spring = datetime(2026, 3, 29).date()  # Berlin skips 02:00-03:00
    slot = slot_at(spring, time(2, 30), BERLIN)
    assert slot.astimezone(BERLIN).hour == 3
    policy = DigestPolicy("daily", "mon", time(2, 30))
    assert latest_slot(slot + timedelta(minutes=1), policy, BERLIN) == slot


def test_off_is_never_due() -> None:
    now = datetime(2026, 11, 23, 9, tzinfo=UTC)
    assert due(now, None, LONG_AGO, DigestPolicy("off"), BERLIN) is None


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1), timezones=st.just(UTC)
    ),
    steps=st.lists(st.integers(min_value=1, max_value=6 * 3600), min_size=1, max_size=80),
)
def test_each_slot_is_sent_at_most_once_whatever_the_ticks(
    start: datetime, steps: list[int]
) -> None:
    now, last, sent = start, None, []
    for step in steps:
        now += timedelta(seconds=step)
        slot = due(now, last, start, DAILY, BERLIN)
        if slot is not None:
            sent.append(slot)
            last = slot
    assert len(sent) == len(set(sent))
    assert all(slot <= now for slot in sent)


def test_the_message_names_spend_limits_models_savings_and_what_fired() -> None:
    now = datetime(2026, 11, 23, 8, tzinfo=UTC)
    history = burn.History.from_samples([Sample(now, 100.0, usage_daily=3.0, balance=90.0)])
    budget = BudgetPolicy(timezone="Europe/Berlin", tz=BERLIN, monthly_limit=400.0)
    title, body = compose(
        start=now - timedelta(days=7),
        end=now,
        metrics=burn.measure(history, now, BERLIN),
        budget=budget,
        period_spend=41.5,
        top_models=[("openai/gpt-4.1", "OpenAI", 30.0), ("meta/llama", "Groq", 10.0)],
        savings=[("switch provider", 5.0), ("trim prompts", 2.0)],
        caps="2 keys capped, none hit",
        fired=[Fired("spike", "warning", 3)],
    )
    assert title.startswith("[DIGEST]")
    assert "$41.50" in body and "of $400.00" in body
    assert "openai/gpt-4.1 via OpenAI: $30.00 (75% of these)" in body
    assert "- $5.00: switch provider" in body
    assert "- spike (warning), 3 times" in body
    assert "2 keys capped, none hit" in body
