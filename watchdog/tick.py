"""One unit of work, every poll_interval: poll → store → measure → rules → alerts → actions.

A plain object with a `run()` method: the daemon schedules it, tests call it directly with
a hand-moved clock and a fake provider. The clock is read once per tick, after the poll,
and that `now` is handed to every decision. Decisions are pure (burn, rules, alerts,
permit.decide, messages); this module only wires them and performs the effects, with one
store transaction per tick so a crash leaves either all of a tick's state or none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from watchdog import alerts, burn, messages, permit, rules, status
from watchdog.config import Settings
from watchdog.notify import Target
from watchdog.providers.base import AuthError, Provider, ProviderError
from watchdog.snapshot import Sample, Snapshot
from watchdog.store import Store

# Thin old samples about once an hour: the query is cheap but not free on a year of rows.
THIN_EVERY = timedelta(hours=1)
# The account's activity (a cold-start baseline) changes once a day; ask that often.
ACTIVITY_EVERY = timedelta(hours=24)
# Predictions look this far ahead: the next poll, with margin for its own duration.
HORIZON_FACTOR = 1.25


@dataclass
class PollHealth:
    """What the loop knows about polling: for staleness, /healthz and metrics."""

    last_success: datetime | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    polls: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    not_before: datetime | None = None  # Retry-After: no poll before this
    auth_error: str | None = None  # set while the provider rejects the key


@dataclass(frozen=True)
class TickResult:
    now: datetime
    sample: Sample | None
    error: ProviderError | None
    skipped: bool
    metrics: burn.Metrics
    findings: list[rules.Finding]
    events: list[alerts.Event]
    decision: permit.Decision


class Tick:
    """Runs one tick. Holds no scheduler and no threads: call run() as often as needed."""

    def __init__(
        self,
        *,
        settings: Settings,
        provider: Provider,
        store: Store,
        clock: Callable[[], datetime],
        log: Any,
        targets: Sequence[Target] = (),
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.store = store
        self.clock = clock
        self.log = log
        self.targets = list(targets)
        self.health = PollHealth()
        self.started_at = clock()
        self.prior = burn.Prior()
        self.alert_states = store.load_alerts()
        self.view: status.View = status.starting_view(settings, self.started_at)
        self.snapshot: Snapshot | None = None
        self.disable_error: str | None = None
        self._silences: dict[str, alerts.Silence] = {}
        self._last_thin: datetime | None = None
        self._last_activity: datetime | None = None
        since = burn.samples_needed_since(self.started_at, settings.budget.tz)
        self.history = burn.history_from(store.history(since), self.started_at)
        last = store.last_sample()
        if last is not None:
            self.health.last_success = last.ts
        saved = store.get_meta("poll_health")
        if isinstance(saved, dict):
            self.health.last_error = saved.get("last_error")
            self.health.last_error_kind = saved.get("last_error_kind")
        state = store.get_meta("permit") or {}
        self.permit_armed: bool | None = state.get("armed")
        self.latched_since: str | None = state.get("latched_since")
        self.key_name: str = state.get("key_name") or "watched key"
        # The watched key's hash, so a restart can still find a key we disabled (its /key
        # answers 401 then) among the account's keys.
        self.watched_hash: str | None = state.get("watched_hash")
        remember = getattr(provider, "remember_watched_key", None)
        if self.watched_hash and remember is not None:
            remember(self.watched_hash)

    # -- the tick --------------------------------------------------------------------

    def run(self) -> TickResult:
        """Poll (unless the provider asked us to wait), then measure, judge, alert and act.
        A failed poll is logged and counted; it never raises."""
        snapshot, error, skipped = self._poll()
        now = self.clock()
        sample = snapshot.to_sample() if snapshot is not None else None
        if sample is not None:
            resets = self.history.counter_resets
            self.history.add(sample)
            if self.history.counter_resets > resets:
                self.log.warning(
                    "usage_counter_reset",
                    detail="the usage counter went down (a replaced key?): spend since counts "
                    "from the new counter; nothing is subtracted",
                    usage=round(sample.usage, 4),
                )
            self._record_success(now, snapshot)
        elif error is not None:
            self._record_failure(error, now)
        self._refresh_prior(now, snapshot)
        metrics = burn.measure(self.history, now, self.settings.budget.tz, self.prior)
        findings = self.evaluate(metrics)

        override = self.store.get_meta("override") or {}
        trip = _trip_from(override)
        latched = self._latched(override)
        decision = permit.decide(findings, self.settings.killswitch, trip=trip, latched=latched)
        events = self._advance_alerts(findings, now)
        transition = self._permit_transition(decision, now)
        if transition is not None:
            events.append(transition)
        ctx = messages.Context(
            metrics=metrics,
            budget=self.settings.budget,
            permit="armed" if decision.armed else "revoked",
            permit_reason="" if decision.armed else decision.reason,
            key_name=self.key_name,
            data_age_s=self.data_age(now),
        )
        rows = messages.route(events, ctx, self.targets, now)
        self._commit(now, sample, error, rows, decision, transition)
        result = TickResult(now, sample, error, skipped, metrics, findings, events, decision)
        self.view = self._build_view(result)
        self._apply_permit(decision, metrics, now)
        self._apply_key_disable(decision, now)
        self._maybe_thin(now)
        self._log(result)
        return result

    def _poll(self) -> tuple[Snapshot | None, ProviderError | None, bool]:
        started = self.clock()
        if self.health.not_before is not None and started < self.health.not_before:
            return None, None, True
        try:
            return self.provider.fetch(), None, False
        except ProviderError as exc:
            return None, exc, False

    def evaluate(self, metrics: burn.Metrics) -> list[rules.Finding]:
        """The rules, with the active alerts held for hysteresis, plus a failing key
        disable (an action of the last tick) as a critical finding."""
        poll = rules.PollState(
            last_success=self.health.last_success,
            started_at=self.started_at,
            auth_error=self.health.auth_error,
        )
        horizon = self.settings.provider.poll_interval * HORIZON_FACTOR
        held = {ident: state.severity for ident, state in self.alert_states.items()}
        findings = rules.evaluate(metrics, self.settings.budget, poll, horizon=horizon, held=held)
        if self.disable_error is not None:
            findings.insert(
                0,
                rules.Finding(
                    "key_disable",
                    "critical",
                    None,
                    None,
                    f"Could not disable the key at the provider: {self.disable_error}. "
                    "Retrying every poll; stop the jobs by hand if this persists.",
                    unit="",
                ),
            )
        return findings

    def _advance_alerts(self, findings: list[rules.Finding], now: datetime) -> list[alerts.Event]:
        self._silences = self.store.silences(now)
        new_states, events = alerts.advance(
            self.alert_states,
            findings,
            now,
            repeat_interval=self.settings.notify.repeat_interval,
            send_resolved=self.settings.notify.send_resolved,
            silences=self._silences,
        )
        self.alert_states = new_states
        return events

    # -- permit --------------------------------------------------------------------------

    def _latched(self, override: dict[str, Any]) -> bool:
        if self.latched_since is None:
            return False
        armed_at = override.get("armed_at")
        if not armed_at:
            return True
        return datetime.fromisoformat(armed_at) < datetime.fromisoformat(self.latched_since)

    def _permit_transition(self, decision: permit.Decision, now: datetime) -> alerts.Event | None:
        was = self.permit_armed
        if decision.latched and not decision.armed and self.latched_since is None:
            self.latched_since = now.isoformat()
        if decision.armed:
            self.latched_since = None
        self.permit_armed = decision.armed
        if was is None and decision.armed:
            return None  # first start with nothing wrong: armed quietly
        if was == decision.armed:
            return None
        kind: alerts.EventKind = "armed" if decision.armed else "revoked"
        message = (
            "Permit re-armed: batch launches are allowed again."
            if decision.armed
            else f"Permit revoked ({decision.reason}): new batch launches are blocked."
        )
        return alerts.Event(kind, "permit", rules.WATCHED, "critical", now, now, message)

    def _apply_permit(
        self, decision: permit.Decision, metrics: burn.Metrics, now: datetime
    ) -> None:
        path = self.settings.killswitch.path
        try:
            if decision.armed:
                body = permit.permit_body(
                    now,
                    self.settings.killswitch.ttl,
                    metrics.balance,
                    metrics.runway_days,
                    self.view.headroom,  # measured once per tick, in the view
                )
                permit.write(path, body)
            else:
                permit.revoke(path)
        except OSError as exc:
            # Cannot write the permit: jobs see it expire (fail-closed); say so every tick.
            self.log.error("permit_write_failed", path=str(path), error=str(exc))

    def _apply_key_disable(self, decision: permit.Decision, now: datetime) -> None:
        ks = self.settings.killswitch
        admin = getattr(self.provider, "set_key_disabled", None)
        if not ks.disable_keys or admin is None:
            return
        if not getattr(self.provider, "has_management_key", True):
            return
        ours = self.store.disabled_keys()
        if decision.armed:
            for key_hash, name in ours.items():
                try:
                    admin(key_hash, False)
                except ProviderError as exc:
                    self.log.error("key_enable_failed", key=name, error=exc.message)
                    continue
                self.store.forget_disabled(key_hash)
                self.log.warning("key_enabled", key=name, reason="permit re-armed")
            self.disable_error = None
            return
        errors = []
        for key_hash, name in self._watched_keys():
            if key_hash in ours:
                continue
            try:
                admin(key_hash, True)
            except ProviderError as exc:
                errors.append(f"{name}: {exc.message}")
                self.log.error("key_disable_failed", key=name, error=exc.message)
                continue
            self.store.record_disabled(key_hash, name, now, decision.reason)
            self.log.warning("key_disabled", key=name, reason=decision.reason)
        self.disable_error = "; ".join(errors) if errors else None

    def _watched_keys(self) -> list[tuple[str, str]]:
        snapshot = self.snapshot
        if snapshot is None:
            return []
        if snapshot.key is not None:
            key = snapshot.key
            return [(key.hash, key.display_name)] if key.hash else []
        return [(k.hash, k.display_name) for k in snapshot.keys if k.hash and not k.disabled]

    # -- persistence -------------------------------------------------------------------

    def _commit(
        self,
        now: datetime,
        sample: Sample | None,
        error: ProviderError | None,
        rows: list[messages.OutboxRow],
        decision: permit.Decision,
        transition: alerts.Event | None,
    ) -> None:
        with self.store.transaction() as db:
            if sample is not None:
                self.store.insert_sample(db, sample)
            self.store.save_alerts(db, self.alert_states)
            self.store.enqueue(db, rows)
            if transition is not None:
                self.store.audit(
                    db,
                    now,
                    "armed" if decision.armed else "revoked",
                    decision.actor,
                    decision.reason,
                )
            self.store.set_meta_in(
                db,
                "permit",
                {
                    "armed": decision.armed,
                    "reason": decision.reason,
                    "latched_since": self.latched_since,
                    "key_name": self.key_name,
                    "watched_hash": self.watched_hash,
                },
            )
            if error is not None:
                self.store.set_meta_in(
                    db,
                    "poll_health",
                    {
                        "last_error": error.message,
                        "last_error_kind": error.kind,
                        "at": now.isoformat(),
                    },
                )

    def _record_success(self, now: datetime, snapshot: Snapshot | None) -> None:
        health = self.health
        health.last_success = now
        health.polls += 1
        health.consecutive_failures = 0
        health.not_before = None
        health.auth_error = None
        self.snapshot = snapshot
        if snapshot is not None:
            if snapshot.key is not None:
                self.key_name = snapshot.key.display_name
                self.watched_hash = snapshot.key.hash or self.watched_hash
                if snapshot.key.disabled and snapshot.key.hash not in self.store.disabled_keys():
                    health.auth_error = "the watched key is disabled at the provider"
            else:
                self.key_name = "the account"

    def _record_failure(self, error: ProviderError, now: datetime) -> None:
        health = self.health
        health.polls += 1
        health.consecutive_failures += 1
        health.errors_by_kind[error.kind] = health.errors_by_kind.get(error.kind, 0) + 1
        health.last_error = error.message
        health.last_error_kind = error.kind
        health.last_error_at = now
        if error.retry_after is not None:
            health.not_before = now + timedelta(seconds=error.retry_after)
        if isinstance(error, AuthError):
            health.auth_error = error.message

    def _maybe_thin(self, now: datetime) -> None:
        if self._last_thin is None or now - self._last_thin >= THIN_EVERY:
            self._last_thin = now
            self.store.thin(now)
            self.history.compact(now)

    def _refresh_prior(self, now: datetime, snapshot: Snapshot | None) -> None:
        """The account's 30-day activity as a cold-start baseline (management key only,
        and only when it describes what we watch: the account, or its only key)."""
        activity = getattr(self.provider, "activity", None)
        if activity is None or snapshot is None:
            return
        if not getattr(self.provider, "has_management_key", True):
            return
        if self._last_activity is not None and now - self._last_activity < ACTIVITY_EVERY:
            return
        self._last_activity = now
        if snapshot.scope == "key" and len(snapshot.keys) != 1:
            return
        try:
            rows = activity()
        except ProviderError as exc:
            self.log.warning("activity_failed", error=exc.message, kind=exc.kind)
            return
        today = now.date()
        past = [r for r in rows if r.date < today]
        if not past:
            return
        days = (today - min(r.date for r in past)).days
        self.prior = burn.Prior(
            activity_daily=sum(r.usage for r in past) / days, activity_days=days
        )

    def _build_view(self, r: TickResult) -> status.View:
        h = self.health
        return status.build(
            now=r.now,
            settings=self.settings,
            metrics=r.metrics,
            findings=r.findings,
            decision=r.decision,
            poll=status.PollInfo(
                h.last_success,
                h.last_error,
                h.last_error_kind,
                h.last_error_at,
                h.polls,
                dict(h.errors_by_kind),
            ),
            key_name=self.key_name,
            scope=self.snapshot.scope if self.snapshot else "key",
            silences=self._silences,
            targets=self.targets,
            target_health=self.store.target_health() if self.targets else {},
            chart=self.history.hourly(r.now, 168),
            permit_history=self.store.audit_log(10),
        )

    def data_age(self, now: datetime) -> float | None:
        if self.health.last_success is None:
            return None
        return max(0.0, (now - self.health.last_success).total_seconds())

    # -- logging -----------------------------------------------------------------------

    def _log(self, r: TickResult) -> None:
        # What every line of the tick says, whatever happened to the poll.
        common = {
            "data_age_s": _round(self.data_age(r.now)),
            "findings": [
                f"{f.rule}:{f.severity}" + (":predicted" if f.predicted else "") for f in r.findings
            ],
            "permit": "armed" if r.decision.armed else "revoked",
        }
        for event in r.events:
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
                failures_in_a_row=self.health.consecutive_failures,
                **common,
            )
            return
        if r.skipped:
            self.log.info(
                "poll_deferred",
                reason="provider asked us to wait (Retry-After)",
                until=self.health.not_before.isoformat() if self.health.not_before else None,
                **common,
            )
            return
        assert r.sample is not None
        m = r.metrics
        self.log.info(
            "poll",
            at=r.now.isoformat(timespec="seconds"),
            spent_today=_money(m.spent_today),
            spent_month=_money(m.spent_month),
            balance=_money(m.balance),
            burn_per_hour=_money(m.rate_1h.per_hour),
            runway_days=_round(m.runway_days),
            forecast_month=_money(m.forecast_month),
            usage=_money(r.sample.usage),
            usage_daily=_money(r.sample.usage_daily),
            usage_monthly=_money(r.sample.usage_monthly),
            state=rules.severity_of(r.findings),
            **common,
        )


def _trip_from(override: dict[str, Any]) -> permit.Trip | None:
    trip = override.get("trip")
    if not isinstance(trip, dict):
        return None
    return permit.Trip(
        reason=str(trip.get("reason", "")),
        by=str(trip.get("by", "operator")),
        at=datetime.fromisoformat(trip["at"]) if trip.get("at") else datetime.min,
    )


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _round(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return round(value, 1)
