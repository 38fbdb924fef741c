"""Every key of the account: each measured as the account is, judged by its own limits,
with its own permit. Pure.

With a management key the provider lists every key; the watchdog follows each by its hash
(a rename keeps its history and its alerts), measures it with `burn.measure` over its own
curve, judges it with `rules.evaluate_key` (its `[[budget.keys]]` limits, its provider
limit whatever its reset, a spike against its own baseline) and decides its permit:

- a key's permit is go only while the account's is (every key spends the same credit);
- a key whose first matching `[[budget.keys]]` entry says `action = "revoke"` or
  `"disable"` loses its permit while it has a finding of a revoking severity — other keys'
  jobs still go; `"disable"` also disables it at the provider, and re-enables it when its
  findings clear, only if the watchdog disabled it;
- a key disabled at the provider has no permit (its jobs would fail anyway);
- `headroom` is what the key may still spend before its nearest limit.

A key's findings carry its name in `key` (the account's is `*`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import compress
from operator import attrgetter

from watchdog.core import burn, rules
from watchdog.core.model import (
    WATCHED,
    BudgetPolicy,
    Finding,
    KeyBudget,
    KeySample,
    KillswitchPolicy,
    KnownKey,
    Severity,
)

# A key measured this recently, whose counters have not moved and that had no finding,
# keeps its numbers: nothing new can fire without spend. Its rates are refreshed this often.
REFRESH_IDLE = timedelta(hours=1)
NEVER = datetime.min.replace(tzinfo=UTC)  # a judgement that stands for no tick after its own


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """One listed key this tick: who it is (`name` is unique among the listed keys: a
    name two keys share gets the hash's first 8 characters after it), its latest counters,
    and the [[budget.keys]] entry that matches it."""

    hash: str
    name: str
    label: str | None
    workspace_id: str | None
    latest: KeySample
    budget: KeyBudget | None

    @property
    def disabled(self) -> bool:
        return self.latest.disabled

    @property
    def action(self) -> str:
        return self.budget.action if self.budget is not None else "alert"


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    """One key's permit: go or not, why not, and what it may still spend (None: no limit
    of its own; the account's headroom still applies)."""

    name: str
    hash: str
    armed: bool
    reason: str
    headroom: float | None


@dataclass(frozen=True, slots=True)
class KeyJudgement:
    """One key's numbers and findings at `measured_at` (possibly an earlier tick's, for an
    idle key: see `needs_judging`)."""

    facts: KeyFacts
    metrics: burn.Metrics
    findings: tuple[Finding, ...]
    measured_at: datetime
    own: KeyVerdict  # its permit by its own findings (the account's is added by `verdict`)

    # Until when these numbers stand for a key listed exactly as now (see `needs_judging`;
    # set by `judge`): not at all with a finding; else until the day ends, or sooner
    # (REFRESH_IDLE) while its rates are not zero.
    valid_until: datetime = NEVER


def unique_names(keys: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Given (hash, name) pairs, return hash → a name unique among them and apart from the
    account's `*`: a name two keys share (or `*`) is followed by "~" and the first 8
    characters of the hash, or the whole hash where that is another key's name too or
    was given to a key before it (hashes that start alike). A lone surrogate (valid
    JSON, not UTF-8) is replaced, so the name can be stored."""
    pairs = [(h, printable(name)) for h, name in keys]
    counts: dict[str, int] = {}
    for _, name in pairs:
        counts[name] = counts.get(name, 0) + 1
    taken = set(counts)
    out = {}
    for h, name in pairs:
        if counts[name] == 1 and name != WATCHED:
            out[h] = name
            continue
        # Two keys of one name whose hashes start alike would get the same short name
        # (and share one permit file): a name handed out is taken too.
        unique = f"{name}~{h[:8]}"
        if unique in taken:
            unique = f"{name}~{h}"
        n = 2
        while unique in taken:  # that too is another key's name
            unique, n = f"{name}~{h}~{n}", n + 1
        taken.add(unique)
        out[h] = unique
    return out


def printable(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def key_budget_policy(budget: BudgetPolicy, entry: KeyBudget | None) -> BudgetPolicy:
    """The account's budget policy as one key is judged by it: that key's own daily and
    monthly limits (none without a matching entry), the account's ratios, spike settings
    and hysteresis."""
    # The same few (policy, entry) pairs every tick: made once each. Both are immutable;
    # the cache holds them, so an id is never another object's while it is cached.
    found = _KEY_POLICIES.get((id(budget), id(entry)))
    if found is not None and found[0] is budget and found[1] is entry:
        return found[2]
    policy = replace(
        budget,
        daily_limit=entry.daily_limit if entry is not None else None,
        monthly_limit=entry.monthly_limit if entry is not None else None,
        keys=(),
    )
    if len(_KEY_POLICIES) >= 256:
        _KEY_POLICIES.clear()
    _KEY_POLICIES[(id(budget), id(entry))] = (budget, entry, policy)
    return policy


_KEY_POLICIES: dict[tuple[int, int], tuple[BudgetPolicy, KeyBudget | None, BudgetPolicy]] = {}


def facts_of(
    listed: Sequence[tuple[KeySample, str, str | None, str | None]], budget: BudgetPolicy
) -> list[KeyFacts]:
    """Given this poll's keys (counters, name, label, workspace) and the budget, return
    each key's facts: a unique name and its first matching [[budget.keys]] entry."""
    names = unique_names((sample.hash, name) for sample, name, _, _ in listed)
    return [
        KeyFacts(
            sample.hash,
            names[sample.hash],
            label,
            workspace,
            sample,
            budget.key_budget(name, label, sample.hash),
        )
        for sample, name, label, workspace in listed
    ]


def needs_judging(previous: KeyJudgement | None, facts: KeyFacts, now: datetime) -> bool:
    """Whether a key must be measured again this tick. Not when its counters, name and
    budget are as they were, it had no finding, it was measured in the same day and
    either within REFRESH_IDLE or with its rates at zero: spend alone can make a finding
    fire, and an idle key has none."""
    if previous is None or previous.findings:
        return True
    m = previous.metrics
    # An idle key's numbers only change when its rates (sliding windows) fall or a new
    # day starts: rates already at zero stay there.
    moving = bool(m.rate_now.per_hour or m.rate_1h.per_hour)
    due = moving and now - previous.measured_at >= REFRESH_IDLE
    stale = due or not (m.day_start <= now < m.day_end)
    if previous.facts is facts:  # listed exactly as before (watchdog.keyring)
        return stale
    before = previous.facts
    if before.name != facts.name or (
        before.budget is not facts.budget and before.budget != facts.budget
    ):
        return True
    if not before.latest.same_counters(facts.latest):
        return True
    return stale


def judge(
    facts: KeyFacts,
    history: burn.History,
    now: datetime,
    budget: BudgetPolicy,
    *,
    horizon: timedelta,
    killswitch: KillswitchPolicy,
    held: Mapping[tuple[str, str], Severity] | None = None,
    prior: burn.Prior | None = None,
) -> KeyJudgement:
    """Measure and judge one key (see the module's docstring)."""
    policy = key_budget_policy(budget, facts.budget)
    metrics = burn.measure(history, now, budget.tz, prior, account=False)
    findings = tuple(rules.evaluate_key(metrics, policy, facts.name, horizon=horizon, held=held))
    own = _own(facts, metrics, findings, killswitch)
    if findings:
        until = now
    elif metrics.rate_now.per_hour or metrics.rate_1h.per_hour:
        until = min(metrics.day_end, now + REFRESH_IDLE)
    else:
        until = metrics.day_end
    return KeyJudgement(facts, metrics, findings, now, own, until)


def verdict(j: KeyJudgement, account_armed: bool, account_reason: str) -> KeyVerdict:
    """One key's permit, the account's included (see the module's docstring)."""
    if account_armed:
        return j.own
    # While the account's permit is revoked, every key's verdict says so, tick after
    # tick: the same one is given for the same own verdict and reason (so the view and
    # the permit files see an unchanged key as unchanged). The cache holds what it was
    # made from, so an id is never another object's while it is cached.
    own = j.own
    found = _REVOKED.get(id(own))
    if found is not None and found[0] is own and found[1] == account_reason:
        return found[2]
    reasons = [f"the account's permit is revoked ({account_reason})"]
    if own.reason:
        reasons.append(own.reason)
    made = replace(own, armed=False, reason="; ".join(reasons))
    if len(_REVOKED) >= 4096:
        _REVOKED.clear()
    _REVOKED[id(own)] = (own, account_reason, made)
    return made


_REVOKED: dict[int, tuple[KeyVerdict, str, KeyVerdict]] = {}


def _own(
    f: KeyFacts, m: burn.Metrics, findings: tuple[Finding, ...], killswitch: KillswitchPolicy
) -> KeyVerdict:
    reasons = []
    if f.disabled:
        reasons.append("the key is disabled at the provider")
    if f.action in ("revoke", "disable"):
        reasons += [x.message for x in findings if x.severity in killswitch.revoke_on]
    return KeyVerdict(f.name, f.hash, not reasons, "; ".join(reasons), headroom(f, m))


def headroom(f: KeyFacts, m: burn.Metrics) -> float | None:
    """What the key may still spend before its nearest limit: its daily and monthly
    limits and its provider limit; None when it has none."""
    entry = f.budget
    room: list[float] = []
    if entry is not None and entry.daily_limit is not None and m.spent_today is not None:
        room.append(entry.daily_limit - m.spent_today)
    if entry is not None and entry.monthly_limit is not None and m.spent_month is not None:
        room.append(entry.monthly_limit - m.spent_month)
    if m.key_limit_remaining is not None:
        room.append(m.key_limit_remaining)
    return max(0.0, min(room)) if room else None


def provider_actions(
    judgements: Mapping[str, KeyJudgement],
    account_disable: Sequence[tuple[str, str]],
    ours: Mapping[str, str],
    revoke_on: Sequence[str],
    listed: Collection[str],
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """Which keys to disable and re-enable at the provider: (hash, name, reason) to
    disable, (hash, name) to re-enable. A key is to be disabled when the account's
    kill switch disables it (`account_disable`, hash and name: `disable_keys` with the
    permit revoked) or its own findings revoke it with `action = "disable"`. A key the
    watchdog disabled (`ours`, hash → name) is re-enabled when neither holds any more —
    and only when this tick's listing (`listed`, hashes) has it: without a fresh listing
    (a failed poll, a restart) nothing is re-enabled, and a deleted key is not asked
    again. A key is never disabled twice, and never re-enabled unless we disabled it."""
    want = {h: (n, "the account's permit is revoked") for h, n in account_disable}
    # Most keys, every tick, have no finding: nothing of theirs to disable.
    for key_hash, j in compress(judgements.items(), map(_FINDINGS, judgements.values())):
        if j.facts.action != "disable" or (j.facts.disabled and key_hash not in ours):
            continue  # not ours to disable, or disabled by someone else already
        revoking = [f for f in j.findings if f.severity in revoke_on]
        if revoking and key_hash not in want:
            want[key_hash] = (j.facts.name, revoking[0].message)
    disable = [(h, n, why) for h, (n, why) in want.items() if h not in ours]
    enable = [(h, n) for h, n in ours.items() if h not in want and h in listed]
    return disable, enable


_FINDINGS = attrgetter("findings")


def follow(
    known: Mapping[str, KnownKey],
    listed: Sequence[tuple[str, str, str | None, str | None]],
    now: datetime,
) -> tuple[dict[str, KnownKey], list[tuple[str, KnownKey, KnownKey | None]]]:
    """Given the keys followed so far (hash → KnownKey), this poll's full listing (hash,
    name, label, workspace) and the time, return the keys followed now and what changed:
    ("new", key, None), ("renamed", key, before), ("changed", key, before) (label or
    workspace), ("missing", key, before), ("deleted", key, before). A key is deleted only
    when two listings in a row miss it (a listing paged by offset skips a key when another
    one is deleted meanwhile): told once (`deleted_at`), then no longer judged; a key
    that comes back is followed again."""
    out = dict(known)
    changes: list[tuple[str, KnownKey, KnownKey | None]] = []
    seen = set()
    for key_hash, name, label, workspace in listed:
        seen.add(key_hash)
        before = known.get(key_hash)
        if before is None or before.deleted_at is not None:
            key = KnownKey(key_hash, name, label, workspace, now, now, None)
            changes.append(("new", key, before))
        elif (before.name, before.label, before.workspace_id) == (name, label, workspace):
            if before.missing_since is not None:
                out[key_hash] = replace(before, missing_since=None)
            continue  # as it was (last_seen is when it last changed)
        else:
            key = replace(
                before,
                name=name,
                label=label,
                workspace_id=workspace,
                last_seen=now,
                missing_since=None,
            )
            changes.append(("renamed" if before.name != name else "changed", key, before))
        out[key_hash] = key
    for key_hash, before in known.items():
        if key_hash in seen or before.deleted_at is not None:
            continue
        if before.missing_since is None or before.missing_since >= now:
            missing = replace(before, missing_since=before.missing_since or now)
            out[key_hash] = missing
            changes.append(("missing", missing, before))
            continue
        gone = replace(before, deleted_at=now, missing_since=None)
        out[key_hash] = gone
        changes.append(("deleted", gone, before))
    return out, changes
