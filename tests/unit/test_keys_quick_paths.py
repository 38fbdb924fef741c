"""The quick paths of a tick with many keys give exactly what the full paths give.

`KeyRing.absorb` (`_changed_only`), `decide` (`_due_only`) and `view.key_rows`
(`_rows_changed`) each look only at the keys a listing changed, found by identity when
the listing has the very keys of the last one in the same order. Random accounts (fixed
seeds) and a few scripted ones are moved poll by poll — keys spend, are re-sent as equal
rows or as the very same rows, renamed (onto each other's names too), relabelled, added,
removed, reordered, disabled; the clock stands still or steps back; the [budget] changes
— and each quick path is compared with its full path on the same inputs."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from random import Random
from types import SimpleNamespace
from typing import Any, cast

import pytest

from watchdog.core import burn, view
from watchdog.core import decide as decide_mod
from watchdog.core import keys as keyrules
from watchdog.core.decide import Inputs, Outcome, decide
from watchdog.core.model import (
    AlertState,
    BudgetPolicy,
    KeyBudget,
    KeyUsage,
    KillswitchPolicy,
    Override,
    Policy,
    PollHealth,
    Recipient,
    Sample,
    Trip,
)
from watchdog.core.permit import PermitState
from watchdog.keyring import KeyRing
from watchdog.permitfile import KeyPermit
from watchdog.tick import Tick

# Late in the UTC day: a run of polls a minute apart crosses midnight (the daily counters
# restart, the judgements of the day before are due).
T0 = datetime(2026, 11, 27, 22, 30, tzinfo=UTC)
SEEDS = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89)
TICKS = 300


def _hash(n: int) -> str:
    return f"{n:04d}" + "abcdef0123456789" * 4


# Names that collide: with each other, with the account's "*", with the name another key
# gets once made unique ("alpha~<hash[:8]>"), and one that is not UTF-8 (a lone surrogate).
NAMES = ("batch-1", "batch-2", "alpha", "zulu", "mike", "*", f"alpha~{_hash(1)[:8]}", "b\ud800")
LABELS = (None, None, "prod", "batch-x", "ops")
WORKSPACES = (None, None, "ws-1", "ws-2")

ENTRIES_A = (
    KeyBudget("batch-*", daily_limit=3.0, monthly_limit=20.0, action="revoke"),
    KeyBudget("alpha*", daily_limit=1.0, action="disable"),
    KeyBudget(_hash(3), daily_limit=2.0, action="revoke"),
    KeyBudget("prod", monthly_limit=4.0, action="alert"),
)
ENTRIES_B = (
    KeyBudget("zulu", daily_limit=0.5, action="revoke"),
    KeyBudget("batch-x", daily_limit=1.5, action="disable"),
    KeyBudget("*", daily_limit=9.0),
)
BUDGET_A = BudgetPolicy(daily_limit=500.0, keys=ENTRIES_A)
# Equal to BUDGET_A but another object (its entries too): the keys listed anew are
# matched again (both paths keep an unchanged key's facts, and so its entry).
BUDGET_A2 = BudgetPolicy(daily_limit=500.0, keys=tuple(replace(e) for e in ENTRIES_A))
BUDGET_B = BudgetPolicy(daily_limit=500.0, keys=ENTRIES_B)
BUDGETS = (BUDGET_A, BUDGET_A2, BUDGET_B)
POLICIES = {id(b): Policy(budget=b, killswitch=KillswitchPolicy()) for b in BUDGETS}


@dataclass
class Step:
    """One poll: the listing (rows as the provider sent them), its time, the [budget],
    and what the tick around it does (`armed`: the account's permit stands)."""

    listed: Sequence[KeyUsage]
    now: datetime
    budget: BudgetPolicy = BUDGET_A
    armed: bool = True
    compact: bool = False
    read_curves: bool = False
    forget_listed: bool = False  # a key the ring forgets though listed (not what Tick does)
    ops: list[str] = field(default_factory=list)


Steps = Callable[[], Iterable[Step]]  # a fresh run of polls each call


class Account:
    """A random account of keys, moved a little each poll. The row of a key that did not
    change is re-sent as the very same object (as OpenRouterProvider does), unless a move
    re-sends it as an equal copy."""

    def __init__(self, seed: int, keys: int = 9) -> None:
        self.rng = Random(seed)
        self.next_hash = 0
        self.order: list[str] = []
        self.rows: dict[str, KeyUsage] = {}
        self.gone: list[KeyUsage] = []  # removed keys, which may come back
        self.spender: dict[str, bool] = {}  # most keys are idle, a few spend often
        self.orphans: list[KeyUsage] = []  # keys listed without a hash
        self.doubles: list[KeyUsage] = []  # rows of keys listed twice (same hash)
        self.listing: list[KeyUsage] = []  # reused (changed in place) by "same_list"
        for _ in range(keys):
            self._add()
        self.clock = T0
        self.budget = BUDGET_A

    def _add(self) -> None:
        r = self.rng
        if self.gone and r.random() < 0.4:
            row = self.gone.pop(r.randrange(len(self.gone)))
            if r.random() < 0.5:
                row = replace(row, usage=row.usage + 0.25)
        else:
            row = KeyUsage(
                usage=0.0,
                usage_daily=0.0,
                usage_monthly=0.0,
                name=r.choice(NAMES),
                label=r.choice(LABELS),
                hash=_hash(self.next_hash),
                limit=r.choice((None, 10.0)),
            )
            self.next_hash += 1
        assert row.hash is not None
        self.spender.setdefault(row.hash, r.random() < 0.35)
        self.order.insert(r.randrange(len(self.order) + 1), row.hash)
        self.rows[row.hash] = row

    def _remove(self) -> None:
        if len(self.order) > 1:
            h = self.order.pop(self.rng.randrange(len(self.order)))
            self.gone.append(self.rows.pop(h))

    def _set(self, h: str, **changes: Any) -> None:
        self.rows[h] = replace(self.rows[h], **changes)

    def _pick(self) -> str:
        return self.rng.choice(self.order)

    def step(self) -> Step:
        r = self.rng
        ops: list[str] = []
        before = self.clock
        self.clock += timedelta(minutes=1)
        now = self.clock
        if before.date() != now.date():  # the provider's daily counters restart
            ops.append("midnight")
            for h in self.order:
                self._set(h, usage_daily=0.0)
        for h in self.order:  # a few keys spend, most are idle
            if r.random() < (0.25 if self.spender[h] else 0.01):
                row = self.rows[h]
                d = r.choice((0.001, 0.01, 0.01, 0.05, 0.2, 1.5))
                remaining = None if row.limit is None else max(0.0, row.limit - row.usage - d)
                self._set(
                    h,
                    usage=row.usage + d,
                    usage_daily=(row.usage_daily or 0.0) + d,
                    usage_monthly=(row.usage_monthly or 0.0) + d,
                    limit_remaining=remaining,
                )
        moves: list[tuple[float, str, Callable[[], None]]] = [
            (0.10, "resend_equal", self._resend_equal),
            (0.02, "resend_all_equal", self._resend_all_equal),
            (0.05, "rename", lambda: self._set(self._pick(), name=r.choice(NAMES))),
            (0.03, "swap_names", self._swap_names),
            (0.03, "rename_onto_other", self._rename_onto_other),
            (0.03, "relabel", lambda: self._set(self._pick(), label=r.choice(LABELS))),
            (0.02, "unnamed", lambda: self._set(self._pick(), name=None)),
            (0.04, "add", self._add),
            (0.04, "remove", self._remove),
            (0.02, "shuffle", lambda: r.shuffle(self.order)),
            (0.03, "swap_places", self._swap_places),
            (0.03, "disable", self._toggle_disabled),
            (0.02, "workspace", lambda: self._set(self._pick(), workspace_id=r.choice(WORKSPACES))),
            (0.02, "limit_reset", lambda: self._set(self._pick(), limit_reset="daily")),
            (0.01, "orphan", lambda: self.orphans.append(KeyUsage(usage=1.0, name="orphan"))),
            (0.1, "orphan_spends", self._orphans_spend),
            (0.2, "orphan_gone", self.orphans.clear),
            (0.01, "double", self._double),
            (0.1, "double_spends", self._doubles_spend),
            (0.3, "double_gone", self.doubles.clear),
        ]
        for p, name, move in moves:
            if r.random() < p:
                ops.append(name)
                move()
        if r.random() < 0.04:
            ops.append("budget")
            self.budget = r.choice([b for b in BUDGETS if b is not self.budget])
        listed = [self.rows[h] for h in self.order]
        for orphan in self.orphans:  # keys without a hash, among the others
            listed.insert(r.randrange(len(listed) + 1), orphan)
        listed += self.doubles
        if r.random() < 0.1:  # the provider's list object reused, changed in place
            ops.append("same_list")
            self.listing[:] = listed
            listed = self.listing
        if r.random() < 0.04:  # the clock stands still for a poll
            ops.append("clock_still")
            now = self.clock = before
        elif r.random() < 0.03:  # the clock steps back for a poll, then is right again
            ops.append("clock_back")
            now = before - timedelta(seconds=r.choice((1, 30, 90, 600)))
        elif r.random() < 0.01:  # the clock is set back, and goes on from there
            ops.append("clock_set_back")
            now = self.clock = before - timedelta(minutes=r.choice((2, 10)))
        return Step(
            listed,
            now,
            self.budget,
            armed=r.random() > 0.05,
            compact=r.random() < 0.02,
            read_curves=r.random() < 0.3,
            forget_listed=r.random() < 0.02,
            ops=ops,
        )

    def _orphans_spend(self) -> None:
        self.orphans[:] = [replace(k, usage=k.usage + 1.0) for k in self.orphans]

    def _double(self) -> None:  # the same hash twice (a paged listing gone wrong)
        row = self.rows[self._pick()]
        self.doubles.append(replace(row, usage=row.usage + 0.125, usage_daily=0.125))

    def _doubles_spend(self) -> None:
        self.doubles[:] = [replace(k, usage=k.usage + 0.5) for k in self.doubles]

    def _resend_equal(self) -> None:
        for h in self.rng.sample(self.order, min(3, len(self.order))):
            self._set(h)  # an equal row, not the same object

    def _resend_all_equal(self) -> None:
        for h in self.order:
            self._set(h)

    def _swap_names(self) -> None:
        if len(self.order) >= 2:
            a, b = self.rng.sample(self.order, 2)
            ra, rb = self.rows[a], self.rows[b]
            self._set(a, name=rb.name, label=rb.label)
            self._set(b, name=ra.name, label=ra.label)

    def _rename_onto_other(self) -> None:
        if len(self.order) >= 2:
            a, b = self.rng.sample(self.order, 2)
            self._set(a, name=self.rows[b].name)  # two keys share a name: "~hash" suffixes

    def _swap_places(self) -> None:
        if len(self.order) >= 2:
            i = self.rng.randrange(len(self.order) - 1)
            self.order[i], self.order[i + 1] = self.order[i + 1], self.order[i]

    def _toggle_disabled(self) -> None:
        h = self._pick()
        self._set(h, disabled=not self.rows[h].disabled)

    def steps(self, n: int = TICKS) -> Iterator[Step]:
        for _ in range(n):
            yield self.step()


def _random(seed: int) -> Steps:
    return lambda: Account(seed).steps()


# -- scripted accounts: the cases a random walk meets rarely -------------------------


def _key(n: int, usage: float = 0.0, name: str | None = None, **fields: Any) -> KeyUsage:
    return KeyUsage(
        usage=usage,
        usage_daily=usage,
        name=name if name is not None else f"key-{n}",
        hash=_hash(n),
        **fields,
    )


def _polls(*listings: Sequence[KeyUsage], budgets: Sequence[BudgetPolicy] = ()) -> list[Step]:
    """Listings a minute apart, from T0 (the budget each, or BUDGET_A)."""
    return [
        Step(listed, T0 + timedelta(minutes=n), budgets[n] if budgets else BUDGET_A)
        for n, listed in enumerate(listings)
    ]


def _missing_then_back() -> list[Step]:
    """A key missing from one listing comes back last, where its judgement was kept (the
    last tick's judgements end with it): the same keys in the same order as then."""
    a, b, c = _key(0), _key(1, 0.5, "batch-1"), _key(2)
    b2 = replace(b, usage=0.75, usage_daily=0.75)
    return _polls([a, b, c], [a, b, c], [a, c], [a, c, b], [a, c, b], [a, c, b2], [a, c, b2])


def _missing_then_another_in_its_place() -> list[Step]:
    a, b, c, d = _key(0), _key(1), _key(2), _key(3, name="key-1")
    return _polls([a, b, c], [a, c], [a, c, d], [a, c, d], [a, c], [a, c], [a, c, b])


def _renamed_onto_the_name_of_a_missing_key() -> list[Step]:
    """Two judgements under one name: the key renamed now, and the key missing under
    that name, kept as it was for a listing."""
    a, b = _key(0, name="shared"), _key(1, name="other")
    b2 = replace(b, name="shared")
    return _polls([a, b], [a, b], [b2], [b2], [b2], [a, b2])


def _unique_name_freed() -> list[Step]:
    """Two keys share a name ("~hash" each); one leaves, and the other's unique name is
    its own again while its row stays the very same object."""
    a, b, c = _key(0, name="alpha"), _key(1, name="alpha"), _key(2, name="zulu")
    c2 = replace(c, usage=0.5, usage_daily=0.5)
    return _polls([a, b, c], [a, b, c], [b, c], [b, c2], [b, c2], [b, c2], [a, b, c2])


def _names_swapped_alone() -> list[Step]:
    a, b = _key(0, name="x", label="l1"), _key(1, name="y", label="l2")
    a2, b2 = replace(a, name="y", label="l2"), replace(b, name="x", label="l1")
    a3 = replace(a2, usage=2.0, usage_daily=2.0)
    return _polls([a, b], [a, b], [a2, b2], [a2, b2], [a3, b2], [a3, b2], [a, b])


def _clock_set_back() -> list[Step]:
    """The clock set back and going on from there: the key's last sample is newer than
    the polls for a while, with listings of the same keys in the same order."""
    keys = [_key(n, 0.1 * n, name=f"batch-{n}") for n in range(4)]
    steps = [Step(list(keys), T0 + timedelta(minutes=m)) for m in range(3)]
    for m in range(12):
        spent = list(keys)
        if m % 3 == 2:  # idle polls first: the listing is the last one again
            k = spent[m % 4]
            spent[m % 4] = replace(k, usage=k.usage + 0.5, usage_daily=(k.usage_daily or 0) + 0.5)
            keys = spent
        steps.append(Step(spent, T0 - timedelta(minutes=6) + timedelta(minutes=m)))
    return steps


def _budget_changed_alone() -> list[Step]:
    keys = [_key(0, name="batch-1"), _key(1, name="zulu"), _key(2, name="alpha")]
    spent = [replace(keys[0], usage=0.5, usage_daily=0.5), *keys[1:]]
    return _polls(
        keys,
        keys,
        keys,
        keys,
        spent,
        spent,
        budgets=(BUDGET_A, BUDGET_A, BUDGET_A2, BUDGET_B, BUDGET_B, BUDGET_A),
    )


def _equal_copies_then_the_same_rows() -> list[Step]:
    keys = [_key(n, name=f"k{n}") for n in range(5)]
    copies = [[replace(k) for k in keys] for _ in range(4)]
    return _polls(keys, *copies, copies[-1], copies[-1], keys)


def _a_key_without_hash_for_a_while() -> list[Step]:
    keys = [_key(n) for n in range(3)]
    orphan = KeyUsage(usage=1.0, name="orphan")
    with_orphan = [keys[0], orphan, keys[1], keys[2]]
    return _polls(keys, keys, with_orphan, with_orphan, with_orphan, keys, keys)


def _empty_listings() -> list[Step]:
    """Every key gone (an empty listing, twice), then back; then only hashless keys."""
    a, b = _key(0), _key(1, 0.5)
    orphan = KeyUsage(usage=1.0, name="orphan")
    return _polls([a, b], [a, b], [], [], [a], [a], [a, b], [orphan], [orphan], [a, b], [a, b])


def _an_empty_hash() -> list[Step]:
    """A key whose hash is "" (not None): a key like any other."""
    blank = KeyUsage(usage=0.0, usage_daily=0.0, hash="")
    named = replace(blank, name="blank")
    spent = replace(named, usage=0.5, usage_daily=0.5)
    a = _key(0)
    return _polls([a, blank], [a, blank], [a, named], [a, named], [a, spent], [a, spent], [a])


SCRIPTS: dict[str, Steps] = {
    "missing_then_back": _missing_then_back,
    "missing_then_another_in_its_place": _missing_then_another_in_its_place,
    "renamed_onto_the_name_of_a_missing_key": _renamed_onto_the_name_of_a_missing_key,
    "unique_name_freed": _unique_name_freed,
    "names_swapped_alone": _names_swapped_alone,
    "clock_set_back": _clock_set_back,
    "budget_changed_alone": _budget_changed_alone,
    "equal_copies_then_the_same_rows": _equal_copies_then_the_same_rows,
    "a_key_without_hash_for_a_while": _a_key_without_hash_for_a_while,
    "empty_listings": _empty_listings,
    "an_empty_hash": _an_empty_hash,
}
RUNS: dict[str, Steps] = {**{f"seed{s}": _random(s) for s in SEEDS}, **SCRIPTS}


class _Spy:
    """Counts how often a quick path answered (not None), so a test shows it ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        self.taken = 0
        self.declined = 0
        original = getattr(owner, name)

        def spy(*args: Any) -> Any:
            out = original(*args)
            if out is None:
                self.declined += 1
            else:
                self.taken += 1
            return out

        monkeypatch.setattr(owner, name, spy)

    def assert_ran(self, run: str, ticks: int) -> None:
        least = ticks // 3 if run.startswith("seed") else 1
        assert self.taken >= least, f"{run}: quick path taken {self.taken}, not {self.declined}"


# -- the key ring ---------------------------------------------------------------------


def _curve_state(h: burn.History) -> tuple[object, ...]:
    return (list(h.ts), list(h.spend), h.last, h.counter_resets, h.last_reset, dict(h._floors))


def _assert_same_ring(q: KeyRing, f: KeyRing, budget: BudgetPolicy, where: str) -> None:
    assert list(q.facts.items()) == list(f.facts.items()), where
    # The same [[budget.keys]] entry objects (`unmatched` goes by identity).
    assert [id(x.budget) for x in q.facts.values()] == [id(x.budget) for x in f.facts.values()], (
        where
    )
    assert q.listed == f.listed, where
    assert q.moved == f.moved, where
    assert list(q.names.items()) == list(f.names.items()), where
    assert q.entries_moved == f.entries_moved, where
    # The very rows (both rings were given the same objects).
    assert [(h, id(k)) for h, k in q.raw.items()] == [(h, id(k)) for h, k in f.raw.items()], where
    assert list(q.last.items()) == list(f.last.items()), where
    assert list(q.flat_until.items()) == list(f.flat_until.items()), where
    assert q.unmatched(budget) == f.unmatched(budget), where


def _assert_same_curves(q: KeyRing, f: KeyRing, where: str) -> None:
    qc, fc = q.histories, f.histories
    assert list(qc) == list(fc), where
    for h in qc:
        assert _curve_state(qc[h]) == _curve_state(fc[h]), f"{where}: curve of {h[:8]}"
    assert list(q.flat_until.items()) == list(f.flat_until.items()), where


def _absent_twice(ring: KeyRing, listed: Sequence[KeyUsage], absent: dict[str, int]) -> list[str]:
    """The keys a tick would forget now (as Tick._follow_keys does once `keys.follow`
    says deleted): those the ring has and two listings in a row did not."""
    now_listed = {k.hash for k in listed if k.hash is not None}
    for h in list(absent):
        if h in now_listed:
            del absent[h]
    for h in ring.last:
        if h not in now_listed:
            absent[h] = absent.get(h, 0) + 1
    gone = [h for h, n in absent.items() if n >= 2]
    for h in gone:
        del absent[h]
    return gone


@pytest.mark.parametrize("run", RUNS)
def test_the_key_rings_quick_path_is_the_full_path(
    run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick, full = KeyRing(), KeyRing()
    spy = _Spy(monkeypatch, KeyRing, "_changed_only")
    absent: dict[str, int] = {}
    n = 0
    for n, step in enumerate(RUNS[run]()):
        where = f"{run} tick {n} {step.ops}"
        facts_before = dict(quick.facts), dict(full.facts)
        full._listing = None  # the full path, every poll
        kept_q = quick.absorb(step.listed, step.now, step.budget)
        kept_f = full.absorb(step.listed, step.now, step.budget)
        assert kept_q == kept_f, where
        _assert_same_ring(quick, full, step.budget, where)
        # The facts that are last tick's very objects (what decide goes by) are the same.
        kept = [
            [h for h, x in ring.facts.items() if before.get(h) is x]
            for ring, before in zip((quick, full), facts_before, strict=True)
        ]
        assert kept[0] == kept[1], where
        if step.read_curves:
            _assert_same_curves(quick, full, where)
        if step.compact:
            quick.compact(step.now)
            full.compact(step.now)
        for h in _absent_twice(quick, step.listed, absent):
            quick.forget(h)
            full.forget(h)
        if step.forget_listed and quick.facts:
            h = next(iter(quick.facts))
            quick.forget(h)
            full.forget(h)
    _assert_same_curves(quick, full, f"{run} at the end")
    spy.assert_ran(run, n)


# -- decide -------------------------------------------------------------------------


def _no_quick_path(*_: object) -> None:
    return None


def _inputs(step: Step, ring: KeyRing, alerts: Mapping[tuple[str, str], AlertState]) -> Inputs:
    start = T0 - timedelta(hours=1)
    now = step.now
    account = burn.History.from_samples([Sample(start, 0.0), Sample(now, 0.0)])
    return Inputs(
        now=now,
        policy=POLICIES[id(step.budget)],
        history=account,
        prior=burn.Prior(),
        poll=PollHealth(started_at=start, last_success=now),
        alerts=alerts,
        permit=PermitState(armed=True),
        override=Override() if step.armed else Override(trip=Trip("test", "ops", start)),
        silences={},
        recipients=[Recipient("ops", ("warning", "critical"))],
        key_name="the account",
        keys=ring.inputs(),
    )


@dataclass
class Chain:
    """The keys' part of a tick: the ring absorbs the poll (asking a few baselines),
    `decide` judges, the ring keeps the judgements and forgets deleted keys (as Tick
    does)."""

    rng: Random
    ring: KeyRing = field(default_factory=KeyRing)
    alerts: dict[tuple[str, str], AlertState] = field(default_factory=dict)

    def inputs(self, step: Step) -> Inputs:
        self.ring.absorb(step.listed, step.now, step.budget)
        for h in self.ring.to_ask(step.now, 3):
            prior = burn.Prior(activity_daily=self.rng.choice((0.05, 5.0, 5.0)), activity_days=30)
            self.ring.learn(h, prior if self.rng.random() < 0.5 else None, step.now)
        return _inputs(step, self.ring, self.alerts)

    def commit(self, o: Outcome) -> None:
        self.ring.judgements, self.ring.known = o.judgements, o.known
        for what, key, _ in o.key_changes:
            if what == "deleted":
                self.ring.forget(key.hash)
        self.alerts = o.alerts


def _outcomes(run: str) -> Iterator[tuple[Step, Outcome]]:
    chain = Chain(Random(run))
    for step in RUNS[run]():
        o = decide(chain.inputs(step))
        chain.commit(o)
        yield step, o


def _assert_same_outcome(
    q: Outcome, f: Outcome, previous: Mapping[str, keyrules.KeyJudgement], where: str
) -> None:
    assert list(q.judgements.items()) == list(f.judgements.items()), where
    # The judgements that are last tick's very objects (what key_rows goes by).
    assert [previous.get(h) is j for h, j in q.judgements.items()] == [
        previous.get(h) is j for h, j in f.judgements.items()
    ], where
    assert q.verdicts == f.verdicts, where
    assert q.events == f.events, where
    assert list(q.alerts.items()) == list(f.alerts.items()), where
    assert list(q.known.items()) == list(f.known.items()), where
    assert q.key_changes == f.key_changes, where
    assert q.outbox == f.outbox, where
    assert q == f, where


@pytest.mark.parametrize("run", RUNS)
def test_decides_quick_path_is_the_full_path(run: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Spy(monkeypatch, decide_mod, "_due_only")
    quick_path = decide_mod._due_only
    chain = Chain(Random(run))
    n = findings = 0
    for n, step in enumerate(RUNS[run]()):
        where = f"{run} tick {n} {step.ops}"
        i = chain.inputs(step)
        assert i.keys is not None
        runs: dict[str, Outcome] = {}
        # Both orders: whichever runs first brings the curves it reads up to the poll.
        for which in ("quick", "full") if n % 2 else ("full", "quick"):
            with monkeypatch.context() as m:
                if which == "full":
                    m.setattr(decide_mod, "_due_only", _no_quick_path)
                runs[which] = decide(i)
            assert decide_mod._due_only is quick_path
        _assert_same_outcome(runs["quick"], runs["full"], i.keys.previous, where)
        findings += sum(bool(j.findings) for j in runs["quick"].judgements.values())
        chain.commit(runs["quick"])
    spy.assert_ran(run, n)
    if run.startswith("seed"):
        assert findings > 0  # keys were over their limits at times


# -- key rows -----------------------------------------------------------------------


def _assert_table(
    table: view.KeyTable,
    before: view.KeyTable | None,
    judged: Sequence[keyrules.KeyJudgement],
    verdicts: Sequence[keyrules.KeyVerdict | None],
    where: str,
) -> int:
    """`table` is the table built afresh; its rows are built from these judgements and
    verdicts, the last table's row kept exactly when built from the same objects. How
    many rows were kept."""
    fresh = view.key_rows(judged, verdicts)
    assert table.rows == fresh.rows, where
    assert [r.hash for r in table.rows] == [r.hash for r in fresh.rows], where
    assert dict(table.places) == dict(fresh.places), where
    assert dict(table.places) == {r.hash: n for n, r in enumerate(table.rows)}, where
    assert len(table.rows) == len(judged), where
    built_from = {j.facts.hash: (j, v) for j, v in zip(judged, verdicts, strict=True)}
    for r in table.rows:
        j, v = built_from[r.hash]
        assert r.source[0] is j and r.source[1] is v, f"{where}: row {r.name!r} is stale"
    if before is None:
        return 0
    kept = 0
    for j, v in zip(judged, verdicts, strict=True):
        last, row = before.row(j.facts.hash), table.row(j.facts.hash)
        same = last is not None and last.source[0] is j and last.source[1] is v
        assert (last is row) == same, f"{where}: row {j.facts.name!r}"
        kept += same
    return kept


@pytest.mark.parametrize("run", RUNS)
def test_key_rows_built_on_the_last_table_are_the_rows_built_afresh(
    run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch, view, "_rows_changed")
    table: view.KeyTable | None = None
    n = kept = 0
    for n, (step, o) in enumerate(_outcomes(run)):
        judged = list(o.judgements.values())
        before = table
        table = view.key_rows(judged, o.verdicts, table)
        kept += _assert_table(table, before, judged, o.verdicts, f"{run} tick {n} {step.ops}")
    spy.assert_ran(run, n)
    assert kept > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_key_rows_of_sequences_moved_by_hand_are_the_rows_built_afresh(seed: int) -> None:
    """The table's inputs moved beyond what decide gives: judgements and verdicts re-sent
    as equal copies, a verdict missing (None), keys judged anew under another name (two
    keys swapping names too), reordered, added, removed."""
    rng = Random(seed)
    by_hash: dict[str, list[tuple[keyrules.KeyJudgement, keyrules.KeyVerdict]]] = {}
    for n, (_, o) in enumerate(_outcomes(f"seed{seed}")):
        for pair in zip(o.judgements.values(), o.verdicts, strict=True):
            by_hash.setdefault(pair[0].facts.hash, []).append(pair)
        if n == 60:
            break
    hashes = list(by_hash)
    pairs: list[tuple[keyrules.KeyJudgement, keyrules.KeyVerdict | None]]
    pairs = [rng.choice(by_hash[h]) for h in hashes[:6]]
    table: view.KeyTable | None = None
    for n in range(200):
        pairs = list(pairs)
        for _ in range(rng.choice((0, 0, 1, 2))):
            i = rng.randrange(len(pairs))
            j, v = pairs[i]
            move = rng.randrange(8)
            if move == 0:  # judged anew (another judgement of the same key)
                pairs[i] = rng.choice(by_hash[j.facts.hash])
            elif move == 1:  # equal copies, not the same objects
                pairs[i] = (replace(j), v if v is None else replace(v))
            elif move == 2:
                pairs[i] = (j, None)
            elif move == 3:  # renamed
                name = rng.choice((*NAMES, j.facts.name + "x"))
                pairs[i] = (replace(j, facts=replace(j.facts, name=name)), v)
            elif move == 4:  # two keys swap names
                k = rng.randrange(len(pairs))
                jk, vk = pairs[k]
                if k != i:
                    pairs[i] = (replace(j, facts=replace(j.facts, name=jk.facts.name)), v)
                    pairs[k] = (replace(jk, facts=replace(jk.facts, name=j.facts.name)), vk)
            elif move == 5:
                rng.shuffle(pairs)
            elif move == 6 and len(pairs) > 1:
                pairs.pop(i)
            else:
                listed = {p[0].facts.hash for p in pairs}
                new = [h for h in hashes if h not in listed]
                if new:
                    pairs.insert(i, rng.choice(by_hash[rng.choice(new)]))
        judged = [j for j, _ in pairs]
        verdicts = [v for _, v in pairs]
        before = table
        # Lists (as the tick gives them) or tuples.
        table = view.key_rows(
            judged if n % 3 else tuple(judged), verdicts if n % 5 else tuple(verdicts), table
        )
        _assert_table(table, before, judged, verdicts, f"seed {seed} step {n}")


def test_nothing_changed_gives_the_very_rows_back() -> None:
    *_, (_, o) = _outcomes("seed1")
    judged = list(o.judgements.values())
    table = view.key_rows(judged, o.verdicts)
    again = view.key_rows(list(judged), list(o.verdicts), table)
    assert again.rows is table.rows
    assert all(map(operator.is_, again.rows, table.rows))


# -- the keys found in C: provider actions, the key permits' sync -------------------


def _provider_actions_visiting_every_key(
    judgements: Mapping[str, keyrules.KeyJudgement],
    account_disable: Sequence[tuple[str, str]],
    ours: Mapping[str, str],
    revoke_on: Sequence[str],
    listed: Iterable[str],
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """provider_actions as it was before the keys with findings were found in C."""
    want = {h: (n, "the account's permit is revoked") for h, n in account_disable}
    for key_hash, j in [(h, j) for h, j in judgements.items() if j.findings]:
        if j.facts.action != "disable" or (j.facts.disabled and key_hash not in ours):
            continue
        revoking = [f for f in j.findings if f.severity in revoke_on]
        if revoking and key_hash not in want:
            want[key_hash] = (j.facts.name, revoking[0].message)
    disable = [(h, n, why) for h, (n, why) in want.items() if h not in ours]
    enable = [(h, n) for h, n in ours.items() if h not in want and h in set(listed)]
    return disable, enable


@pytest.mark.parametrize("seed", SEEDS[:5])
def test_provider_actions_are_those_of_a_visit_of_every_key(seed: int) -> None:
    rng = Random(seed)
    own_disables = 0
    for n, (_, o) in enumerate(_outcomes(f"seed{seed}")):
        if n % 3:
            continue
        listed = {h for h in o.judgements if rng.random() < 0.9}
        ours = {h: j.facts.name for h, j in o.judgements.items() if rng.random() < 0.3}
        account = [(h, j.facts.name) for h, j in o.judgements.items() if rng.random() < 0.1]
        for revoke_on in (("critical",), ("warning", "critical")):
            got = keyrules.provider_actions(o.judgements, account, ours, revoke_on, listed)
            want = _provider_actions_visiting_every_key(
                o.judgements, account, ours, revoke_on, listed
            )
            assert got == want, f"seed {seed} tick {n}"
            own_disables += sum(why != "the account's permit is revoked" for *_, why in got[0])
    assert own_disables > 0  # keys' own findings disabled them at times


class _KeyFiles:
    """KeyPermits as far as the sync uses it: the files by name, and each update."""

    def __init__(self) -> None:
        self.files: dict[str, KeyPermit] = {}
        self.updates: list[tuple[dict[str, KeyPermit], list[str]]] = []

    def hold(self, held: Mapping[str, float]) -> int:
        return 0

    def update(self, changed: Mapping[str, KeyPermit], removed: Iterable[str] = ()) -> int:
        self.updates.append((dict(changed), list(removed)))
        for name in self.updates[-1][1]:
            if name not in changed:
                self.files.pop(name, None)
        self.files.update(changed)
        return len(changed)


def _permit(j: keyrules.KeyJudgement) -> KeyPermit:
    v = j.own
    return KeyPermit(v.name, v.hash, v.armed, v.reason, v.headroom)


def _sync_visiting_every_key(
    before: Mapping[str, keyrules.KeyJudgement], now: Mapping[str, keyrules.KeyJudgement]
) -> tuple[dict[str, KeyPermit], list[str]] | None:
    """What Tick._sync_key_permits updated before the keys judged anew were found in C
    (None: no update)."""
    changed = {}
    same_names = len(before) == len(now)
    for key_hash, j in [(h, j) for h, j in now.items() if before.get(h) is not j]:
        last = before.get(key_hash)
        if last is None or last.facts.name != j.facts.name:
            same_names = False
        changed[j.own.name] = _permit(j)
    removed = []
    if not same_names:
        names = {j.facts.name for j in now.values()}
        removed = [j.facts.name for j in before.values() if j.facts.name not in names]
    return (changed, removed) if changed or removed else None


@pytest.mark.parametrize("run", RUNS)
def test_the_key_permits_synced_by_change_are_every_keys_permit(run: str) -> None:
    """Tick._sync_key_permits writes only the keys judged anew since the last sync: the
    very updates a visit of every key makes, and the files then say what writing every
    key's permit would (when the judged keys' names are unique)."""
    ring = KeyRing()
    files = _KeyFiles()
    tick = SimpleNamespace(
        key_permits=files,
        memory=SimpleNamespace(keys=ring),
        reserved_by_key=lambda now: {},
        log=SimpleNamespace(debug=lambda *a, **k: None),
    )
    synced: dict[str, keyrules.KeyJudgement] = {}
    compared = 0
    for n, (step, o) in enumerate(_outcomes(run)):
        where = f"{run} tick {n} {step.ops}"
        calls = len(files.updates)
        Tick._sync_key_permits(cast(Any, tick), o)
        want = _sync_visiting_every_key(synced, o.judgements)
        if want is None:
            assert len(files.updates) == calls, where
        else:
            assert files.updates[calls:] == [want], where
            synced = dict(o.judgements)
        assert ring.synced == synced, where
        names = [j.facts.name for j in o.judgements.values()]
        if len(set(names)) == len(names):
            every = {_permit(j).name: _permit(j) for j in o.judgements.values()}
            assert files.files == every, where
            compared += 1
    assert compared > 0 and files.updates
