"""One unit of work, every poll_interval: read → decide → commit → apply.

- read: poll the provider (unless it asked us to wait), the clock once, the operator's
  override and silences from the store, the account's activity once a day;
- decide: `watchdog.core.decide` — every budget decision, pure;
- commit: one store transaction with the sample, alert states, outbox rows, permit state
  and audit entry, so a crash leaves all of a tick's state or none of it;
- apply: the permit file, keys disabled or re-enabled at the provider, the view the HTTP
  server answers from, one log line.

The daemon schedules `run()`; tests call it with a hand-moved clock and a fake provider.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from itertools import compress
from operator import is_not
from typing import Any

from watchdog import permitfile
from watchdog.core import burn, view
from watchdog.core import keys as keyrules
from watchdog.core.burn import Metrics
from watchdog.core.decide import Inputs, Outcome, decide
from watchdog.core.keys import KeyFacts, provider_actions
from watchdog.core.model import (
    AlertState,
    Event,
    Finding,
    Ident,
    KeySample,
    Override,
    PermitChange,
    Policy,
    PollHealth,
    Sample,
    Silence,
    Snapshot,
    TargetHealth,
)
from watchdog.core.permit import Decision, PermitState
from watchdog.core.view import View
from watchdog.core.words import money, rounded
from watchdog.digester import Digester, Due
from watchdog.keyring import ASK_PER_TICK, KeyRing
from watchdog.leader import Leadership
from watchdog.log import scrub
from watchdog.notify import Target
from watchdog.providers.base import (
    AccountAdmin,
    AuthError,
    Provider,
    ProviderBudgetExceeded,
    ProviderError,
)
from watchdog.store import LeadershipLost, Store, StoreError, StoreUnavailable, WatchedKey

# The causes of a revocation that an operator's `arm` clears (core.permit.decide).
OPERATOR_CAUSES = frozenset({"manual", "latch"})
# Thin old samples about once an hour: the query is cheap but not free on a year of rows.
THIN_EVERY = timedelta(hours=1)
# The page's hourly chart is redrawn this often.
CHART_EVERY = timedelta(minutes=5)
# The account's activity (a cold-start baseline) changes once a day; ask that often.
ACTIVITY_EVERY = timedelta(hours=24)


class ClockOff(Exception):
    """This host's clock is too far from the shared database's to act (watchdog.leader)."""


@dataclass
class Memory:
    """What one tick hands the next; `resume` rebuilds it from the store after a restart."""

    poll: PollHealth
    history: burn.History
    alerts: dict[Ident, AlertState]
    permit: PermitState
    watched: WatchedKey
    prior: burn.Prior = field(default_factory=burn.Prior)
    snapshot: Snapshot | None = None
    disable_error: str | None = None
    permit_error: str | None = None
    key_permit_error: str | None = None  # some keys' permit files could not be written
    last_thin: datetime | None = None
    last_activity: datetime | None = None
    identity_told: bool = False
    # The account's activity (date, model, provider, spend), for the page's charts.
    activity: tuple[tuple[date, str, str, float], ...] = ()
    # The page's 7-day hourly chart and when it was drawn (see Tick._chart).
    chart: tuple[tuple[datetime, float | None], ...] = ()
    chart_at: datetime | None = None
    # The savings the day's audit found: (message, USD), largest first.
    savings: tuple[tuple[str, float], ...] = ()
    # Every key of the account (with a management key; None without).
    keys: KeyRing | None = None


@dataclass(frozen=True)
class TickResult:
    """What a tick did: the poll's snapshot or error, and what was decided (None when the
    tick failed: `failure` says why)."""

    now: datetime
    snapshot: Snapshot | None
    error: ProviderError | None
    skipped: bool
    outcome: Outcome | None
    failure: str | None = None

    def _decided(self) -> Outcome:
        if self.outcome is None:
            raise RuntimeError(f"the tick failed: {self.failure}")
        return self.outcome

    @property
    def decision(self) -> Decision:
        return self._decided().decision

    @property
    def findings(self) -> list[Finding]:
        return self._decided().findings

    @property
    def metrics(self) -> Metrics:
        return self._decided().metrics

    @property
    def events(self) -> list[Event]:
        return self._decided().events


class LatestView:
    """The view the tick published last, read by the HTTP server and systemd's STATUS=.
    Replacing it is one reference assignment: a reader sees the old view or the new."""

    def __init__(self, first: View) -> None:
        self.current = first

    def get(self) -> View:
        return self.current


def resume(store: Store, policy: Policy, now: datetime) -> Memory:
    """The memory a daemon starts with: history, alerts and the permit from the store."""
    since = burn.samples_needed_since(now, policy.budget.tz)
    error, kind, at = store.poll_error()
    last = store.last_sample()
    poll = PollHealth(
        started_at=now,
        last_success=last.ts if last else None,
        last_error=error,
        last_error_kind=kind,
        last_error_at=at,
    )
    return Memory(
        poll=poll,
        history=burn.history_from(store.history(since), now),
        alerts=store.load_alerts(),
        permit=store.permit_state(),
        watched=store.watched_key(),
    )


class Tick:
    """Runs one tick. Holds no scheduler and no threads: call run() as often as needed."""

    def __init__(
        self,
        *,
        policy: Policy,
        provider: Provider,
        admin: AccountAdmin | None,
        store: Store,
        permit: permitfile.Issuer,
        clock: Callable[[], datetime],
        log: Any,
        targets: Sequence[Target] = (),
        memory: Memory | None = None,
        published: LatestView | None = None,
        reserved: Callable[[datetime], float] | None = None,
        digester: Digester | None = None,
        key_permits: permitfile.KeyPermits | None = None,
        reserved_by_key: Callable[[datetime], Mapping[str, float]] | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.policy = policy
        # Several instances on one database: only the leader polls, decides for the store
        # and acts; a follower decides from the shared state and writes its own permit.
        self.leadership = leadership
        self._led: bool | None = None  # whether the last tick ran as the leader
        self._term: int | None = None  # the term this tick runs in (its commit is fenced by it)
        self._seen: datetime | None = None  # a follower: the newest sample it has read
        # Every key's own permit file (management key), synced before the account's.
        self.key_permits = key_permits
        self.reserved_by_key = reserved_by_key or (lambda now: {})
        self._polled = False
        self._unmatched: list[str] = []  # [[budget.keys]] entries last said to match no key
        self.provider = provider
        self.admin = admin
        self.store = store
        # The permit file; its lease runs on the issuer's clock (the wall clock that jobs
        # read it with; only the demo's accelerated clock differs from the tick's).
        self.permit = permit
        self.permit_path = permit.path
        self.clock = clock
        # Money held by pre-flight reservations: the permit's headroom leaves it out.
        self.reserved = reserved or (lambda now: 0.0)
        self.log = log
        self.digester = digester
        self.targets = tuple(targets)
        self.memory = memory or resume(store, policy, clock())
        if self.admin is not None and self.memory.keys is None:
            now = clock()
            since = burn.samples_needed_since(now, policy.budget.tz)
            self.memory.keys = KeyRing.resume(store, since, now)
        if self.admin is not None and self.memory.watched.hash:
            self.admin.remember_watched_key(self.memory.watched.hash)
        first = view.starting(self.memory.poll.started_at, policy.budget, self.memory.poll)
        self.published = published or LatestView(first)

    @property
    def view(self) -> View:
        return self.published.current

    @view.setter
    def view(self, value: View) -> None:
        self.published.current = value

    def run(self) -> TickResult:
        """Poll, decide, commit, apply. A failed poll is logged and counted; so is a tick
        that fails for any other reason (a full disk, a bug): it never raises, and it
        fails closed."""
        before = self.memory.poll
        try:
            if self.leadership is not None and self.leadership.clock_problem is not None:
                raise ClockOff(self.leadership.clock_problem)
            if self.leadership is not None and not self._leads():
                return self._follow()
            try:
                return self._run()
            except LeadershipLost as lost:  # another instance leads now: its writes count
                self.log.warning("leadership_lost", detail=str(lost))
                self._led = False
                return self._follow()
        except Exception as exc:  # the loop must survive, and say what happened
            return self._failed(before, exc)

    def _leads(self) -> bool:
        """Whether this instance leads now (the election runs beside the tick: see
        watchdog.leader); a follower that has just become the leader first catches up
        with what the old one left in the store (alerts, permit, latches, keys)."""
        assert self.leadership is not None
        leading = self.leadership.is_leading()
        term = self.leadership.role.term
        if leading and (self._led is False or term != self._term):
            # Led before, in an earlier term: another leader may have acted between.
            self._catch_up(self.clock())
            self.memory.poll = replace(self.memory.poll, not_before=None)
            self.log.warning("leading", instance=self.leadership.instance_id, term=term)
        self._led, self._term = leading, term
        return leading

    def _failed(self, before: PollHealth, exc: Exception) -> TickResult:
        """A tick that raised: the data it read was not used (so it is not fresh), the
        error is the last error, and the permit is revoked — we do not know."""
        now = self.clock()
        kind = "state" if isinstance(exc, StoreError | sqlite3.Error | OSError) else "tick"
        message = scrub(f"{type(exc).__name__}: {exc}")
        self.memory.poll = before.failed(now, kind, message)
        reason = f"the tick failed ({message})"
        what = "The state file cannot be written" if kind == "state" else "The tick failed"
        failure = Finding(
            kind,
            "critical",
            None,
            None,
            f"{what}: {message}. Launches are refused until a tick succeeds.",
            unit="",
        )
        others = tuple(f for f in self.view.findings if f.rule != kind)
        self.view = replace(
            self.view,
            generated_at=now,
            poll=self.memory.poll,
            armed=False,
            permit_reason=reason,
            state="critical",
            findings=(failure, *others),
        )
        self.log.exception("tick_failed", kind=kind, error=message)
        if isinstance(exc, StoreUnavailable) and self.store.engine != "sqlite":
            # The shared database is out of reach (a network cut, a restart of it): the
            # permit this host holds runs out at its lease, as the leader's would; a
            # blip shorter than that stops no job. /preflight says no-go meanwhile.
            return TickResult(now, None, None, False, None, failure=message)
        try:
            self.permit.revoke()
        except OSError as revoke_error:
            self.log.error("permit_revoke_failed", error=str(revoke_error))
        return TickResult(now, None, None, False, None, failure=message)

    def _run(self) -> TickResult:
        m = self.memory
        snapshot, error, skipped = self._poll()
        self._polled = snapshot is not None  # this tick has a fresh listing
        now = self.clock()
        sample = self._absorb(snapshot, now) if snapshot is not None else None
        key_samples: list[KeySample] = []
        if m.keys is not None and snapshot is not None and self.admin is not None:
            key_samples = m.keys.absorb(snapshot.keys, now, self.policy.budget)
            self._ask_key_priors(m.keys, now)
            if m.keys.entries_moved:
                self._warn_unmatched(m.keys)
        if error is not None:
            m.poll = m.poll.failed(
                now,
                error.kind,
                scrub(error.message),
                retry_after=error.retry_after,
                auth=isinstance(error, AuthError),
                budget=isinstance(error, ProviderBudgetExceeded),
            )
        self._refresh_prior(now)
        silences, override = self.store.silences(now), self.store.override()
        outcome = self._decide(now, silences, override, m.disable_error)
        due = self._digest(now, outcome) if self.digester is not None else None
        self._commit(now, sample, error, outcome, due, key_samples, override.armed_at)
        m.alerts, m.permit = outcome.alerts, outcome.permit
        if m.keys is not None:
            self._follow_keys(outcome)
        result = TickResult(now, snapshot, error, skipped, outcome)
        self.view = self._view(now, outcome, silences)
        self._apply_permit(outcome)
        self._apply_key_actions(now, outcome)
        self._maybe_thin(now)
        self._log(result, outcome)
        return result

    def _decide(
        self,
        now: datetime,
        silences: dict[str, Silence],
        override: Override,
        disable_error: str | None = None,
    ) -> Outcome:
        """`decide` on this instance's memory (the leader's tick and a follower's alike)."""
        m = self.memory
        return decide(
            Inputs(
                now=now,
                policy=self.policy,
                history=m.history,
                prior=m.prior,
                poll=m.poll,
                alerts=m.alerts,
                permit=m.permit,
                override=override,
                silences=silences,
                recipients=[t.recipient for t in self.targets],
                key_name=m.watched.name,
                disable_error=disable_error,
                permit_error=m.permit_error,
                key_permit_error=m.key_permit_error,
                keys=m.keys.inputs() if m.keys is not None else None,
            )
        )

    # -- follow ----------------------------------------------------------------------

    def _follow(self) -> TickResult:
        """A follower's tick: no poll and no write. It reads what the leader committed
        (samples, alert states, the permit's state and latches, the operator's override,
        silences, keys), decides from it exactly as the leader does, and writes this
        host's permit files — never armed while the leader's decision is revoked. When
        the leader stops committing, the data goes stale here as there: fail closed."""
        now = self.clock()
        m = self._catch_up(now)
        silences, override = self.store.silences(now), self.store.override()
        outcome = self._decide(now, silences, override)  # it disables nothing: no error
        # The leader's decision, as committed, binds: it judged what only the leader
        # sees (its poll's errors, the provider's activity). Only a revocation an operator
        # cleared since (a trip, a latch: `arm` after it was decided) is judged anew here,
        # before the leader has seen the arm.
        shared = m.permit
        causes, seen_arm = self.store.permit_decided()
        cleared = (
            override.armed_at is not None
            and override.armed_at != seen_arm  # an arm the leader has not decided on yet
            and bool(causes)
            and set(causes) <= OPERATOR_CAUSES
        )
        if outcome.decision.armed and shared.armed is False and not cleared:
            reason = shared.reason or "the leader revoked the permit"
            outcome = replace(
                outcome, decision=replace(outcome.decision, armed=False, reason=reason)
            )
        if m.keys is not None:
            m.keys.remember(outcome)
        if m.last_thin is None or now - m.last_thin >= THIN_EVERY:
            m.last_thin = now  # the leader thins the store; a follower its memory
            m.history.compact(now)
            if m.keys is not None:
                m.keys.compact(now)
        self.view = self._view(now, outcome, silences)
        self._apply_permit(outcome)
        self.log.debug(
            "followed",
            leader=self.leadership.role.leader_id if self.leadership else None,
            permit="armed" if outcome.decision.armed else "revoked",
            data_age_s=rounded(m.poll.data_age(now)),
        )
        return TickResult(now, None, None, True, outcome)

    def _catch_up(self, now: datetime) -> Memory:
        """This instance's memory brought up to what the store holds: the history read
        again when the leader committed a newer sample (with the keys' curves), the
        alert and permit states every time (another instance may have changed them)."""
        m, store = self.memory, self.store
        last = store.last_sample()
        newest = last.ts if last is not None else None
        if newest != self._seen:
            mine = m.history.last
            if mine is not None and newest is not None and newest > mine.ts and self._seen:
                # What the leader added since: appended, not the month read again.
                for sample in store.history(mine.ts + timedelta(milliseconds=1)):
                    m.history.add(sample)
                m.watched = store.watched_key()
                if m.keys is not None:
                    m.keys.known, m.keys.missing = store.known_keys(), None
                    m.keys.follow(
                        store.key_samples_since(self._seen + timedelta(milliseconds=1)), newest
                    )
            else:
                fresh = resume(store, self.policy, now)
                m.history, m.watched = fresh.history, fresh.watched
                m.chart_at = None
                if m.keys is not None:
                    since = burn.samples_needed_since(now, self.policy.budget.tz)
                    ring = KeyRing.resume(store, since, now)
                    ring.synced = m.keys.synced
                    ring.priors, ring.asked = m.keys.priors, m.keys.asked
                    m.keys = ring
            self._seen = newest
        if m.keys is not None:
            _listing_from_store(m.keys, self.policy)
        error, kind, at = store.poll_error()
        m.poll = replace(
            m.poll,
            last_success=newest,
            last_error=error,
            last_error_kind=kind,
            last_error_at=at,
        )
        m.alerts, m.permit = store.load_alerts(), store.permit_state()
        return m

    # -- read ------------------------------------------------------------------------

    def _poll(self) -> tuple[Snapshot | None, ProviderError | None, bool]:
        not_before = self.memory.poll.not_before
        if not_before is not None and self.clock() < not_before:
            return None, None, True
        try:
            return self.provider.fetch(), None, False
        except ProviderError as exc:
            return None, exc, False

    def _absorb(self, snapshot: Snapshot, now: datetime) -> Sample:
        """A successful poll: its sample joins the history (and is returned, to be kept);
        the watched key is noted. A sample is never dropped: when the clock has stepped
        back behind the newest data, it is kept just after it (the `clock` rule says no-go
        until the clock catches up)."""
        m = self.memory
        # Stamped with the tick's own reading of the clock (read once per tick), not the
        # provider's: every window and the data's age are then measured on one clock.
        sample = replace(snapshot.to_sample(), ts=now)
        newest = m.history.last
        if newest is not None and sample.ts <= newest.ts:
            self.log.warning(
                "clock_behind_data",
                detail="the clock is behind the newest sample (stepped back?): the sample is "
                "kept after it, and launches wait until the clock catches up",
                behind_s=rounded((newest.ts - sample.ts).total_seconds()),
            )
            sample = replace(sample, ts=newest.ts + timedelta(milliseconds=1))
        resets = m.history.counter_resets
        m.history.add(sample)
        if m.history.counter_resets > resets:
            self.log.warning(
                "usage_counter_reset",
                detail="the usage counter went down (a replaced key?): spend since counts "
                "from the new counter; nothing is subtracted",
                usage=money(sample.usage),
            )
        auth_error = None
        key = snapshot.key
        if key is not None:
            m.watched = WatchedKey(key.display_name, key.hash or m.watched.hash)
            if key.disabled and key.hash not in self.store.disabled_keys():
                auth_error = "the watched key is disabled at the provider"
        else:
            m.watched = WatchedKey("the account", m.watched.hash)
        m.snapshot = snapshot
        m.poll = m.poll.succeeded(now, auth_error)
        self._tell_identity()
        return sample

    def _tell_identity(self) -> None:
        """Once the first poll has identified the watched key, say whether the switch at
        the provider can act on it (with `killswitch.disable_keys`): once, not per tick."""
        m = self.memory
        if m.identity_told or self.admin is None or not self.policy.killswitch.disable_keys:
            return
        identity = self.admin.watched_key_identity()
        if identity.pending:
            return
        m.identity_told = True
        if identity.problem:
            self.log.warning("key_switch_unavailable", detail=identity.problem)
        else:
            self.log.info("key_switch_ready", key_hash=identity.hash, found_by=identity.source)

    def _refresh_prior(self, now: datetime) -> None:
        """The account's 30-day activity (management key only), once a day: the page's
        charts, and a cold-start baseline when it describes what we watch (the account,
        or its only key)."""
        m = self.memory
        if self.admin is None or m.snapshot is None:
            return
        if m.last_activity is not None and now - m.last_activity < ACTIVITY_EVERY:
            return
        m.last_activity = now
        try:
            rows = self.admin.activity()
        except ProviderError as exc:
            self.log.warning("activity_failed", error=exc.message, kind=exc.kind)
            return
        m.activity = tuple((r.date, r.model, r.provider_name, r.spend) for r in rows)
        if self.digester is not None and rows:
            try:  # the savings the page shows, from the day's audit
                found = self.digester.audit(rows, now, fetch=False).findings
                m.savings = tuple((f.message, f.savings) for f in found[:5])
            except (ProviderError, OSError, sqlite3.Error) as exc:
                self.log.warning("audit_failed", error=scrub(str(exc)))
        if m.snapshot.scope == "key" and len(m.snapshot.keys) != 1:
            return
        prior = burn.prior_from_activity([(r.date, r.usage) for r in rows], now.date())
        if prior is not None:
            m.prior = prior

    # -- commit ----------------------------------------------------------------------

    def _warn_unmatched(self, ring: KeyRing) -> None:
        """Say once (until it changes) which [[budget.keys]] entries apply to no key: a
        glob with a typo would otherwise leave a job's limits silently unwatched."""
        unmatched = ring.unmatched(self.policy.budget)
        if unmatched != self._unmatched:
            self._unmatched = unmatched
            if unmatched:
                self.log.warning(
                    "budget_keys_unmatched",
                    match=unmatched,
                    detail="no key of the account gets these [[budget.keys]] entries (none "
                    "matches, or an earlier entry takes it: first match wins); their limits "
                    "apply to nothing",
                )

    def _ask_key_priors(self, ring: KeyRing, now: datetime) -> None:
        """The baseline of keys that spend, from their own activity (a few a tick, each
        once a day): a spike is judged against the key's usual spend from its first tick,
        not only once our own samples cover a week."""
        assert self.admin is not None
        for key_hash in ring.to_ask(now, ASK_PER_TICK):
            try:
                rows = self.admin.activity(api_key_hash=key_hash)
            except ProviderError as exc:
                self.log.warning("key_activity_failed", hash=key_hash[:8], error=exc.message)
                ring.learn(key_hash, None, now)
                continue
            days = [(r.date, r.spend) for r in rows]
            ring.learn(key_hash, burn.prior_from_activity(days, now.date()), now)

    def _follow_keys(self, o: Outcome) -> None:
        """The keys' judgements and listing changes, kept for the next tick and logged."""
        ring = self.memory.keys
        assert ring is not None
        ring.remember(o)
        first = all(what == "new" and before is None for what, _, before in o.key_changes)
        if first and len(o.key_changes) > 3:
            self.log.info("keys_followed", count=len(o.key_changes))
            return
        for what, key, before in o.key_changes:
            if what == "deleted":
                ring.forget(key.hash)
                self.log.warning("key_deleted", key=key.name, hash=key.hash[:8])
            elif what == "renamed" and before is not None:
                self.log.info("key_renamed", key=key.name, was=before.name, hash=key.hash[:8])
            elif what == "changed":
                self.log.info("key_changed", key=key.name, workspace=key.workspace_id)
            else:
                self.log.info("key_new", key=key.name, hash=key.hash[:8])

    def _digest(self, now: datetime, o: Outcome) -> Due | None:
        """The digest due now, if any (composing it may read activity and prices: a failure
        there delays the digest to the next tick, it never fails the tick)."""
        assert self.digester is not None
        try:
            return self.digester.due(now, o.metrics, [t.recipient for t in self.targets])
        except (ProviderError, OSError, sqlite3.Error) as exc:
            self.log.warning("digest_failed", error=scrub(str(exc)))
            return None

    def _commit(
        self,
        now: datetime,
        sample: Sample | None,
        error: ProviderError | None,
        o: Outcome,
        due: Due | None = None,
        key_samples: Sequence[KeySample] = (),
        seen_arm: datetime | None = None,
    ) -> None:
        with self.store.unit() as unit:
            if self.leadership is not None:
                # A deposed leader's tick, or one begun in an earlier term, writes nothing.
                self.leadership.fence(unit, self._term)
            if sample is not None:
                unit.add_samples([sample])
            if key_samples:
                unit.add_key_samples(key_samples)
            if o.key_changes:
                unit.save_keys([key for _, key, _ in o.key_changes])
            unit.save_alerts(o.alerts)
            unit.enqueue(o.outbox)
            if o.transition is not None:
                d = o.decision
                unit.audit(PermitChange(now, "armed" if d.armed else "revoked", d.actor, d.reason))
            unit.save_permit(o.permit, self.memory.watched, now, o.decision.causes, seen_arm)
            if error is not None:
                unit.save_poll_error(scrub(error.message), error.kind, now)
            if due is not None:  # with its slot, in this transaction: exactly once
                unit.enqueue(due.rows)
                unit.save_digest_state(due.slot, due.since)
        if due is not None and due.rows:
            self.log.info("digest_queued", slot=due.slot.isoformat() if due.slot else None)

    # -- apply -----------------------------------------------------------------------

    def _view(self, now: datetime, o: Outcome, silences: dict[str, Silence]) -> View:
        m = self.memory
        health = self.store.target_health() if self.targets else {}
        built = view.build(
            now=now,
            budget=self.policy.budget,
            metrics=o.metrics,
            findings=o.findings,
            decision=o.decision,
            poll=m.poll,
            key_name=m.watched.name,
            scope=m.snapshot.scope if m.snapshot else "key",
            silences=silences,
            targets=[
                view.TargetView(t.id, t.shown, t.severities, health.get(t.id, TargetHealth()))
                for t in self.targets
            ],
            permit_history=self.store.audit_log(10),
            chart=self._chart(now),
            stale_revokes=self.policy.killswitch.on_stale == "revoke",
            finding_since={a.ident: a.since for a in o.alerts.values() if a.firing},
            latest=m.history.last,
            activity=m.activity,
            savings=m.savings,
            month_days=burn.daily_spend(
                m.history, now, now.astimezone(self.policy.budget.tz).day, self.policy.budget.tz
            ),
            key_judgements=list(o.judgements.values()),
            key_verdicts=o.verdicts,
            keys_watched=m.keys is not None,
            previous_keys=self.view.key_table,
        )
        # The decision stands as long as the permit file written with it.
        return replace(built, decided_until=now + self._lease(now))

    def _chart(self, now: datetime) -> tuple[tuple[datetime, float | None], ...]:
        """The 7-day hourly chart, redrawn every CHART_EVERY (and at each new hour): it
        was the costliest part of a tick, and a bar per hour needs no per-poll precision."""
        m = self.memory
        hour = now.replace(minute=0, second=0, microsecond=0)
        if m.chart_at is None or now - m.chart_at >= CHART_EVERY or m.chart_at < hour:
            m.chart, m.chart_at = tuple(m.history.hourly(now, 168)), now
        return m.chart

    def _apply_permit(self, o: Outcome) -> None:
        try:
            now = o.metrics.now
            if self.key_permits is not None:
                try:
                    self._sync_key_permits(o)
                except OSError as exc:
                    # The keys whose files failed have none (no-go for their jobs); the
                    # account's permit is decided on its own, and retried next tick. The
                    # next tick tells the operator (a permit_write warning).
                    self.memory.key_permit_error = (
                        f"{exc.filename or self.key_permits.directory}: {exc.strerror or exc}"
                    )
                    self.log.error("key_permit_write_failed", error=str(exc))
                else:
                    self.memory.key_permit_error = None
            if o.decision.armed:
                self.permit.arm(
                    self._lease(now),
                    o.metrics.balance,
                    o.metrics.runway_days,
                    self.view.headroom,  # measured once per tick, in the view
                    self.reserved(now),  # held by reservations: left out of the headroom
                )
            else:
                self.permit.revoke()
        except OSError as exc:
            # Jobs see no permit (fail-closed); the view must not say otherwise, and the
            # next tick raises a critical finding until a write succeeds.
            error = f"{self.permit_path}: {exc.strerror or exc}"
            self.memory.permit_error = error
            self.log.error("permit_write_failed", path=str(self.permit_path), error=str(exc))
            if o.decision.armed:
                self.view = replace(
                    self.view, armed=False, permit_reason=f"cannot write the permit ({error})"
                )
        else:
            self.memory.permit_error = None

    def _sync_key_permits(self, o: Outcome) -> None:
        """Each key's own verdict in its file (the account's permit says the rest, and its
        lease covers them). Only keys whose judgement changed since the last sync are
        looked at; of those, only files whose content changed are rewritten. OSError."""
        assert self.key_permits is not None
        ring = self.memory.keys
        if ring is None:
            return
        # Holds that expired since the last change free their keys' headroom again.
        self.key_permits.hold(self.reserved_by_key(o.metrics.now))
        before, now = ring.synced, o.judgements
        changed = {}
        # The same keys under the same names (the common case) remove no file: then the
        # names need not be gathered, with hundreds of keys, at every tick.
        same_names = len(before) == len(now)
        get = before.get
        # In C, without visiting the judgements: the keys judged anew since the last sync.
        for key_hash, j in compress(now.items(), map(is_not, now.values(), map(get, now))):
            last = get(key_hash)
            if last is None or last.facts.name != j.facts.name:
                same_names = False
            v = j.own
            changed[v.name] = permitfile.KeyPermit(v.name, v.hash, v.armed, v.reason, v.headroom)
        removed = []
        if not same_names:
            names = {j.facts.name for j in now.values()}
            removed = [j.facts.name for j in before.values() if j.facts.name not in names]
        if not changed and not removed:
            return
        written = self.key_permits.update(changed, removed)
        ring.synced = dict(now)
        if written:
            self.log.debug("key_permits_synced", changed=written)

    def _lease(self, now: datetime) -> timedelta:
        """How long the permit written now may stand: the ttl, but never past the moment
        the data goes stale when stale data revokes — so a hung tick cannot leave a valid
        permit behind that /preflight already refuses."""
        ks, ttl = self.policy.killswitch, self.policy.killswitch.ttl
        age = self.memory.poll.data_age(now)
        if ks.on_stale != "revoke" or age is None:
            return ttl
        left = self.policy.budget.stale_after - timedelta(seconds=age)
        return max(timedelta(0), min(ttl, left))

    def _apply_key_actions(self, now: datetime, o: Outcome) -> None:
        """Disable or re-enable keys at the provider: the watched keys while the account's
        permit is revoked (`killswitch.disable_keys`), and a key whose own findings revoke
        it with `action = "disable"`; re-enabled only when the watchdog disabled them."""
        m = self.memory
        if self.admin is None:
            return
        if self.leadership is not None and not self.leadership.is_leading():
            return  # our lease ran out during the tick: the next leader acts
        ours = self.store.disabled_keys()
        account = []
        if self.policy.killswitch.disable_keys and not o.decision.armed:
            account = _watched_keys(m.snapshot)
        elif not self.policy.killswitch.disable_keys and not o.judgements and not ours:
            return
        snapshot = m.snapshot if self._polled else None
        # Only a key we disabled is re-enabled, and only when listed now (gathered then).
        listed = {k.hash for k in snapshot.keys if k.hash} if snapshot and ours else set()
        disable, enable = provider_actions(
            o.judgements, account, ours, self.policy.killswitch.revoke_on, listed
        )
        for key_hash, name in list(ours.items()):
            known = o.known.get(key_hash)
            if known is not None and known.deleted_at is not None:
                with self.store.unit() as unit:  # deleted: nothing left to re-enable
                    unit.forget_disabled(key_hash)
                self.log.info("key_disabled_forgotten", key=name, reason="deleted")
        for key_hash, name in enable:
            try:
                self.admin.set_key_disabled(key_hash, False)
            except ProviderError as exc:
                self.log.error("key_enable_failed", key=name, error=exc.message)
                continue
            with self.store.unit() as unit:
                unit.forget_disabled(key_hash)
            self.log.warning("key_enabled", key=name, reason="its findings cleared")
        errors = []
        for key_hash, name, reason in disable:
            try:
                self.admin.set_key_disabled(key_hash, True)
            except ProviderError as exc:
                errors.append(f"{name}: {exc.message}")
                self.log.error("key_disable_failed", key=name, error=exc.message)
                continue
            with self.store.unit() as unit:
                unit.record_disabled(key_hash, name, now, reason)
            self.log.warning("key_disabled", key=name, reason=reason)
        m.disable_error = "; ".join(errors) if errors else None

    def _maybe_thin(self, now: datetime) -> None:
        m = self.memory
        if m.last_thin is None or now - m.last_thin >= THIN_EVERY:
            m.last_thin = now
            with self.store.unit() as unit:
                unit.thin(now)
            m.history.compact(now)
            if m.keys is not None:  # the keys' curves, thinned as the store's rows are
                m.keys.compact(now)

    def _log(self, r: TickResult, o: Outcome) -> None:
        poll = self.memory.poll
        common = {
            "data_age_s": rounded(poll.data_age(r.now)),
            "findings": [
                f"{f.rule}:{f.severity}" + (":predicted" if f.predicted else "") for f in o.findings
            ],
            "permit": "armed" if o.decision.armed else "revoked",
        }
        for event in o.events:
            self.log.warning(
                "alert",
                kind=event.kind,
                rule=event.rule,
                severity=event.severity,
                message=event.message,
            )
        if r.error is not None:
            self.log.warning(
                "poll_failed",
                error=r.error.message,
                kind=r.error.kind,
                status=r.error.status,
                retry_after_s=r.error.retry_after,
                failures_in_a_row=poll.consecutive_failures,
                **common,
            )
            return
        if r.skipped or r.snapshot is None:
            self.log.info(
                "poll_deferred",
                reason="provider asked us to wait (Retry-After)",
                until=poll.not_before.isoformat() if poll.not_before else None,
                **common,
            )
            return
        m, sample = o.metrics, self.memory.history.last
        if sample is None:
            return
        self.log.info(
            "poll",
            at=r.now.isoformat(timespec="seconds"),
            spent_today=money(m.spent_today),
            spent_month=money(m.spent_month),
            balance=money(m.balance),
            burn_per_hour=money(m.rate_1h.per_hour),
            runway_days=rounded(m.runway_days),
            forecast_month=money(m.forecast_month),
            usage=money(sample.usage),
            usage_daily=money(sample.usage_daily),
            usage_monthly=money(sample.usage_monthly),
            state=self.view.state,
            **common,
        )


def _watched_keys(snapshot: Snapshot | None) -> list[tuple[str, str]]:
    """The keys a revocation disables: the watched key, or every enabled key of the
    account when only a management key is configured."""
    if snapshot is None:
        return []
    if snapshot.key is not None:
        key = snapshot.key
        return [(key.hash, key.display_name)] if key.hash else []
    return [(k.hash, k.display_name) for k in snapshot.keys if k.hash and not k.disabled]


def _listing_from_store(ring: KeyRing, policy: Policy) -> None:
    """A follower's listing of the keys: every key the leader follows (not deleted), as
    its last stored counters say, so the follower judges each key as the leader does."""
    live = {h: k for h, k in ring.known.items() if k.deleted_at is None and h in ring.last}
    names = keyrules.unique_names((h, k.name) for h, k in live.items())
    ring.listed = [
        KeyFacts(
            h,
            names.get(h, k.name),
            k.label,
            k.workspace_id,
            ring.last[h],
            policy.budget.key_budget(k.name, k.label, h),
        )
        for h, k in live.items()
    ]
