"""The shortcuts `decide` takes with many keys, each checked against what it stands for:
a key listed exactly as before keeps its judgement until it is due, a key that spends is
measured afresh every tick, the keys followed are looked at again only when a listing
could change them, and each key's budget policy is made once per (policy, entry). A
shortcut that served stale numbers or skipped a change would fail here."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.fakes import KeysTicks
from watchdog.core import burn, keys
from watchdog.core.model import (
    BudgetPolicy,
    KeyBudget,
    KeySample,
    Policy,
)

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
BATCH = KeyBudget("batch-*", daily_limit=5.0, action="revoke")
POLICY = Policy(budget=BudgetPolicy(keys=(BATCH,), spike_min_rate=1000.0))  # limits only


class Account(KeysTicks):
    """Keys polled each `tick` as watchdog.keyring lists them: an unchanged key keeps
    the very facts object of the last listing; a changed one gets new facts."""

    def __init__(self, usage: dict[str, float], policy: Policy = POLICY) -> None:
        super().__init__(usage, policy, T0)
        self.hidden: set[str] = set()
        self.facts: dict[str, keys.KeyFacts] = {}

    def listed(self) -> list[keys.KeyFacts]:
        out = []
        for h, usage in self.usage.items():
            if h in self.hidden:
                continue
            before = self.facts.get(h)
            if before is not None and (before.latest.usage, before.name) == (usage, self.names[h]):
                history = self.histories[h]
                history.touch(self.now.timestamp())
                out.append(before)
                continue
            sample = KeySample(h, self.now, usage, usage_daily=usage)
            self.histories.setdefault(h, burn.History()).add(sample.to_sample())
            facts = keys.facts_of([(sample, self.names[h], None, None)], self.policy.budget)[0]
            self.facts[h] = facts
            out.append(facts)
        return out


def test_a_key_that_spends_is_measured_afresh_every_tick_and_an_idle_one_is_not() -> None:
    a = Account({"batch-spender": 0.0, "idle": 1.0})
    first = a.tick()
    for minute in range(1, 40):
        a.usage["batch-spender"] = 0.1 * minute
        o = a.tick()
        j = o.judgements["batch-spender"]
        assert j.measured_at == a.now
        alone = burn.measure(a.histories["batch-spender"], a.now, UTC, account=False)
        assert j.metrics == alone
        assert o.judgements["idle"] is first.judgements["idle"]  # nothing due
    assert j.metrics.spent_today == pytest.approx(3.9)
    assert j.own.headroom == pytest.approx(5.0 - 3.9)


def test_a_key_that_crosses_its_limit_while_spending_fires_at_once() -> None:
    a = Account({"batch-1": 0.0, "other": 0.0})
    a.tick()
    fired = []
    for minute in range(1, 12):
        a.usage["batch-1"] = 0.5 * minute
        o = a.tick()
        fired += [(minute, e.kind, e.severity) for e in o.events if e.key == "batch-1"]
    # $0.50 a minute against $5: the warning at $4.00, the prediction one poll before $5.
    assert fired[:2] == [(8, "firing", "warning"), (9, "escalated", "critical")]


def test_a_key_renamed_while_it_spends_is_followed_and_keeps_its_alert() -> None:
    a = Account({"h1": 0.0, "h2": 0.0})
    a.names["h1"] = "batch-1"
    a.tick()
    a.usage["h1"] = 6.0
    since = a.tick().alerts[("daily_limit", "batch-1")].since
    a.usage["h1"], a.usage["h2"] = 6.5, 1.0  # both spend; one is renamed too
    a.names["h1"] = "batch-one"
    o = a.tick()
    assert [(what, key.name) for what, key, _ in o.key_changes] == [("renamed", "batch-one")]
    assert o.known["h1"].name == "batch-one"
    assert o.alerts[("daily_limit", "batch-one")].since == since


def test_a_key_that_spends_under_the_same_name_changes_nothing_followed() -> None:
    a = Account({"h1": 0.0, "h2": 0.0})
    a.tick()
    before = a.known
    a.usage["h1"] = 1.0
    o = a.tick()
    assert o.key_changes == [] and o.known == before


def test_a_key_back_after_a_missed_listing_is_followed_again() -> None:
    """Back with the same name and new counters: no rename, but no longer missing."""
    a = Account({"h1": 0.0, "h2": 0.0})
    a.tick()
    a.hidden.add("h1")
    missed = a.tick()
    assert [what for what, _, _ in missed.key_changes] == ["missing"]
    a.hidden.clear()
    a.usage["h1"] = 0.5
    back = a.tick()
    assert back.known["h1"].missing_since is None and back.key_changes == []
    assert back.judgements["h1"].metrics.spent_today == 0.5
    a.hidden.add("h1")
    assert [what for what, _, _ in a.tick().key_changes] == ["missing"]
    gone = a.tick()  # missed twice in a row: deleted
    assert [what for what, _, _ in gone.key_changes] == ["deleted"]
    assert "h1" not in gone.judgements


def test_a_new_policy_judges_a_key_by_its_own_numbers_not_the_last_policys() -> None:
    """The policy a key is judged by is made once per (policy, entry) and kept: another
    policy with the same entry object gets its own."""
    a = Account({"batch-1": 0.0})
    a.tick()
    a.usage["batch-1"] = 3.0  # 60% of $5, at $3/h: no prediction
    assert a.tick(60).judgements["batch-1"].findings == ()
    stricter = replace(POLICY, budget=replace(POLICY.budget, warn_ratio=0.5))
    assert stricter.budget.keys[0] is BATCH
    a.usage["batch-1"] = 3.1
    o = a.tick(60, policy=stricter)
    assert [(f.rule, f.severity) for f in o.judgements["batch-1"].findings] == [
        ("daily_limit", "warning")
    ]
    a.usage["batch-1"] = 3.2
    assert a.tick(60).judgements["batch-1"].findings == ()  # the first policy again
    assert keys.key_budget_policy(POLICY.budget, BATCH).daily_limit == 5.0
    assert keys.key_budget_policy(stricter.budget, BATCH).warn_ratio == 0.5
    assert keys.key_budget_policy(stricter.budget, None).daily_limit is None
