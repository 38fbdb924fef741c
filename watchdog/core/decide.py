"""One tick's decisions, as one pure function: measure → judge → alerts → permit → messages.

`decide(inputs)` is everything the tick decides; `watchdog.tick` only reads its inputs
(provider, store), commits its outcome in one transaction and applies it (permit file,
outbox, key disable, view). Tested with plain values: no store, no clock, no provider.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import chain, compress
from typing import cast

from watchdog.core import alerts, burn, keys, messages, rules
from watchdog.core import permit as permits
from watchdog.core.model import (
    WATCHED,
    AlertState,
    Event,
    Finding,
    Ident,
    KnownKey,
    OutboxRow,
    Override,
    Policy,
    PollHealth,
    Recipient,
    Silence,
)

# Predictions look this far ahead: the next poll, with margin for its own duration.
HORIZON_FACTOR = 1.25
_FINDINGS = operator.attrgetter("findings")
_OWN = operator.attrgetter("own")
_FACTS = operator.attrgetter("facts")
_VALID_UNTIL = operator.attrgetter("valid_until")
_MISSING_SINCE = operator.attrgetter("missing_since")


@dataclass(frozen=True)
class KeyInputs:
    """Every key of the account this tick: `listed` is this poll's listing as facts (None
    when there is none this tick: a failed poll keeps the last judgements), `histories`
    each listed key's curve by hash, `previous` the last judgements, `known` the keys
    followed so far; `priors` each key's baseline from the provider's activity."""

    listed: Sequence[keys.KeyFacts] | None
    histories: Mapping[str, burn.History]
    previous: Mapping[str, keys.KeyJudgement]
    known: Mapping[str, KnownKey]
    priors: Mapping[str, burn.Prior] = field(default_factory=dict)
    # Whether a key of `known` is missing (listed no more, not yet deleted), as the last
    # outcome said (`Outcome.keys_missing`); None: not known, look.
    missing: bool | None = None


@dataclass(frozen=True)
class Inputs:
    """What one tick decides from. `history` is read, never changed."""

    now: datetime
    policy: Policy
    history: burn.History
    prior: burn.Prior
    poll: PollHealth
    alerts: Mapping[Ident, AlertState]
    permit: permits.PermitState
    override: Override
    silences: Mapping[str, Silence]
    recipients: Sequence[Recipient]
    key_name: str
    disable_error: str | None = None
    permit_error: str | None = None
    key_permit_error: str | None = None
    keys: KeyInputs | None = None


@dataclass(frozen=True)
class Outcome:
    """What one tick decided: the numbers, findings, the new alert and permit states, the
    events and the outbox rows they became."""

    metrics: burn.Metrics
    findings: list[Finding]
    alerts: dict[Ident, AlertState]
    permit: permits.PermitState
    decision: permits.Decision
    events: list[Event]
    outbox: list[OutboxRow]
    judgements: dict[str, keys.KeyJudgement] = field(default_factory=dict)
    verdicts: list[keys.KeyVerdict] = field(default_factory=list)
    known: dict[str, KnownKey] = field(default_factory=dict)
    key_changes: list[tuple[str, KnownKey, KnownKey | None]] = field(default_factory=list)
    keys_missing: bool = False  # whether a key of `known` is missing (see KeyInputs)

    @property
    def transition(self) -> Event | None:
        """The permit's revocation or re-arm this tick, if any."""
        return next((e for e in self.events if e.rule == "permit"), None)


