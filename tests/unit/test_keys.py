"""Every key of the account, judged with plain values: facts, histories and judgements in,
findings, permits, alert moves and provider actions out (watchdog.core.keys via decide)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import KeysTicks
from watchdog.core import burn, keys
from watchdog.core.decide import Outcome
from watchdog.core.model import (
    BudgetPolicy,
    KeyBudget,
    KeySample,
    KillswitchPolicy,
    Policy,
    Sample,
)

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
BATCH = KeyBudget("batch-*", daily_limit=5.0, monthly_limit=100.0, action="revoke")
POLICY = Policy(budget=BudgetPolicy(daily_limit=50.0, keys=(BATCH,)))


class Keys(KeysTicks):
    """A hand-moved account of keys: usage per key, polled each `tick`."""

    def __init__(self, usage: dict[str, float], policy: Policy = POLICY) -> None:
        super().__init__(usage, policy, T0)
        self.disabled: set[str] = set()
        self.daily: dict[str, float] = {}  # usage_daily where it differs from usage

    def listed(self) -> list[keys.KeyFacts]:
        rows = []
        for key_hash, usage in self.usage.items():
            sample = KeySample(
                key_hash,
                self.now,
                usage,
                usage_daily=self.daily.get(key_hash, usage),
                disabled=key_hash in self.disabled,
            )
            self.histories.setdefault(key_hash, burn.History()).add(sample.to_sample())
            rows.append((sample, self.names[key_hash], None, None))
        return keys.facts_of(rows, self.policy.budget)


def verdict(o: Outcome, name: str) -> keys.KeyVerdict:
    return next(v for v in o.verdicts if v.name == name)


def test_a_runaway_key_loses_only_its_own_permit() -> None:
    k = Keys({"batch-1": 0.0, "summariser": 0.0})
    k.tick()
    k.usage["batch-1"] = 6.0  # over its $5 daily limit
    k.usage["summariser"] = 1.0
    o = k.tick()
    assert o.decision.armed  # the account's permit stands
    assert not verdict(o, "batch-1").armed
    assert "Key batch-1: $6.00 spent today" in verdict(o, "batch-1").reason
    assert verdict(o, "summariser").armed
    finding = next(f for f in o.events if f.key == "batch-1")
    assert finding.rule == "daily_limit" and finding.severity == "critical"
    titles = [r.title for r in o.outbox]
    assert any("daily_limit on key batch-1" in t for t in titles)
    body = next(r.body for r in o.outbox if "batch-1" in r.title)
    assert "Runway" not in body and "Spent today: $6.00 of $5.00" in body


def test_a_key_without_a_revoking_entry_only_alerts() -> None:
    alerting = Policy(budget=BudgetPolicy(keys=(replace(BATCH, action="alert"),)))
    k = Keys({"batch-1": 0.0}, alerting)
    k.tick()
    k.usage["batch-1"] = 9.0
    o = k.tick()
    assert verdict(o, "batch-1").armed
    assert [e.rule for e in o.events] == ["daily_limit"]


def test_every_key_loses_its_permit_with_the_account() -> None:
    k = Keys({"batch-1": 0.0, "summariser": 0.0})
    o = k.tick(armed=False)
    assert not o.decision.armed
    assert all(not v.armed and "account's permit is revoked" in v.reason for v in o.verdicts)


def test_a_key_disabled_at_the_provider_has_no_permit() -> None:
    k = Keys({"summariser": 0.0})
    k.disabled.add("summariser")
    o = k.tick()
    assert not verdict(o, "summariser").armed
    assert "disabled at the provider" in verdict(o, "summariser").reason


def test_a_provider_limit_is_judged_whatever_its_reset() -> None:
    k = Keys({"interactive": 0.0})
    k.tick()
    k.now += timedelta(minutes=1)
    sample = KeySample(
        "interactive",
        k.now,
        9.9,
        usage_daily=9.9,
        key_limit=10.0,
        key_limit_remaining=0.0,
        limit_reset="daily",
    )
    k.histories["interactive"].add(sample.to_sample())
    facts = keys.facts_of([(sample, "interactive", None, None)], POLICY.budget)
    j = keys.judge(
        facts[0],
        k.histories["interactive"],
        k.now,
        POLICY.budget,
        horizon=timedelta(minutes=1),
        killswitch=POLICY.killswitch,
    )
    assert [(f.rule, f.severity, f.key) for f in j.findings] == [
        ("key_limit", "critical", "interactive")
    ]


def test_a_rename_keeps_the_alert_and_its_start() -> None:
    k = Keys({"batch-1": 0.0})
    k.tick()
    k.usage["batch-1"] = 6.0
    first = k.tick()
    since = first.alerts[("daily_limit", "batch-1")].since
    k.names["batch-1"] = "batch-renamed"
    o = k.tick()
    assert ("daily_limit", "batch-1") not in o.alerts
    assert o.alerts[("daily_limit", "batch-renamed")].since == since
    assert [e for e in o.events if e.rule == "daily_limit"] == []  # not resolved, re-fired
    assert [what for what, _, _ in o.key_changes] == ["renamed"]
    assert o.known["batch-1"].name == "batch-renamed"  # followed by hash


def test_a_deleted_key_gets_one_notice_and_no_resolution() -> None:
    k = Keys({"batch-1": 0.0, "summariser": 0.0})
    k.tick()
    k.usage["batch-1"] = 6.0
    k.tick()
    del k.usage["batch-1"]
    missed = k.tick()  # one listing without it is not a deletion (paging can skip a key)
    assert [what for what, _, _ in missed.key_changes] == ["missing"]
    assert not verdict(missed, "batch-1").armed  # judged as it was, until a listing says more
    assert missed.events == []
    o = k.tick()
    assert [(e.kind, e.rule, e.key) for e in o.events] == [("notice", "key_deleted", "batch-1")]
    assert not any(ident[1] == "batch-1" for ident in o.alerts)
    assert "batch-1" not in o.judgements and o.known["batch-1"].deleted_at == k.now
    assert [r.title for r in o.outbox] == ["[NOTICE] key_deleted on key batch-1 (budget-watchdog)"]
    assert k.tick().events == []  # told once


def test_an_idle_key_is_not_measured_again_every_tick() -> None:
    k = Keys({"quiet": 1.0})
    first = k.tick()
    again = k.tick()
    assert again.judgements["quiet"].measured_at == first.judgements["quiet"].measured_at
    k.usage["quiet"] = 1.5
    moved = k.tick()
    assert moved.judgements["quiet"].measured_at == k.now
    assert keys.needs_judging(moved.judgements["quiet"], k.listed()[0], k.now + keys.REFRESH_IDLE)


def test_names_two_keys_share_get_the_hash_after_them() -> None:
    assert keys.unique_names([("aaaa1111bbbb", "x"), ("cccc2222dddd", "x"), ("e", "y")]) == {
        "aaaa1111bbbb": "x~aaaa1111",
        "cccc2222dddd": "x~cccc2222",
        "e": "y",
    }


def test_two_keys_of_one_name_whose_hashes_start_alike_get_distinct_names() -> None:
    """Their short names would be the same (one permit file for both: a revoked key
    could read as go); the second gets the whole hash, and a name taken that way too
    gets a count after it."""
    a, b = "abcdef01" + "0" * 56, "abcdef01" + "1" * 56
    names = keys.unique_names([(a, "batch"), (b, "batch"), ("c", "batch~abcdef01")])
    assert names == {a: "batch~" + a, b: "batch~" + b, "c": "batch~abcdef01"}
    names = keys.unique_names([(a, "batch"), (b, "batch")])
    assert names == {a: "batch~abcdef01", b: "batch~" + b}
    names = keys.unique_names([(a, "x"), (b, "x"), ("d", f"x~{b}")])
    assert names[b] == f"x~{b}~2" and len(set(names.values())) == 3


def test_a_budget_entry_matches_name_label_or_full_hash() -> None:
    entry = KeyBudget("batch-*")
    assert entry.matches("batch-pipeline", None, "h")
    assert entry.matches(None, "batch-label", "h")
    assert not entry.matches("Batch-pipeline", "other", "h")  # case-sensitive
    assert KeyBudget("f01d" * 16).matches("anything", None, "f01d" * 16)
    assert not KeyBudget("f01d").matches("anything", None, "f01d" * 16)


def test_headroom_is_the_nearest_limit() -> None:
    k = Keys({"batch-1": 0.0})
    k.tick()
    k.usage["batch-1"] = 3.0
    assert verdict(k.tick(), "batch-1").headroom == 2.0


def test_disable_and_re_enable_only_what_we_disabled() -> None:
    policy = Policy(budget=BudgetPolicy(keys=(replace(BATCH, action="disable"),)))
    k = Keys({"batch-1": 0.0, "batch-2": 0.0}, policy)
    k.tick()
    k.usage["batch-1"] = 6.0
    o = k.tick()
    listed = {"batch-1", "batch-2"}
    disable, enable = keys.provider_actions(o.judgements, [], {}, ("critical",), listed)
    assert [(h, n) for h, n, _ in disable] == [("batch-1", "batch-1")] and enable == []
    # Disabled by us: still wanted disabled while the finding lasts, never twice.
    ours = {"batch-1": "batch-1"}
    assert keys.provider_actions(o.judgements, [], ours, ("critical",), listed) == ([], [])
    # Someone else disabled batch-2: never re-enabled by us.
    k.disabled.add("batch-2")
    o = k.tick()
    assert keys.provider_actions(o.judgements, [], {}, ("critical",), listed)[1] == []
    # The next day batch-1's findings clear: re-enabled, because we disabled it.
    k.now += timedelta(days=1)
    k.daily["batch-1"] = 0.0
    cleared = k.tick(minutes=90)
    assert not any(j.findings for j in cleared.judgements.values())
    assert keys.provider_actions(cleared.judgements, [], ours, ("critical",), listed) == (
        [],
        [("batch-1", "batch-1")],
    )
    # Without this tick's listing (a failed poll, a restart), nothing is re-enabled.
    assert keys.provider_actions(cleared.judgements, [], ours, ("critical",), set()) == ([], [])


def test_the_account_kill_switch_still_disables_the_watched_keys() -> None:
    disable, enable = keys.provider_actions(
        {}, [("h1", "batch")], {"h2": "other"}, ("critical",), {"h1", "h2"}
    )
    assert disable == [("h1", "batch", "the account's permit is revoked")]
    assert enable == [("h2", "other")]


def test_an_idle_curve_keeps_two_points_and_the_same_numbers() -> None:
    h = burn.History()
    for minute in range(120):
        h.add(Sample(T0 + timedelta(minutes=minute), 5.0, usage_daily=5.0))
    assert len(h) == 2
    h.add(Sample(T0 + timedelta(minutes=120), 6.0, usage_daily=6.0))
    assert len(h) == 3
    got = h.window(T0 + timedelta(minutes=119), T0 + timedelta(minutes=120))
    assert got is not None and got[0] == 1.0  # the step fell after the flat run's end
    m = burn.measure(h, T0 + timedelta(minutes=120), UTC)
    assert m.spent_today == 6.0


def test_killswitch_revoke_on_warning_revokes_a_key_on_its_warning() -> None:
    policy = Policy(
        budget=BudgetPolicy(keys=(BATCH,)),
        killswitch=KillswitchPolicy(revoke_on=("warning", "critical")),
    )
    k = Keys({"batch-1": 0.0}, policy)
    k.tick()
    k.usage["batch-1"] = 4.5  # 90% of $5: a warning
    assert not verdict(k.tick(), "batch-1").armed


def test_two_keys_that_swap_names_keep_their_own_alerts() -> None:
    k = Keys({"alpha": 0.0, "beta": 0.0}, Policy(budget=BudgetPolicy(keys=(KeyBudget("*", 5.0),))))
    k.tick()
    k.usage["alpha"] = 6.0
    since = k.tick().alerts[("daily_limit", "alpha")].since
    k.names.update(alpha="beta", beta="alpha")
    o = k.tick()
    assert o.alerts[("daily_limit", "beta")].since == since  # the runaway, now named beta
    assert ("daily_limit", "alpha") not in o.alerts
    assert [e for e in o.events if e.rule == "daily_limit"] == []


def test_names_no_one_could_store_or_tell_apart_are_made_unique() -> None:
    names = keys.unique_names(
        [("11111111aa", "dup"), ("22222222bb", "dup"), ("33", "dup~11111111"), ("44", "*")]
    )
    assert len(set(names.values())) == 4 and names["44"] == "*~44"
    assert names["11111111aa"] == "dup~11111111aa"  # the short form is another key's name
    assert keys.unique_names([("h", "\udcff")]) == {"h": "?"}


def test_key_rows_built_on_the_last_ones_equal_rows_built_afresh() -> None:
    """The view reuses the last tick's rows and their order; through spend, renames,
    new and deleted keys and a revoked account, it shows what a fresh build shows."""
    from watchdog.core import view

    k = Keys({"h1": 0.0, "h2": 0.0, "h3": 0.0})
    k.names.update({"h1": "zulu", "h2": "alpha", "h3": "batch-mid"})
    table: view.KeyTable | None = None
    steps: list[Callable[[], object]] = [
        lambda: None,
        lambda: k.usage.update(h3=6.0),  # spends past its daily limit: revoked
        lambda: k.usage.update(h3=6.5),  # spends on: its row alone is built again
        lambda: k.names.update(h1="aardvark"),  # renamed: sorts first now
        lambda: k.usage.update(h4=0.0) or k.names.update(h4="mike"),  # a new key
        lambda: k.usage.pop("h2"),
        lambda: None,  # missing once, deleted at the second listing without it
        lambda: k.names.update(h3="aardvark", h1="batch-mid"),  # two keys swap names
        lambda: k.usage.update(h1=1.0),
    ]
    for n, step in enumerate(steps):
        step()
        o = k.tick(armed=n != 5)
        judged = list(o.judgements.values())
        before = table
        table = view.key_rows(judged, o.verdicts, table)
        fresh = view.key_rows(judged, o.verdicts)
        assert table.rows == fresh.rows and table.places == fresh.places, f"step {n}"
        assert [r.name for r in table.rows] == sorted(r.name for r in table.rows)
        assert table.places == {r.hash: n for n, r in enumerate(table.rows)}
        assert all(table.row(r.hash) is r for r in table.rows)
        if before is not None:  # a row is the last one exactly when built from the same
            for r, fresh_row in zip(table.rows, fresh.rows, strict=True):
                last = before.row(r.hash)
                same = last is not None and all(map(operator.is_, last.source, r.source))
                assert (last is r) == same and r.source == fresh_row.source, f"step {n}"
    # Nothing changed: the very rows (and tuple) come back.
    assert table is not None
    again = view.key_rows(judged, o.verdicts, table)
    assert again.rows is table.rows
    with pytest.raises(ValueError, match="verdicts"):
        view.key_rows(judged, o.verdicts[1:], table)


def test_a_key_renamed_onto_the_name_of_a_key_just_gone_keeps_its_own_alert() -> None:
    """Key A ("batch-x") leaves the listing while key B is renamed to "batch-x": B's alert
    moves to the name (with its start), A's does not take it back, and A's deletion a
    listing later ends only A's alerts: B's stays, and is not announced again."""
    k = Keys({"a": 6.0, "b": 6.0})
    k.names.update(a="batch-x", b="batch-y")
    k.tick()
    first = k.tick()
    since = first.alerts[("daily_limit", "batch-y")].since
    del k.usage["a"]
    k.names["b"] = "batch-x"
    moved = k.tick()  # A missing (once), B renamed onto A's name
    assert moved.alerts[("daily_limit", "batch-x")].since == since
    assert [e for e in moved.events if e.kind != "notice"] == []  # nothing fired or resolved
    gone = k.tick()  # A missing twice: deleted
    assert [(e.kind, e.rule, e.key) for e in gone.events] == [("notice", "key_deleted", "batch-x")]
    assert gone.alerts[("daily_limit", "batch-x")].since == since  # B's, kept
    assert k.tick().events == []  # not fired again as new


def test_while_the_account_is_revoked_an_unchanged_key_keeps_its_verdict() -> None:
    """Each tick with the account's permit revoked gives an unchanged key the very same
    verdict (so its status row is not built again); a new reason or a new judgement of
    the key gives a new one that says so."""
    k = Keys({"batch-1": 0.0, "summariser": 0.0})
    k.tick()
    first = k.tick(armed=False, trip="a test")
    again = k.tick(armed=False, trip="a test")
    for name in ("batch-1", "summariser"):
        assert verdict(again, name) is verdict(first, name)
        assert not verdict(again, name).armed
        assert (
            verdict(again, name).reason
            == "the account's permit is revoked (tripped by ops: a test)"
        )
    other = k.tick(armed=False, trip="another")
    assert verdict(other, "summariser").reason == (
        "the account's permit is revoked (tripped by ops: another)"
    )
    k.usage["batch-1"] = 6.0  # over its own $5 limit: judged anew, its own reason added
    spent = k.tick(armed=False, trip="another")
    assert verdict(spent, "summariser") is verdict(other, "summariser")
    assert verdict(spent, "batch-1").reason.startswith(
        "the account's permit is revoked (tripped by ops: another); Key batch-1"
    )
