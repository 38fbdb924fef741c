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

from watchdog.config import Settings
from watchdog.providers.base import Provider, ProviderError
from watchdog.snapshot import Sample, Snapshot
from watchdog.store import Store

# Thin old samples about once an hour: the query is cheap but not free on a year of rows.
THIN_EVERY = timedelta(hours=1)


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


@dataclass(frozen=True)
class TickResult:
    now: datetime
    sample: Sample | None
    error: ProviderError | None
    skipped: bool = False


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
        self._last_thin: datetime | None = None
        last = store.last_sample()
        if last is not None:
            self.health.last_success = last.ts
        saved = store.get_meta("poll_health")
        if isinstance(saved, dict):
            self.health.last_error = saved.get("last_error")
            self.health.last_error_kind = saved.get("last_error_kind")

    def run(self) -> TickResult:
        """Poll once (unless the provider asked us to wait), store the sample, and log one
        line. A failed poll is logged and counted; it never raises."""
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
            self._record_success(now)
        elif error is not None:
            self._record_failure(error, now)
        self._maybe_thin(now)
        self._log(now, sample, error, skipped)
        return TickResult(now=now, sample=sample, error=error, skipped=skipped)

    def _record_success(self, now: datetime) -> None:
        health = self.health
        health.last_success = now
        health.consecutive_failures = 0
        health.not_before = None

    def _record_failure(self, error: ProviderError, now: datetime) -> None:
        health = self.health
        health.consecutive_failures += 1
        health.errors_by_kind[error.kind] = health.errors_by_kind.get(error.kind, 0) + 1
        health.last_error = error.message
        health.last_error_kind = error.kind
        health.last_error_at = now
        if error.retry_after is not None:
            health.not_before = now + timedelta(seconds=error.retry_after)
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
        self, now: datetime, sample: Sample | None, error: ProviderError | None, skipped: bool
    ) -> None:
        age = self.data_age(now)
        if error is not None:
            self.log.warning(
                "poll_failed",
                error=error.message,
                kind=error.kind,
                status=error.status,
                retry_after_s=error.retry_after,
                failures_in_a_row=self.health.consecutive_failures,
                data_age_s=_round(age),
            )
            return
        if skipped:
            self.log.info(
                "poll_deferred",
                reason="provider asked us to wait (Retry-After)",
                until=self.health.not_before.isoformat() if self.health.not_before else None,
                data_age_s=_round(age),
            )
            return
        assert sample is not None
        self.log.info(
            "poll",
            usage=_money(sample.usage),
            usage_daily=_money(sample.usage_daily),
            usage_weekly=_money(sample.usage_weekly),
            usage_monthly=_money(sample.usage_monthly),
            balance=_money(sample.balance),
            data_age_s=_round(age),
        )


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