def decide(i: Inputs) -> Outcome:
    """Given one tick's inputs, return its outcome (see the module's docstring)."""
    policy = i.policy
    horizon = policy.poll_interval * HORIZON_FACTOR
    metrics = burn.measure(i.history, i.now, policy.budget.tz, i.prior)
    held = alerts.firing(i.alerts)  # a resolution held by a silence gets no hysteresis
    findings = rules.evaluate(
        metrics,
        policy.budget,
        i.poll,
        horizon=horizon,
        held=held,
        disable_error=i.disable_error,
        permit_error=i.permit_error,
        key_permit_error=i.key_permit_error,
    )
    new_permit, decision, permit_events = permits.advance(
        i.permit, findings, i.override, i.poll, i.now, policy.killswitch
    )
    states, judgements, known, changes, notices, missing = _keys(i, dict(i.alerts), horizon)
    # Over every key each tick, in C: the keys with findings are few.
    key_findings = list(chain.from_iterable(map(_FINDINGS, judgements.values())))
    new_alerts, events = alerts.advance(
        states,
        findings + key_findings,
        i.now,
        repeat_interval=policy.notify.repeat_interval,
        send_resolved=policy.notify.send_resolved,
        silences=i.silences,
    )
    events += permit_events + notices
    if decision.armed:  # each key's own verdict stands (the common case: no call per key)
        verdicts = list(map(_OWN, judgements.values()))
    else:
        verdicts = [keys.verdict(j, decision.armed, decision.reason) for j in judgements.values()]
    ctx = messages.Context(
        metrics=metrics,
        budget=policy.budget,
        permit="armed" if decision.armed else "revoked",
        permit_reason="" if decision.armed else decision.reason,
        key_name=i.key_name,
        data_age_s=i.poll.data_age(i.now),
    )
    rows = messages.route([e for e in events if e.key == WATCHED], ctx, i.recipients, i.now)
    key_events = [e for e in events if e.key != WATCHED]
    by_name = {j.facts.name: j for j in judgements.values()} if key_events else {}
    by_verdict = {v.name: v for v in verdicts} if key_events else {}
    for event in key_events:
        j, v = by_name.get(event.key), by_verdict.get(event.key)
        key_ctx = messages.Context(
            metrics=j.metrics if j is not None else None,
            budget=keys.key_budget_policy(policy.budget, j.facts.budget if j else None),
            permit="armed" if v is not None and v.armed else "revoked",
            permit_reason=v.reason if v is not None else "the key is no longer listed",
            key_name=f"key {event.key}",
            data_age_s=ctx.data_age_s,
            per_key=True,
        )
        rows += messages.route([event], key_ctx, i.recipients, i.now)
    return Outcome(
        metrics,
        findings,
        new_alerts,
        new_permit,
        decision,
        events,
        rows,
        judgements,
        verdicts,
        known,
        changes,
        missing,
    )


def _keys(
    i: Inputs, states: dict[Ident, AlertState], horizon: timedelta
) -> tuple[
    dict[Ident, AlertState],
    dict[str, keys.KeyJudgement],
    dict[str, KnownKey],
    list[tuple[str, KnownKey, KnownKey | None]],
    list[Event],
    bool,
]:
    """Every key's judgement this tick, the keys followed, and what their listing changed:
    a renamed key's alerts move to its new name; a deleted key's alerts end with one
    notice (no resolution follows it) and it is no longer judged. And whether a key
    followed is missing."""
    k = i.keys
    if k is None:
        return states, {}, {}, [], [], False
    judgements = k.previous  # read only: `fresh` becomes this tick's
    # The keys followed, kept as they are unless `follow` says otherwise.
    known = k.known if isinstance(k.known, dict) else dict(k.known)
    missing = k.missing if k.missing is not None else any(map(_MISSING_SINCE, known.values()))
    changes: list[tuple[str, KnownKey, KnownKey | None]] = []
    notices: list[Event] = []
    if k.listed is None:
        return states, dict(judgements), known, changes, notices, missing
    # A key listed as the very facts its judgement was made from (watchdog.keyring keeps
    # an unchanged key's facts) keeps that judgement until it is due; the others (`todo`)
    # are looked at below, in place: `fresh` keeps the listing's order, which is the
    # order of the alerts and messages.
    now = i.now
    quick = _due_only(k.listed, k.previous, now)
    fresh: dict[str, keys.KeyJudgement | None]
    if quick is not None:
        # The keys of the last tick in its order: only the ones listed anew or due are
        # looked at (the common tick: a few keys spent, the others idle).
        fresh, todo, listing_moved = dict(k.previous), quick, False
        for facts in todo:
            fresh[facts.hash] = None
            listing_moved = listing_moved or _listed_apart(k.previous[facts.hash].facts, facts)
    else:
        fresh, todo, listing_moved = _sort_out(k.listed, judgements, now)
    # The keys followed change only when a key is new, renamed, relabelled, moved to
    # another workspace, missing or back: a key listed with new counters under the same
    # name (one that spends) is as `follow` left it.
    if listing_moved or missing:
        listing = [(f.hash, f.name, f.label, f.workspace_id) for f in k.listed]
        known, changes = keys.follow(k.known, listing, now)
        missing = any(map(_MISSING_SINCE, known.values()))
    if changes:
        states = _move_alerts(states, changes, {f.name for f in k.listed})
    for what, _, before in changes:
        if what == "deleted" and before is not None:
            notices.append(
                Event(
                    "notice",
                    "key_deleted",
                    before.name,
                    "warning",
                    now,
                    now,
                    f"Key {before.name} is no longer listed at the provider (deleted): it is "
                    "no longer watched, and its alerts end here.",
                )
            )
    held = alerts.firing(states) if todo else {}
    for facts in todo:
        previous = judgements.get(facts.hash)
        history = k.histories.get(facts.hash)
        if previous is not None and not keys.needs_judging(previous, facts, now):
            same = previous.facts is facts
            fresh[facts.hash] = previous if same else replace(previous, facts=facts)
        elif history is not None:
            fresh[facts.hash] = keys.judge(
                facts,
                history,
                now,
                i.policy.budget,
                horizon=horizon,
                killswitch=i.policy.killswitch,
                held=held,
                prior=k.priors.get(facts.hash),
            )
        else:
            del fresh[facts.hash]  # never measured: not judged yet
    for what, key, _ in changes:
        if what == "missing" and key.hash in judgements:
            fresh[key.hash] = judgements[key.hash]  # as it was, until a listing says more
    return states, cast(dict[str, keys.KeyJudgement], fresh), known, changes, notices, missing


