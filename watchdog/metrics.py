"""/metrics: the status view in Prometheus' text format (names `budget_watchdog_*`, units in
the names). A collector reads the latest View; nothing is counted twice or kept here."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from watchdog.core.model import SEVERITY_ORDER
from watchdog.core.rules import RULES
from watchdog.core.view import View

ERROR_KINDS = ("auth", "rate_limited", "transient", "bad_response")


class _Collector:
    def __init__(self, view: View, now: datetime, reserved: float) -> None:
        self.view = view
        self.now = now
        self.reserved = reserved

    def collect(self) -> Iterator[Metric]:
        v, m = self.view, self.view.metrics
        yield _gauge("up", "1 while the daemon answers.", 1)
        yield _gauge("permit_armed", "1 while batch launches are allowed.", int(v.armed))
        age = v.data_age(self.now)
        if age is not None:
            yield _gauge("data_age_seconds", "Seconds since the last successful poll.", age)
        if v.poll.last_success is not None:
            yield _gauge(
                "last_successful_poll_timestamp_seconds",
                "Unix time of the last successful poll.",
                v.poll.last_success.timestamp(),
            )
        polls = CounterMetricFamily("budget_watchdog_polls", "Polls attempted.")
        polls.add_metric([], v.poll.polls)
        yield polls
        errors = CounterMetricFamily(
            "budget_watchdog_poll_errors", "Failed polls by kind.", labels=["kind"]
        )
        by_kind = dict(v.poll.errors_by_kind)
        for kind in sorted(set(ERROR_KINDS) | set(by_kind)):
            errors.add_metric([kind], by_kind.get(kind, 0))
        yield errors
        severity = GaugeMetricFamily(
            "budget_watchdog_finding_severity",
            "Each rule's finding: 0 none, 1 warning, 2 critical.",
            labels=["rule"],
        )
        active = {f.rule: SEVERITY_ORDER[f.severity] for f in v.findings}
        for rule in RULES:
            severity.add_metric([rule], active.get(rule, 0))
        yield severity
        yield _gauge("reserved_usd", "USD held by pre-flight reservations.", self.reserved)
        yield from self._targets()
        if m is None:
            return
        b = v.budget
        yield from _optional(
            "balance_usd", "Credit left (the tighter of account and key).", m.balance
        )
        spent = GaugeMetricFamily(
            "budget_watchdog_spent_usd", "Spend in the current window.", labels=["window"]
        )
        for window, value in (
            ("today", m.spent_today),
            ("week", m.spent_week),
            ("month", m.spent_month),
        ):
            if (known := _finite(value)) is not None:
                spent.add_metric([window], known)
        yield spent
        limits = GaugeMetricFamily(
            "budget_watchdog_limit_usd", "Configured limits.", labels=["window"]
        )
        ratios = GaugeMetricFamily(
            "budget_watchdog_limit_used_ratio", "Share of each limit spent.", labels=["window"]
        )
        for window, limit, used in (
            ("daily", b.daily_limit, m.spent_today),
            ("monthly", b.monthly_limit, m.spent_month),
            ("key", m.key_limit, None),
        ):
            if limit:
                limits.add_metric([window], limit)
                if (known := _finite(used)) is not None:
                    ratios.add_metric([window], known / limit)
        remaining = _finite(m.key_limit_remaining)
        if m.key_limit and remaining is not None:
            ratios.add_metric(["key"], (m.key_limit - remaining) / m.key_limit)
        yield limits
        yield ratios
        rates = GaugeMetricFamily(
            "budget_watchdog_burn_rate_usd_per_hour",
            "Burn rate over each window.",
            labels=["window"],
        )
        for window, rate in v.rates():
            if (known := _finite(rate.per_hour)) is not None:
                rates.add_metric([window], known)
        yield rates
        yield from _optional(
            "average_daily_spend_usd", "Average daily spend (7 days).", m.avg_daily.per_day
        )
        yield from _optional(
            "runway_days", "Days of credit left at the average burn.", m.runway_days
        )
        yield from _optional(
            "forecast_month_usd", "Projected spend at month end.", m.forecast_month
        )
        yield from _optional(
            "headroom_usd", "USD that may still be spent before a critical threshold.", v.headroom
        )

    def _targets(self) -> Iterator[Metric]:
        # Labelled by the target's id, never its URL (which may hold credentials).
        sent = CounterMetricFamily(
            "budget_watchdog_notifications_sent",
            "Notifications delivered, by target.",
            labels=["target"],
        )
        failed = CounterMetricFamily(
            "budget_watchdog_notifications_failed",
            "Failed delivery attempts, by target.",
            labels=["target"],
        )
        pending = GaugeMetricFamily(
            "budget_watchdog_notifications_pending",
            "Notifications waiting in the outbox.",
            labels=["target"],
        )
        for t in self.view.targets:
            sent.add_metric([t.id], t.health.sent)
            failed.add_metric([t.id], t.health.failed)
            pending.add_metric([t.id], t.health.pending)
        yield sent
        yield failed
        yield pending


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"budget_watchdog_{name}", doc, value=value)


def _optional(name: str, doc: str, value: float | None) -> Iterator[GaugeMetricFamily]:
    if (known := _finite(value)) is not None:
        yield _gauge(name, doc, known)


def render(view: View, now: datetime, reserved: float) -> tuple[bytes, str]:
    """The /metrics body and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(view, now, reserved))
    return generate_latest(registry), CONTENT_TYPE_LATEST
