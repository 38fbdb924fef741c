"""One unit of work, every poll_interval: poll → store → measure → rules → alerts → actions.

A plain object with a `run()` method: the daemon schedules it, tests call it directly
with a fake clock and provider. The clock is read once per tick, after the poll, and that
`now` is handed to every decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from watchdog import burn, rules
from watchdog.config import Settings
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
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.store = store
        self.clock = clock
        self.log = log
        self.health = PollHealth()
        self.started_at = clock()
        self.prior = burn.Prior()
        self.held: dict[tuple[str, str], rules.Severity] = {}
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

    def run(self) -> TickResult:
        """Poll once (unless the provider asked us to wait), store the sample, measure,
        evaluate the rules, and log one line. A failed poll is logged and counted; it
        never raises."""
        snapshot: Snapshot | None = None
        error: ProviderError | None = None
        started = self.clock()
        skipped = self.health.not_before is not None and started < self.health.not_before
        if not skipped:
            try:
                snapshot = self.provider.fetch()
            except ProviderError as exc:
                error = exc
        now = self.clock()
        sample = snapshot.to_sample() if snapshot is not None else None
        if sample is not None:
            self.store.append(sample)
            self.history.add(sample)
            self._record_success(now)
        elif error is not None:
            self._record_failure(error, now)
        self._maybe_thin(now)
        self._refresh_prior(now, snapshot)
        metrics = burn.measure(self.history, now, self.settings.budget.tz, self.prior)
        findings = self.evaluate(metrics)
        self._log(now, sample, error, skipped, metrics, findings)
        return TickResult(now, sample, error, skipped, metrics, findings)

    def evaluate(self, metrics: burn.Metrics) -> list[rules.Finding]:
        """The rules, with last tick's findings held for hysteresis."""
        poll = rules.PollState(
            last_success=self.health.last_success,
            started_at=self.started_at,
            auth_error=self.health.auth_error,
        )
        horizon = self.settings.provider.poll_interval * HORIZON_FACTOR
        findings = rules.evaluate(
            metrics, self.settings.budget, poll, horizon=horizon, held=self.held
        )
        self.held = {f.ident: f.severity for f in findings}
        return findings

    def _refresh_prior(self, now: datetime, snapshot: Snapshot | None) -> None:
        """The account's 30-day activity as a cold-start baseline (management key only,
        and only when it describes what we watch: the account, or its only key)."""
        activity = getattr(self.provider, "activity", None)
        if activity is None or snapshot is None:
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

    def _record_success(self, now: datetime) -> None:
        health = self.health
        health.last_success = now
        health.consecutive_failures = 0
        health.not_before = None
        health.auth_error = None

    def _record_failure(self, error: ProviderError, now: datetime) -> None:
        health = self.health
        health.consecutive_failures += 1
        health.errors_by_kind[error.kind] = health.errors_by_kind.get(error.kind, 0) + 1
        health.last_error = error.message
        health.last_error_kind = error.kind
        health.last_error_at = now
        if error.retry_after is not None:
            health.not_before = now + timedelta(seconds=error.retry_after)
        health.auth_error = error.message if isinstance(error, AuthError) else None
        self.store.set_meta(
            "poll_health",
            {"last_error": error.message, "last_error_kind": error.kind, "at": now.isoformat()},
        )

    def _maybe_thin(self, now: datetime) -> None:
        if self._last_thin is None or now - self._last_thin >= THIN_EVERY:
            self._last_thin = now
            self.store.thin(now)

    def data_age(self, now: datetime) -> float | None:
        if self.health.last_success is None:
            return None
        return max(0.0, (now - self.health.last_success).total_seconds())

    def _log(
        self,
        now: datetime,
        sample: Sample | None,
        error: ProviderError | None,
        skipped: bool,
        metrics: burn.Metrics,
        findings: list[rules.Finding],
    ) -> None:
        age = self.data_age(now)
        summary = [
            f"{f.rule}:{f.severity}" + (":predicted" if f.predicted else "") for f in findings
        ]
        if error is not None:
            self.log.warning(
                "poll_failed",
                error=error.message,
                kind=error.kind,
                status=error.status,
                retry_after_s=error.retry_after,
                failures_in_a_row=self.health.consecutive_failures,
                data_age_s=_round(age),
                findings=summary,
            )
            return
        if skipped:
            self.log.info(
                "poll_deferred",
                reason="provider asked us to wait (Retry-After)",
                until=self.health.not_before.isoformat() if self.health.not_before else None,
                data_age_s=_round(age),
                findings=summary,
            )
            return
        assert sample is not None
        self.log.info(
            "poll",
            at=now.isoformat(timespec="seconds"),
            spent_today=_money(metrics.spent_today),
            spent_month=_money(metrics.spent_month),
            balance=_money(metrics.balance),
            burn_per_hour=_money(metrics.rate_1h.per_hour),
            runway_days=_round(metrics.runway_days),
            forecast_month=_money(metrics.forecast_month),
            usage=_money(sample.usage),
            usage_daily=_money(sample.usage_daily),
            usage_monthly=_money(sample.usage_monthly),
            data_age_s=_round(age),
            state=rules.severity_of(findings),
            findings=summary,
        )


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _round(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return round(value, 1)
