"""The runaway demo account, ticked with a hand-moved clock: findings within a minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import Clock, build_tick
from watchdog.config import Settings, load
from watchdog.providers.simulated import SimulatedAccount
from watchdog.tick import Tick


def demo_tick(tmp_path: Path, profile: str, clock: Clock) -> Tick:
    """The demo's tick (its limits, the simulated account) on a hand-moved clock."""
    settings = demo_settings(tmp_path)
    account = SimulatedAccount(profile, clock, start=clock.now)
    return build_tick(settings, account, clock)


def demo_settings(tmp_path: Path) -> Settings:
    return load(
        None,
        require_key=False,
        overrides={
            "budget": {"daily_limit": 20.0, "monthly_limit": 400.0},
            "state": {"path": str(tmp_path / "state.db")},
            "killswitch": {"path": str(tmp_path / "permit")},
        },
    ).settings


@pytest.mark.parametrize("start_hour", [0.5, 12.0, 23.5])
def test_runaway_raises_spike_daily_limit_and_buffer_within_a_demo_minute(
    tmp_path: Path, start_hour: float
) -> None:
    start = datetime(2026, 11, 18, tzinfo=UTC) + timedelta(hours=start_hour)
    clock = Clock(start)
    tick = demo_tick(tmp_path, "runaway", clock)
    seen: dict[str, datetime] = {}
    for _ in range(60):  # the demo's first real minute: 60 polls of simulated minutes
        for finding in tick.run().findings:
            seen.setdefault(finding.rule, clock.now)
        clock.advance(minutes=1)
    assert {"spike", "daily_limit", "buffer_days"} <= set(seen)
    assert seen["spike"] - start <= timedelta(minutes=15)


def test_steady_account_raises_nothing(tmp_path: Path) -> None:
    start = datetime(2026, 11, 18, 9, tzinfo=UTC)
    clock = Clock(start)
    tick = demo_tick(tmp_path, "steady", clock)
    for _ in range(120):
        assert tick.run().findings == []
        clock.advance(minutes=1)
