"""The tick's memory of every key of the account (management key): each key's spend curve,
its last counters, its last judgement and the keys followed by hash.

`absorb` turns one poll's listing into the core's `KeyFacts` and the key samples worth
keeping: a key's counters are kept when they change, together with the last unchanged
sample before the change (so a restart rebuilds the same curve), never once per poll for
an idle key. `KeyRing.resume` rebuilds the memory from the store after a restart.

An idle key costs next to nothing a poll (its row is the last poll's object, found so in
C), not a visit to its curve: the polls that found it unchanged extend its curve's flat
run (`History.touch`), and that is done when the curve is next read (`histories`, the
curves `inputs` hands to `decide`, a change of the key, `compact`), once, to the last
such poll — the curve read is the same as if each poll had extended it. This holds while
the clock moves on; a poll whose clock did not move on extends every flat run first, as
it comes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import compress
from operator import is_not
from typing import cast

from watchdog.core import burn
from watchdog.core import keys as keyrules
from watchdog.core.decide import KeyInputs, Outcome
from watchdog.core.model import BudgetPolicy, KeyBudget, KeySample, KeyUsage, KnownKey
from watchdog.store import Store

# A key's baseline from its activity is asked for once a day, at most ASK_PER_TICK keys a
# tick (a runaway on hundreds of keys at once must not turn one tick into hundreds of calls).
ASK_EVERY = timedelta(days=1)
ASK_PER_TICK = 3


def _name(key: KeyUsage) -> str:
    return key.name or key.label or (key.hash or "")[:8]


def _same_name(a: KeyUsage, b: KeyUsage) -> bool:
    return a.name == b.name and a.label == b.label


def key_sample(key: KeyUsage, ts: datetime) -> KeySample:
    """One listed key's counters at the tick's time (the counter its limit is judged on:
    BYOK spend included when the provider counts it)."""
    assert key.hash is not None
    if key.byok_counted:
        usage, daily = key.counted_usage, key.counted_window("usage_daily")
        weekly, monthly = key.counted_window("usage_weekly"), key.counted_window("usage_monthly")
    else:  # the common case: the counters as listed
        usage, daily, weekly, monthly = (
            key.usage,
            key.usage_daily,
            key.usage_weekly,
            key.usage_monthly,
        )
    return KeySample(
        key.hash,
        ts,
        usage,
        daily,
        weekly,
        monthly,
        key.limit,
        key.limit_remaining,
        key.limit_reset,
        key.disabled,
    )


@dataclass
class KeyRing:
    """Per-key memory between ticks (see the module's docstring)."""

    # Each key's curve, its flat run possibly not yet extended to `_seen_t` (read them
    # through `histories` or `curve`).
    _curves: dict[str, burn.History] = field(default_factory=dict, init=False, repr=False)
    # The last listing's time (epoch seconds, and as a datetime): every key it has facts
    # for (`facts`) was polled up to then.
    _seen_t: float | None = field(default=None, init=False, repr=False)
    _seen_at: datetime | None = field(default=None, init=False, repr=False)
    last: dict[str, KeySample] = field(default_factory=dict)
    # When a key's counters were last polled unchanged (not stored yet): a sample there is
    # stored just before the next change, so the flat run's end survives a restart.
    flat_until: dict[str, datetime] = field(default_factory=dict)
    raw: dict[str, KeyUsage] = field(default_factory=dict)  # as last listed
    facts: dict[str, keyrules.KeyFacts] = field(default_factory=dict)  # the last facts
    names: dict[str, str] = field(default_factory=dict)  # unique names by hash
    # The judgements the key permit files were last synced from (Tick._sync_key_permits).
    synced: dict[str, keyrules.KeyJudgement] = field(default_factory=dict)
    judgements: dict[str, keyrules.KeyJudgement] = field(default_factory=dict)
    known: dict[str, KnownKey] = field(default_factory=dict)
    missing: bool | None = None  # whether a key of `known` is missing (None: look)
    listed: list[keyrules.KeyFacts] | None = None
    # Each key's baseline from the provider's activity (`/activity?api_key_hash=`), and
    # when it was asked for: keys that spend are asked once a day, a few per tick.
    priors: dict[str, burn.Prior] = field(default_factory=dict)
    asked: dict[str, datetime] = field(default_factory=dict)
    moved: list[str] = field(default_factory=list)  # keys whose counters moved this tick
    _budget: BudgetPolicy | None = field(default=None, init=False, repr=False)  # last absorb's
    # Whether the last listing may have changed which key each [[budget.keys]] entry
    # matches (a key new, renamed, relabelled or gone, or a new policy).
    entries_moved: bool = field(default=False, init=False)
    # The last listing, when every key of it has its facts (see `_changed_only`).
    _listing: tuple[KeyUsage, ...] | None = field(default=None, init=False, repr=False)

    @classmethod
    def resume(cls, store: Store, since: datetime, now: datetime) -> KeyRing:
        """The memory a daemon starts with: the keys followed and their curves."""
        ring = cls(known=store.known_keys())
        for key_hash, samples in store.key_history(since).items():
            history = burn.History()
            for sample in samples:
                history.add(sample.to_sample())
            history.compact(now)
            ring._curves[key_hash] = history
            ring.last[key_hash] = samples[-1]
        return ring

    @property
    def histories(self) -> dict[str, burn.History]:
        """Every key's spend curve, as of the last poll (by hash)."""
        self._settle_all()
        return self._curves

    def curve(self, key_hash: str) -> burn.History:
        """One key's spend curve, as of the last poll. KeyError for a key without one."""
        history = self._curves[key_hash]
        self._settle(key_hash, history)
        return history

    def _settle(self, key_hash: str, history: burn.History) -> None:
        """Extend the key's flat run to the last listing, if that listing had it."""
        t = self._seen_t
        if t is not None and key_hash in self.facts and history.touch(t):
            assert self._seen_at is not None
            self.flat_until[key_hash] = self._seen_at

    def _settle_all(self) -> None:
        if self._seen_t is None:
            return
        curves = self._curves
        for key_hash in self.facts:
            history = curves.get(key_hash)
            if history is not None:
                self._settle(key_hash, history)

    def absorb(
        self, listed: Sequence[KeyUsage], now: datetime, budget: BudgetPolicy
    ) -> list[KeySample]:
        """Take one poll's listing (every key, disabled ones too); return the key samples
        to keep. Sets `listed` to this tick's facts. A key listed exactly as last time
        (the same row object, in the same place) is not visited: its curve's flat run is
        extended when next read (see the module's docstring), its facts are the same
        object (so `decide` knows at once that nothing changed)."""
        keep: list[KeySample] = []
        self.moved = []
        t = now.timestamp()
        # While the clock moves on, an idle key's flat run is extended when next read, to
        # this poll; otherwise every flat run is extended now, as it comes.
        lazy = self._seen_t is None or t > self._seen_t
        if not lazy:
            self._settle_all()
        same_budget = budget is self._budget
        # `facts` is in the listing's order; a key listed afresh holds its place (None)
        # until its facts are made below.
        facts: dict[str, keyrules.KeyFacts | None]
        quick = self._changed_only(listed) if lazy and same_budget else None
        if quick is not None:
            # The same keys in the same order as last time, none renamed: only the rows
            # that are not the last listing's objects are looked at (the common tick).
            facts, fresh, names_changed = dict(self.facts), quick, False
        else:
            facts, fresh = self._sort_out(listed, now, t, lazy, same_budget)
            names_changed = len(facts) != len(self.facts) or any(
                (was := self.raw.get(k.hash or "")) is None or not _same_name(was, k) for k in fresh
            )
        for key in fresh:  # first the flat run the last listing gave it, if any
            if key.hash in self.facts:
                self.curve(key.hash)
        accepted: list[KeyUsage] = []
        stepped_back = False
        # A key listed under the name and label it had, with the same [budget] as then,
        # keeps its entry: the globs are not matched again each time it spends.
        entries: dict[str, KeyBudget | None] = {}
        for key in fresh:
            assert key.hash is not None
            h = key.hash
            sample = key_sample(key, now)
            last = self.last.get(h)
            if last is not None and sample.ts <= last.ts:
                # The clock stepped back (the account's `clock` rule says so): the key is
                # still listed, as it was.
                stepped_back = True
                if h in self.facts:
                    facts[h] = self.facts[h]
                else:
                    facts.pop(h, None)
                continue
            accepted.append(key)
            was, known = self.raw.get(h), self.facts.get(h)
            if same_budget and was is not None and known is not None and _same_name(was, key):
                entries[h] = known.budget
            self.raw[h] = key
            if last is None or not last.same_counters(sample):
                self.moved.append(h)
                flat = self.flat_until.pop(h, None)
                if last is not None and flat is not None and flat > last.ts:
                    keep.append(last.at(flat))  # where the flat run ended
                keep.append(sample)
                curve = self._curves.get(h)
                if curve is None:
                    curve = self._curves[h] = burn.History()
                curve.add(sample.to_sample())
                self.last[h] = sample
            elif self._curves[h].touch(sample.ts.timestamp()):
                self.flat_until[h] = now
        if names_changed:
            listing = {k.hash: k for k in listed if k.hash is not None}
            self.names = keyrules.unique_names(
                (h, _name(k)) for h, k in listing.items() if h in self.raw
            )
        for key in accepted:
            assert key.hash is not None
            h = key.hash
            name = self.names.get(h, _name(key))
            label = keyrules.printable(key.label) if key.label is not None else None
            workspace = key.workspace_id
            facts[h] = keyrules.KeyFacts(
                h,
                name,
                label,
                keyrules.printable(workspace) if workspace is not None else None,
                self.last[h],
                entries[h] if h in entries else budget.key_budget(_name(key), key.label, h),
            )
        made = cast(dict[str, keyrules.KeyFacts], facts)  # every place is filled by now
        if names_changed:  # another key's unique name may have changed with this one
            for h, f in made.items():
                if f.name != self.names.get(h, f.name):
                    made[h] = replace(f, name=self.names[h])
        if quick is None:
            # A key of the last listing is in this one exactly when it has facts now
            # (listed unchanged, changed, or kept as it was when the clock stepped back).
            # One that is not keeps the flat run the last listing gave it.
            for h in self.facts.keys() - made.keys():
                if h in self._curves:
                    self.curve(h)
                self.raw.pop(h, None)
        self.facts = made
        self.entries_moved = names_changed or not same_budget
        self._budget = budget
        self._seen_t, self._seen_at = t, now
        self.listed = list(made.values())
        # The next listing is compared with this one by its objects only when each of
        # this one's keys is what `raw` and `facts` hold for it (see `_changed_only`).
        clean = lazy and not stepped_back and len(made) == len(listed)
        self._listing = tuple(listed) if clean else None
        return keep

    def _changed_only(self, listed: Sequence[KeyUsage]) -> list[KeyUsage] | None:
        """The keys of `listed` to look at, when it lists the very keys of the last
        listing in the same order, none under another name or label: those whose row is
        not the last listing's object (OpenRouterProvider reuses an unchanged row's) and
        not equal to it. None otherwise (then every key is looked at)."""
        before = self._listing
        if before is None or len(before) != len(listed):
            return None
        fresh = []
        # In C, without visiting the rows: which places hold another object than before.
        for i in compress(range(len(listed)), map(is_not, listed, before)):
            key, was = listed[i], before[i]
            if key.hash != was.hash or not _same_name(was, key):
                return None  # another order, another key, or a rename
            if key != was:
                fresh.append(key)
        return fresh

    def _sort_out(
        self, listed: Sequence[KeyUsage], now: datetime, t: float, lazy: bool, same_budget: bool
    ) -> tuple[dict[str, keyrules.KeyFacts | None], list[KeyUsage]]:
        """Every listed key, in order: one listed exactly as last time keeps its facts
        (unless the budget is another: then each key's entry is matched again); the
        others are returned to be looked at, their places held (None)."""
        facts: dict[str, keyrules.KeyFacts | None] = {}
        fresh: list[KeyUsage] = []
        # Names bound once, not looked up per key.
        raw, last_facts, curves, flat_until = self.raw, self.facts, self._curves, self.flat_until
        for key in listed:
            h = key.hash
            if h is None:
                continue
            before = raw.get(h)
            known = last_facts.get(h)
            if (
                same_budget
                and before is not None
                and known is not None
                and (before is key or before == key)
            ):
                if not lazy and curves[h].touch(t):
                    flat_until[h] = now
                facts[h] = known
                continue
            facts[h] = None
            fresh.append(key)
        return facts, fresh

    def remember(self, o: Outcome) -> None:
        """Keep a tick's judgements and keys followed for the next one."""
        self.judgements, self.known, self.missing = o.judgements, o.known, o.keys_missing

    def unmatched(self, budget: BudgetPolicy) -> list[str]:
        """The `match` of each [[budget.keys]] entry that no listed key gets (none matches
        it, or an earlier entry takes every key it matches: first match wins)."""
        used = {id(f.budget) for f in self.facts.values() if f.budget is not None}
        return [entry.match for entry in budget.keys if id(entry) not in used]

    def inputs(self) -> KeyInputs:
        """This tick's inputs for `decide` (the listing is consumed: a tick without a
        listing keeps the last judgements)."""
        listed, self.listed = self.listed, None
        return KeyInputs(
            listed, _Curves(self), self.judgements, self.known, self.priors, self.missing
        )

    def to_ask(self, now: datetime, most: int) -> list[str]:
        """Keys whose baseline to ask the provider for now: ones that spend (their counters
        moved this tick) and were not asked within a day; at most `most`."""
        due = [h for h in self.moved if h not in self.asked or now - self.asked[h] >= ASK_EVERY]
        return due[:most]

    def learn(self, key_hash: str, prior: burn.Prior | None, now: datetime) -> None:
        self.asked[key_hash] = now
        if prior is not None:
            self.priors[key_hash] = prior

    def forget(self, key_hash: str) -> None:
        """A deleted key: its curve leaves memory (its samples stay in the store)."""
        self._listing = None
        self._curves.pop(key_hash, None)
        self.last.pop(key_hash, None)
        self.flat_until.pop(key_hash, None)
        self.raw.pop(key_hash, None)
        self.facts.pop(key_hash, None)
        self.judgements.pop(key_hash, None)
        self.priors.pop(key_hash, None)
        self.asked.pop(key_hash, None)

    def follow(self, stored: Mapping[str, Sequence[KeySample]], until: datetime) -> None:
        """A follower's catch-up (instances sharing one database): the key samples the
        leader stored (oldest first; those a curve already has are ignored) are added,
        then every followed key's flat run is extended to `until`, the leader's newest
        poll, as the leader's own polls extend it — the leader's curves, without reading
        every key's month again."""
        self._settle_all()  # what this ring's own last listing proved comes first
        self._listing = None
        curves = self._curves
        for key_hash, samples in stored.items():
            curve = curves.setdefault(key_hash, burn.History())
            for sample in samples:
                curve.add(sample.to_sample())
            latest = self.last.get(key_hash)
            if samples and (latest is None or samples[-1].ts > latest.ts):
                self.last[key_hash] = samples[-1]
        t = until.timestamp()
        for key_hash, known in self.known.items():
            flat = curves.get(key_hash)
            if flat is not None and known.deleted_at is None:
                flat.touch(t)

    def compact(self, now: datetime) -> None:
        for history in self.histories.values():
            history.compact(now)


class _Curves(Mapping[str, burn.History]):
    """The ring's curves as `decide` reads them: each brought up to the last poll when
    it is read (only the keys judged this tick are)."""

    __slots__ = ("_ring",)

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def __getitem__(self, key_hash: str) -> burn.History:
        return self._ring.curve(key_hash)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ring._curves)

    def __len__(self) -> int:
        return len(self._ring._curves)
