"""An idle key costs a dictionary lookup a poll: its curve's flat run is extended when the
curve is next read, not at every poll (watchdog.keyring). Each way of reading a curve
must see it as if every poll had extended it; a curve read stale would fail here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from watchdog.core import burn
from watchdog.core.model import BudgetPolicy, KeyBudget, KeySample, KeyUsage, Sample
from watchdog.keyring import KeyRing

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
BUDGET = BudgetPolicy()


def key(key_hash: str, usage: float) -> KeyUsage:
    return KeyUsage(usage=usage, usage_daily=usage, name=key_hash, hash=key_hash)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def eager(polls: Sequence[tuple[float, float]]) -> burn.History:
    """The curve as `History.add` draws it when every poll is added as it comes."""
    return burn.History.from_samples(
        [Sample(at(minute), usage, usage_daily=usage) for minute, usage in polls]
    )


def curve(history: burn.History) -> tuple[list[float], list[float]]:
    return list(history.ts), list(history.spend)


def test_every_way_of_reading_an_idle_curve_sees_the_last_poll() -> None:
    ring = KeyRing()
    rows = {"a": key("a", 1.0), "b": key("b", 2.0)}  # the same rows, as the provider gives
    for minute in range(30):
        ring.absorb(list(rows.values()), at(minute), BUDGET)
    want = eager([(m, 1.0) for m in range(30)])
    assert curve(ring.inputs().histories["a"]) == curve(want)  # what decide reads
    assert curve(ring.curve("b")) == curve(eager([(m, 2.0) for m in range(30)]))
    assert curve(ring.histories["a"]) == curve(want)
    ring.absorb(list(rows.values()), at(30), BUDGET)
    measured = burn.measure(ring.histories["a"], at(30), UTC, account=False)
    assert measured.rate_1h.covered == timedelta(minutes=30)  # up to this poll, not before


def test_a_key_that_moves_after_idling_keeps_the_end_of_its_flat_run() -> None:
    ring = KeyRing()
    idle = key("k", 1.0)
    for minute in range(10):
        assert ring.absorb([idle], at(minute), BUDGET) == [] or minute == 0
    kept = ring.absorb([key("k", 3.0)], at(10), BUDGET)
    assert [(s.ts, s.usage) for s in kept] == [(at(9), 1.0), (at(10), 3.0)]
    want = eager([(m, 1.0) for m in range(10)] + [(10, 3.0)])
    assert curve(ring.histories["k"]) == curve(want)
    # The step fell after the flat run's end: none of it is spread over the idle minutes.
    assert ring.histories["k"].window(at(8), at(9)) == (0.0, timedelta(minutes=1))


def test_a_key_missing_from_a_listing_is_flat_only_to_the_last_poll_that_listed_it() -> None:
    ring = KeyRing()
    a, b = key("a", 1.0), key("b", 5.0)
    for minute in range(5):
        ring.absorb([a, b], at(minute), BUDGET)
    for minute in range(5, 8):
        ring.absorb([a], at(minute), BUDGET)  # b is not listed
    assert curve(ring.histories["b"]) == curve(eager([(m, 5.0) for m in range(5)]))
    kept = ring.absorb([a, key("b", 6.0)], at(8), BUDGET)  # back, and it spent meanwhile
    assert [(s.ts, s.usage) for s in kept] == [(at(4), 5.0), (at(8), 6.0)]
    assert curve(ring.histories["b"]) == curve(eager([(m, 5.0) for m in range(5)] + [(8, 6.0)]))


def test_after_the_clock_steps_back_no_curve_runs_past_what_polled_it() -> None:
    ring = KeyRing()
    old = key("old", 1.0)
    for minute in range(5):
        ring.absorb([old], at(minute), BUDGET)
    ring.absorb([old, key("new", 2.0)], at(2), BUDGET)  # the clock stepped back 2 minutes
    ring.absorb([old, key("new", 2.0)], at(3), BUDGET)
    ring.absorb([old, key("new", 2.0)], at(3.5), BUDGET)
    assert curve(ring.histories["old"]) == curve(eager([(m, 1.0) for m in range(5)]))
    # The key first listed after the step is flat from then, not from the earlier clock.
    assert curve(ring.histories["new"]) == curve(eager([(2, 2.0), (3.5, 2.0)]))
    ring.absorb([old, key("new", 2.0)], at(6), BUDGET)  # past the step again
    assert curve(ring.inputs().histories["old"]) == curve(eager([(m, 1.0) for m in range(7)]))


def test_a_leader_turned_follower_keeps_its_own_last_polls_before_the_leaders() -> None:
    """A ring that led (its idle keys' flat runs not yet extended) and then follows: the
    samples the new leader stored come after what its own polls proved."""
    ring = KeyRing()
    for minute in range(10):
        ring.absorb([key("k", 1.0)], at(minute), BUDGET)
    moved = KeySample("k", at(15), 3.0, usage_daily=3.0)
    ring.follow({"k": [moved]}, at(15))
    assert curve(ring.curve("k")) == curve(eager([(m, 1.0) for m in range(10)] + [(15, 3.0)]))


def test_a_restart_between_two_idle_polls_rebuilds_the_same_curve(tmp_path: object) -> None:
    """The samples kept (each change, and the flat run's end before it) rebuild the same
    curve the lazy extension gives, whichever is read first."""
    from pathlib import Path

    from watchdog.store import Store

    store = Store(Path(str(tmp_path)) / "state.db")
    ring = KeyRing()
    usages = [1.0] * 20 + [2.0] + [2.0] * 20 + [4.0, 5.0] + [5.0] * 10
    for minute, usage in enumerate(usages):
        with store.unit() as unit:
            unit.add_key_samples(ring.absorb([key("k", usage)], at(minute), BUDGET))
    now = at(len(usages) - 1)
    again = KeyRing.resume(store, now - timedelta(days=40), now)
    assert again.absorb([key("k", 5.0)], now, BUDGET) == []
    assert curve(again.histories["k"]) == curve(ring.histories["k"])
    assert burn.measure(again.curve("k"), now, UTC) == burn.measure(ring.curve("k"), now, UTC)


def test_a_spending_keys_budget_entry_follows_renames_and_new_policies() -> None:
    """Its [[budget.keys]] entry is matched again when its name or label changes or the
    policy is new (a reload), and kept while it only spends."""
    batch = KeyBudget("batch-*", daily_limit=5.0)
    ui = KeyBudget("ui", daily_limit=1.0)
    first = BudgetPolicy(keys=(batch,))
    ring = KeyRing()

    def entry(name: str, usage: float, minute: int, policy: BudgetPolicy) -> KeyBudget | None:
        row = KeyUsage(usage=usage, usage_daily=usage, name=name, hash="h")
        ring.absorb([row], at(minute), policy)
        return ring.facts["h"].budget

    assert entry("batch-1", 1.0, 0, first) is batch
    assert entry("batch-1", 2.0, 1, first) is batch  # spends: kept
    assert entry("ui", 3.0, 2, first) is None  # renamed: no entry matches "ui" here
    assert entry("ui", 4.0, 3, BudgetPolicy(keys=(ui,))) is ui  # reloaded: matched again
    assert entry("batch-2", 5.0, 4, first) is batch
