"""The simulated account: deterministic, monotonic, and each profile does what it says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchdog.providers.simulated import SIM_KEY_HASH, SimulatedAccount

START = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_same_clock_same_numbers() -> None:
    a = SimulatedAccount("steady", Clock(START + timedelta(hours=3)), start=START).fetch()
    b = SimulatedAccount("steady", Clock(START + timedelta(hours=3)), start=START).fetch()
    assert a == b


def test_usage_never_decreases_and_windows_nest() -> None:
    clock = Clock(START)
    account = SimulatedAccount("steady", clock, start=START)
    previous = -1.0
    for minutes in range(0, 3 * 24 * 60, 37):
        clock.now = START + timedelta(minutes=minutes)
        key = account.fetch().key
        assert key is not None
        assert key.usage >= previous
        assert key.usage_daily is not None and key.usage_weekly is not None
        assert key.usage_monthly is not None
        assert 0 <= key.usage_daily <= key.usage_weekly
        assert key.usage_daily <= key.usage_monthly
        previous = key.usage


def test_steady_profile_spends_about_its_base_rate() -> None:
    clock = Clock(START)
    account = SimulatedAccount("steady", clock, start=START)
    before = account.fetch().usage
    clock.now = START + timedelta(days=1)
    assert account.fetch().usage - before == pytest.approx(0.40 * 24, rel=1e-6)


def test_runaway_profile_burns_fast_after_five_minutes() -> None:
    clock = Clock(START)
    account = SimulatedAccount("runaway", clock, start=START)
    at_start = account.fetch().usage
    clock.now = START + timedelta(minutes=5)
    at_onset = account.fetch().usage
    clock.now = START + timedelta(minutes=65)
    assert at_onset - at_start < 0.1
    assert account.fetch().usage - at_onset == pytest.approx(30.4, abs=0.3)


def test_topup_raises_credits_not_usage() -> None:
    clock = Clock(START + timedelta(minutes=29))
    account = SimulatedAccount("topup", clock, start=START)
    before = account.fetch()
    clock.now = START + timedelta(minutes=31)
    after = account.fetch()
    assert before.credits is not None and after.credits is not None
    assert after.credits.total_credits - before.credits.total_credits == pytest.approx(100.0)
    assert after.usage >= before.usage
    assert after.balance is not None and before.balance is not None
    assert after.balance > before.balance + 99


def test_a_disabled_key_stops_spending_until_enabled() -> None:
    clock = Clock(START + timedelta(minutes=10))
    account = SimulatedAccount("runaway", clock, start=START)
    account.set_key_disabled(SIM_KEY_HASH, True)
    frozen = account.fetch()
    assert frozen.key is not None and frozen.key.disabled
    clock.now += timedelta(hours=1)
    assert account.fetch().usage == frozen.usage
    account.set_key_disabled(SIM_KEY_HASH, False)
    clock.now += timedelta(minutes=30)
    assert account.fetch().usage == pytest.approx(frozen.usage + 15.2, abs=0.2)


def test_activity_covers_thirty_days_in_three_models() -> None:
    rows = SimulatedAccount("steady", Clock(START), start=START).activity()
    assert len({r.date for r in rows}) == 30
    assert {r.model for r in rows} == {
        "anthropic/claude-sonnet-4",
        "openai/gpt-4.1-mini",
        "google/gemini-2.5-flash",
    }
    assert sum(r.usage for r in rows) == pytest.approx(0.40 * 24 * 30, rel=1e-3)
