"""/metrics: the status view in Prometheus' text format, named by Prometheus' conventions
(`promtool check metrics` passes): every name starts `budget_watchdog_`, carries its unit
in base units (`_seconds`, `_usd`, `_ratio`), counters end `_total`, a moment is a
`_timestamp_seconds` gauge. One label vocabulary: `window` is "day", "week" or "month" on
every spend, limit, ratio and forecast series, so `spent_usd / on(window) limit_usd` needs
no relabelling; a burn rate is labelled by the span it is averaged `over` ("10m", "1h",
"24h", "7d"); per-target series by the target's id (`target`), never its URL.

A collector reads the latest View; nothing is counted twice or kept here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from watchdog.core.model import SEVERITY_ORDER, TICK_FAILURES
from watchdog.core.rules import RULES
from watchdog.core.view import InstanceView, KeyRow, View
from watchdog.core.words import DAY, HOUR

# The provider errors' kinds (watchdog.providers.base), shown at 0 before the first one so
# an alert on `increase(...)` has a series to watch. A kind not listed is exported too.
POLL_ERROR_KINDS = ("auth", "bad_response", "error", "provider_budget", "rate_limited", "transient")


# The per-key series labelled only by `key`: name, help, and the value from a key's row
# (and whether the account's permit is armed); a None value leaves the key's sample out.
PER_KEY: tuple[tuple[str, str, Callable[[KeyRow, bool], float | None]], ...] = (
    ("key_provider_limit_usd", "Each key's own limit at the provider.", lambda k, _: k.limit),
    (
        "key_provider_limit_remaining_usd",
        "What each key's provider limit leaves.",
        lambda k, _: k.limit_remaining,
    ),
    (
        "key_burn_rate_usd_per_second",
        "Each key's burn rate (the faster of 10m and 1h; × 3600 for USD/h).",
        lambda k, _: None if k.burn_rate_per_hour is None else k.burn_rate_per_hour / HOUR,
    ),
    (
        "key_permit_armed",
        "1 while the key's jobs may launch.",
        lambda k, armed: int(k.armed and armed),
    ),
    (
        "key_finding_severity",
        "Each key's worst finding: 0 none, 1 warning, 2 critical.",
        lambda k, _: max((SEVERITY_ORDER[f.severity] for f in k.findings), default=0),
    ),
)


class _Collector:
    def __init__(
        self, view: View, now: datetime, reserved: float, instance: InstanceView | None
    ) -> None:
        self.view = view
        self.now = now
        self.reserved = reserved
        self.instance = instance

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
        polls = CounterMetricFamily("budget_watchdog_polls", "Polls (and ticks) attempted.")
        polls.add_metric([], v.poll.polls)
        yield polls
        yield from self._errors()
        severity = GaugeMetricFamily(
            "budget_watchdog_finding_severity",
            "Each rule's finding: 0 none, 1 warning, 2 critical (the worst over keys).",
            labels=["rule"],
        )
        active: dict[str, int] = {}
        for f in v.findings:
            active[f.rule] = max(active.get(f.rule, 0), SEVERITY_ORDER[f.severity])
        for rule in sorted(set(RULES) | set(active), key=_rule_order):
            severity.add_metric([rule], active.get(rule, 0))
        yield severity
        yield _gauge("reserved_usd", "USD held by pre-flight reservations.", self.reserved)
        if self.instance is not None:
            yield _gauge(
                "leader",
                "1 while this instance leads (polls, alerts, acts) among those sharing the state.",
                int(self.instance.role == "leader"),
            )
            changes = CounterMetricFamily(
                "budget_watchdog_leader_changes",
                "Changes of leader this instance has seen since it started.",
            )
            changes.add_metric([], self.instance.changes)
            yield changes
        yield from self._targets()
        if v.keys_watched:
            yield from self._keys()
        if m is None:
            return
        b = v.budget
        yield from _optional(
            "balance_usd", "Credit left (the tighter of account and key).", m.balance
        )
        spent = GaugeMetricFamily(
            "budget_watchdog_spent_usd",
            "Spend in the current day, week and month (budget time zone).",
            labels=["window"],
        )
        for window, value in (
            ("day", m.spent_today),
            ("week", m.spent_week),
            ("month", m.spent_month),
        ):
            if (known := _finite(value)) is not None:
                spent.add_metric([window], known)
        yield spent
        limits = GaugeMetricFamily(
            "budget_watchdog_limit_usd", "Configured spend limits.", labels=["window"]
        )
        ratios = GaugeMetricFamily(
            "budget_watchdog_limit_used_ratio",
            "Share of each configured limit spent (1 = the limit).",
            labels=["window"],
        )
        for window, limit, used in (
            ("day", b.daily_limit, m.spent_today),
            ("month", b.monthly_limit, m.spent_month),
        ):
            if limit:
                limits.add_metric([window], limit)
                if (known := _finite(used)) is not None:
                    ratios.add_metric([window], known / limit)
        yield limits
        yield ratios
        forecast = GaugeMetricFamily(
            "budget_watchdog_forecast_spent_usd",
            "Projected spend at the end of the window (24 h rate).",
            labels=["window"],
        )
        if (known := _finite(m.forecast_month)) is not None:
            forecast.add_metric(["month"], known)
            yield forecast
        if m.key_limit:
            yield _gauge("key_limit_usd", "The provider's own limit on the key.", m.key_limit)
            remaining = _finite(m.key_limit_remaining)
            if remaining is not None:
                yield _gauge(
                    "key_limit_used_ratio",
                    "Share of the provider's key limit used (1 = used up).",
                    (m.key_limit - remaining) / m.key_limit,
                )
        rates = GaugeMetricFamily(
            "budget_watchdog_burn_rate_usd_per_second",
            "Burn rate averaged over the last 10m, 1h, 24h and 7d (× 3600 for USD/h).",
            labels=["over"],
        )
        for over, rate in v.rates():
            if (known := _finite(rate.per_hour)) is not None:
                rates.add_metric([over], known / HOUR)
        yield rates
        runway = _finite(m.runway_days)
        yield from _optional(
            "runway_seconds",
            "Seconds of credit left at the 7-day average burn.",
            None if runway is None else runway * DAY,
        )
        yield from _optional(
            "headroom_usd", "USD that may still be spent before a critical threshold.", v.headroom
        )

    def _errors(self) -> Iterator[Metric]:
        """Failures by kind: the provider's (`poll_errors_total`) apart from the tick's own
        ("state": the state could not be written, "tick": anything else). Every kind the
        view counted is exported, the known ones at 0 before they first happen."""
        polls = CounterMetricFamily(
            "budget_watchdog_poll_errors", "Failed polls by kind.", labels=["kind"]
        )
        ticks = CounterMetricFamily(
            "budget_watchdog_tick_errors",
            'Ticks that failed on their own side, by kind ("state", "tick").',
            labels=["kind"],
        )
        counts = dict(self.view.poll.errors_by_kind)
        for kind in sorted(set(POLL_ERROR_KINDS) | (set(counts) - set(TICK_FAILURES))):
            polls.add_metric([kind], counts.get(kind, 0))
        for kind in TICK_FAILURES:
            ticks.add_metric([kind], counts.get(kind, 0))
        yield polls
        yield ticks

    def _keys(self) -> Iterator[Metric]:
        """Every key of the account, labelled `key` by its name (never the secret)."""
        v = self.view
        spent = GaugeMetricFamily(
            "budget_watchdog_key_spent_usd",
            "Each key's spend in the current day and month (budget time zone).",
            labels=["key", "window"],
        )
        limits = GaugeMetricFamily(
            "budget_watchdog_key_limit_usd",
            "Each key's configured limits ([[budget.keys]]).",
            labels=["key", "window"],
        )
        per_key = [
            (GaugeMetricFamily(f"budget_watchdog_{name}", doc, labels=["key"]), value)
            for name, doc, value in PER_KEY
        ]
        for k in v.keys:
            for window, spend in (("day", k.spent_today), ("month", k.spent_month)):
                if (known := _finite(spend)) is not None:
                    spent.add_metric([k.name, window], known)
            for window, limit in (("day", k.daily_limit), ("month", k.monthly_limit)):
                if limit:
                    limits.add_metric([k.name, window], limit)
            for family, value in per_key:
                if (known := _finite(value(k, v.armed))) is not None:
                    family.add_metric([k.name], known)
        yield from (spent, limits, *(family for family, _ in per_key))

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


def _rule_order(rule: str) -> tuple[int, str]:
    return (RULES.index(rule) if rule in RULES else len(RULES), rule)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"budget_watchdog_{name}", doc, value=value)


def _optional(name: str, doc: str, value: float | None) -> Iterator[GaugeMetricFamily]:
    if (known := _finite(value)) is not None:
        yield _gauge(name, doc, known)


def render(
    view: View, now: datetime, reserved: float, instance: InstanceView | None = None
) -> tuple[bytes, str]:
    """The /metrics body and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(view, now, reserved, instance))
    return generate_latest(registry), CONTENT_TYPE_LATEST