def _due_only(
    listed: Sequence[keys.KeyFacts], previous: Mapping[str, keys.KeyJudgement], now: datetime
) -> list[keys.KeyFacts] | None:
    """When `listed` has the keys of `previous` in its order, the facts to look at: a key
    listed as other facts than its judgement was made from, or whose judgement no longer
    stands (`valid_until`). None when the keys or their order differ."""
    if len(listed) != len(previous):
        return None
    before = list(previous.values())
    # In C, without visiting the facts: which places hold other facts, or are due.
    anew = map(operator.is_not, map(_FACTS, before), listed)
    due = map(now.__ge__, map(_VALID_UNTIL, before))
    todo = []
    for n in compress(range(len(before)), map(operator.or_, anew, due)):
        facts = listed[n]
        if facts.hash != before[n].facts.hash:
            return None  # another key here: another order, or another listing
        todo.append(facts)
    return todo


def _sort_out(
    listed: Sequence[keys.KeyFacts], judgements: Mapping[str, keys.KeyJudgement], now: datetime
) -> tuple[dict[str, keys.KeyJudgement | None], list[keys.KeyFacts], bool]:
    """One pass over the listing: a key listed as the very facts its judgement was made
    from (watchdog.keyring keeps an unchanged key's facts) keeps that judgement until it
    is due; the others (`todo`) hold their place (None) in the listing's order, which is
    the order of the alerts and messages. And whether a key is new, renamed, relabelled
    or moved to another workspace."""
    get = judgements.get
    fresh: dict[str, keys.KeyJudgement | None] = {}
    todo: list[keys.KeyFacts] = []
    listing_moved = len(listed) != len(judgements)
    for facts in listed:
        previous = get(facts.hash)
        if previous is not None and previous.facts is facts:
            if now < previous.valid_until:
                fresh[facts.hash] = previous  # listed as before, nothing due: the common case
                continue
        elif not listing_moved:
            listing_moved = previous is None or _listed_apart(previous.facts, facts)
        fresh[facts.hash] = None
        todo.append(facts)
    return fresh, todo, listing_moved


def _listed_apart(before: keys.KeyFacts, facts: keys.KeyFacts) -> bool:
    """Whether a key is listed under another name, label or workspace than when it was
    last judged (what `keys.follow` compares)."""
    return (before.name, before.label, before.workspace_id) != (
        facts.name,
        facts.label,
        facts.workspace_id,
    )


def _move_alerts(
    states: Mapping[Ident, AlertState],
    changes: Sequence[tuple[str, KnownKey, KnownKey | None]],
    listed: Collection[str],
) -> dict[Ident, AlertState]:
    """The alert states after this listing's changes, in one pass over the old names (so
    two keys that swap names move right): a renamed key's alerts follow it; a deleted
    key's end (its notice says so) unless a key listed now has taken its name (`listed`:
    this listing's names), whose alerts they are by then; the account's (`*`) stay. A key
    renamed onto the name of one no longer listed brings its own alerts: the other's
    under that name end."""
    renamed = {c[2].name: c[1].name for c in changes if c[0] == "renamed" and c[2] is not None}
    deleted = {c[2].name for c in changes if c[0] == "deleted" and c[2] is not None}
    deleted -= set(listed)
    # A name another key was renamed onto, and whose key did not move away: that key is
    # gone from the listing, and its alerts under the name are not the newcomer's.
    taken = set(renamed.values()) - set(renamed)
    out: dict[Ident, AlertState] = {}
    moved: dict[Ident, AlertState] = {}
    for (rule, name), state in states.items():
        if name != WATCHED and (name in deleted or name in taken):
            continue
        new = renamed.get(name, name) if name != WATCHED else name
        (out if new == name else moved)[(rule, new)] = state
    out.update(moved)
    return out
