"""The digest (and the daily audit behind the page's savings) at the edge: on its
schedule, gather what it says (the account's activity,
prices from the cache or the public list, what fired, the provider caps) and hand the
tick the outbox rows, written in the tick's own transaction with the slot they are for —
so a digest goes out exactly once, across restarts (the outbox delivers it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from watchdog import pricing
from watchdog.core import audit, digest
from watchdog.core.burn import Metrics
from watchdog.core.model import BudgetPolicy, OutboxRow, Recipient
from watchdog.core.words import usd
from watchdog.providers.base import ProviderError
from watchdog.store import Store

DIGEST = "digest"  # the severity targets opt in with, and the messages' kind and rule


@dataclass(frozen=True)
class Due:
    """What the tick writes: the digest slot now sent (None: none yet) with the rows for
    each digest target, and since when the schedule is kept."""

    slot: datetime | None
    since: datetime
    rows: list[OutboxRow]


class Digester:
    """Decides, with the core's `digest`, whether a digest is due, and composes it."""

    def __init__(
        self,
        policy: digest.DigestPolicy,
        budget: BudgetPolicy,
        audit_policy: audit.AuditPolicy,
        store: Store,
        source: Any,  # the provider's management side and price list (OpenRouter), or None
        log: Any,
    ) -> None:
        self.policy = policy
        self.budget = budget
        self.audit_policy = audit_policy
        self.store = store
        self.source = source
        self.log = log

    @property
    def tz(self) -> tzinfo:
        return self.budget.tz

    def due(self, now: datetime, metrics: Metrics, recipients: Sequence[Recipient]) -> Due | None:
        """The digest to send now, or None. Composed only when due (I/O then: activity,
        prices at most once an hour)."""
        last, kept_since = self.store.digest_state()
        since = kept_since or now  # a first start keeps the schedule from now on
        slot = digest.due(now, last, since, self.policy, self.tz)
        if slot is None:
            # Nothing to send; a first start still records since when the schedule runs.
            return Due(last, since, []) if kept_since is None else None
        targets = [r for r in recipients if DIGEST in r.severities]
        title, body = self.compose(slot, now, metrics)
        rows = [OutboxRow(now, r.id, DIGEST, DIGEST, DIGEST, title, body) for r in targets]
        return Due(slot, since, rows)

    def compose(self, slot: datetime, now: datetime, metrics: Metrics) -> tuple[str, str]:
        """The digest for the period that ends at `slot`."""
        start = digest.period_start(slot, self.policy)
        top: list[tuple[str, str, float]] = []
        savings: list[tuple[str, float]] = []
        period_spend: float | None = None
        if self.source is not None:
            try:
                rows = self.source.activity()
            except ProviderError as exc:
                self.log.warning("digest_activity_failed", error=exc.message)
                rows = []
            if rows:
                result = self.audit(rows, now)
                top = [(line.model, line.provider, line.spend) for line in result.lines[:5]]
                savings = [(f.message, f.savings) for f in result.findings[:3]]
                first, last = start.date(), slot.date()
                period_spend = sum(r.spend for r in rows if first <= r.date < last)
        fired = [
            digest.Fired(rule, severity, times)
            for rule, severity, times in self.store.fired_between(start, slot)
        ]
        return digest.compose(
            start=start,
            end=slot,
            metrics=metrics,
            budget=self.budget,
            period_spend=period_spend,
            top_models=top,
            savings=savings,
            caps=self._caps(metrics),
            fired=fired,
        )

    def audit(self, rows: Sequence[Any], now: datetime, *, fetch: bool = True) -> Any:
        """The spend audit of the last 30 complete UTC days: prices cached an hour, or
        (`fetch=False`, in a tick) only what the cache holds — no network."""
        source = self.source if fetch else None
        cache = pricing.StoreCache(self.store)
        return pricing.audit_rows(rows, source, cache, self.audit_policy, now)[0]

    def refresh_prices(self, now: datetime) -> None:
        """Fetch the prices of the models in the account's activity into the cache (a
        chore on its own schedule, so a tick never waits on the price list)."""
        if self.source is None:
            return
        try:
            self.audit(self.source.activity(), now)
        except ProviderError as exc:
            self.log.warning("prices_refresh_failed", error=exc.message)

    @staticmethod
    def _caps(m: Metrics) -> str:
        if m.key_limit is None:
            return "none on the watched key (set one at the provider, or see `caps`)"
        left = m.key_limit_remaining
        state = "reached" if left is not None and left <= 0 else f"{usd(left)} left"
        return f"the watched key's limit {usd(m.key_limit)}: {state}"
