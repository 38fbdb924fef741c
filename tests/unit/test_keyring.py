"""The tick's memory of every key: what is kept (counters when they change, with the last
unchanged sample before a change), what a restart rebuilds from a real SQLite file, and
which keys' baselines are asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watchdog.core import burn
from watchdog.core.model import BudgetPolicy, KeyBudget, KeyUsage
from watchdog.keyring import ASK_EVERY, KeyRing
from watchdog.store import Store

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
BUDGET = BudgetPolicy()


def key(key_hash: str, usage: float, **fields: object) -> KeyUsage:
    return KeyUsage(usage=usage, usage_daily=usage, name=key_hash, hash=key_hash, **fields)  # type: ignore[arg-type]


def test_an_idle_key_keeps_no_rows_until_it_moves(tmp_path: Path) -> None:
    ring = KeyRing()
    kept = []
    for minute in range(10):
        kept += ring.absorb([key("idle", 1.0)], T0 + timedelta(minutes=minute), BUDGET)
    assert [s.ts for s in kept] == [T0]  # only the first
    kept = ring.absorb([key("idle", 2.0)], T0 + timedelta(minutes=10), BUDGET)
    # The flat run's end, then the change: a restart rebuilds the same curve.
    assert [(s.ts, s.usage) for s in kept] == [
        (T0 + timedelta(minutes=9), 1.0),
        (T0 + timedelta(minutes=10), 2.0),
    ]
    assert ring.moved == ["idle"]


def test_another_budget_matches_every_key_again_idle_ones_too() -> None:
    """A key listed exactly as before keeps its facts, but not across a new [budget]: its
    [[budget.keys]] entry is the new budget's, and the new entries are not "unmatched"."""
    old = BudgetPolicy(keys=(KeyBudget("batch-*", daily_limit=5.0, action="revoke"),))
    new = BudgetPolicy(keys=(KeyBudget("batch-*", daily_limit=1.0, action="disable"),))
    ring = KeyRing()
    row = KeyUsage(usage=0.0, name="batch-1", hash="h1")
    for minute, budget in enumerate((old, old, new, new)):
        kept = ring.absorb([row], T0 + timedelta(minutes=minute), budget)
        assert ring.facts["h1"].budget is budget.keys[0], minute
        assert ring.unmatched(budget) == []
        if minute:
            assert kept == []  # idle: no new row for it, whatever the budget
    assert ring.moved == [] and ring.entries_moved is False


def test_a_restart_rebuilds_the_same_numbers(tmp_path: Path) -> None:
    ring = KeyRing()
    store = Store(tmp_path / "state.db")
    now = T0
    for minute, usage in enumerate([1.0] * 30 + [1.5, 2.0, 4.0] + [4.0] * 10):
        now = T0 + timedelta(minutes=minute)
        with store.unit() as unit:
            unit.add_key_samples(ring.absorb([key("k", usage)], now, BUDGET))
    before = burn.measure(ring.histories["k"], now, UTC)
    # The restarted daemon's first poll sees the same counters: the flat run since the
    # last change (not stored yet) is known again, and every number is as before.
    again = KeyRing.resume(store, now - timedelta(days=40), now)
    assert again.absorb([key("k", 4.0)], now, BUDGET) == []
    after = burn.measure(again.histories["k"], now, UTC)
    assert after.spent_today == before.spent_today == 4.0
    assert after.rate_1h.per_hour == before.rate_1h.per_hour
    assert again.last["k"].usage == 4.0


def test_baselines_are_asked_for_keys_that_spend_a_few_a_tick_once_a_day() -> None:
    ring = KeyRing()
    ring.absorb([key(f"k{i}", 0.0) for i in range(5)], T0, BUDGET)
    assert ring.to_ask(T0, 3) == ["k0", "k1", "k2"]  # new keys moved: the first three
    for h in ("k0", "k1", "k2"):
        ring.learn(h, burn.Prior(activity_daily=2.0, activity_days=30), T0)
    ring.absorb([key(f"k{i}", 1.0) for i in range(5)], T0 + timedelta(minutes=1), BUDGET)
    assert ring.to_ask(T0 + timedelta(minutes=1), 3) == ["k3", "k4"]
    ring.absorb([key(f"k{i}", 1.0) for i in range(5)], T0 + timedelta(minutes=2), BUDGET)
    assert ring.to_ask(T0 + timedelta(minutes=2), 3) == []  # idle keys are not asked
    later = T0 + ASK_EVERY + timedelta(minutes=3)
    ring.absorb([key(f"k{i}", 2.0) for i in range(5)], later, BUDGET)
    assert ring.to_ask(later, 3) == ["k0", "k1", "k2"]
    assert ring.inputs().priors["k0"].activity_daily == 2.0


class _Admin:
    """The management side a tick with keys uses, recording what it is asked."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, bool]] = []

    def activity(self, *, api_key_hash: str | None = None, day: object = None) -> list[object]:
        return []

    def set_key_disabled(self, key_hash: str, disabled: bool) -> None:
        self.patches.append((key_hash, disabled))

    def remember_watched_key(self, key_hash: str) -> None:
        return None


def test_a_key_file_that_cannot_be_written_never_keeps_the_account_permit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The account's permit is revoked when it must be, whatever a key's file does."""
    from tests.fakes import Clock, ScriptedProvider
    from watchdog.config import load
    from watchdog.core.model import Credits, Snapshot
    from watchdog.log import get_logger
    from watchdog.permitfile import Issuer, KeyPermits, keys_directory
    from watchdog.tick import Tick

    settings = load(
        None,
        require_key=False,
        overrides={
            "budget": {"daily_limit": 5.0},
            "state": {"path": str(tmp_path / "state.db")},
            "killswitch": {"path": str(tmp_path / "permit")},
            "provider": {"management_key": "sk-or-v1-" + "0" * 64},
        },
    ).settings
    clock = Clock(T0)

    def snap(usage: float) -> Snapshot:
        k = key("k1", usage)
        return Snapshot(clock(), credits=Credits(100.0, usage), keys=(k,))

    provider = ScriptedProvider(clock, [snap(0.0), snap(0.5), snap(9.0)])
    issuer = Issuer(settings.killswitch.path, clock)
    key_permits = KeyPermits(keys_directory(settings.killswitch.path), clock)
    issuer.keys_epoch = key_permits.start()
    tick = Tick(
        policy=settings.policy(),
        provider=provider,
        admin=_Admin(),  # type: ignore[arg-type]
        store=Store(settings.state.path),
        permit=issuer,
        clock=clock,
        log=get_logger(),
        key_permits=key_permits,
    )
    tick.run()
    clock.advance(minutes=1)
    tick.run()
    assert settings.killswitch.path.exists()

    def full(*args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(key_permits, "update", full)
    clock.advance(minutes=1)
    result = tick.run()  # $9 of a $5 daily limit: revoked, though the key files fail
    assert result.outcome is not None and not result.outcome.decision.armed
    assert not settings.killswitch.path.exists()
