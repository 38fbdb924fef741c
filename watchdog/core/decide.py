"""One tick's decisions, as one pure function: measure → judge → alerts → permit → messages.

`decide(inputs)` is everything the tick decides; `watchdog.tick` only reads its inputs
(provider, store), commits its outcome in one transaction and applies it (permit file,
outbox, key disable, view). Tested with plain values: no store, no clock, no provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from watchdog.core import alerts, burn, messages, rules
from watchdog.core import permit as permits
from watchdog.core.model import (
    AlertState,
    Event,
    Finding,
    Ident,
    OutboxRow,
    Override,
    Policy,
    PollHealth,
    Recipient,
    Silence,
)

# Predictions look this far ahead: the next poll, with margin for its own duration.
HORIZON_FACTOR = 1.25


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

    @property
    def transition(self) -> Event | None:
        """The permit's revocation or re-arm this tick, if any."""
        return next((e for e in self.events if e.rule == "permit"), None)


def decide(i: Inputs) -> Outcome:
    """Given one tick's inputs, return its outcome (see the module's docstring)."""
    policy = i.policy
    metrics = burn.measure(i.history, i.now, policy.budget.tz, i.prior)
    held = alerts.firing(i.alerts)  # a resolution held by a silence gets no hysteresis
    findings = rules.evaluate(
        metrics,
        policy.budget,
        i.poll,
        horizon=policy.poll_interval * HORIZON_FACTOR,
        held=held,
        disable_error=i.disable_error,
        permit_error=i.permit_error,
    )
    new_permit, decision, permit_events = permits.advance(
        i.permit, findings, i.override, i.poll, i.now, policy.killswitch
    )
    new_alerts, events = alerts.advance(
        i.alerts,
        findings,
        i.now,
        repeat_interval=policy.notify.repeat_interval,
        send_resolved=policy.notify.send_resolved,
        silences=i.silences,
    )
    events += permit_events
    ctx = messages.Context(
        metrics=metrics,
        budget=policy.budget,
        permit="armed" if decision.armed else "revoked",
        permit_reason="" if decision.armed else decision.reason,
        key_name=i.key_name,
        data_age_s=i.poll.data_age(i.now),
    )
    rows = messages.route(events, ctx, i.recipients, i.now)
    return Outcome(metrics, findings, new_alerts, new_permit, decision, events, rows)
