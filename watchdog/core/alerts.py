"""The alert lifecycle, pure: per (rule, key) firing → repeated → escalated/de-escalated →
resolved, with silences. `advance` turns the previous states and this tick's findings into
new states and the events worth a message.

Hysteresis is applied by the rules (they are told which findings are held, see `firing`),
so a finding that disappears here has really cleared its threshold by the margin.

Silences: a silenced rule's alerts change state but send nothing. Each state remembers
that its rule was silenced (`suppressed`), so when the silence ends — by expiry or by
`unsilence` — a finding still firing is sent again, whatever was sent before. A finding
that ends under a silence after recipients heard of it keeps its state with `resolved_at`
set; its resolution (saying when it happened) is sent when the silence ends. Nothing
recipients were told of is left without its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from watchdog.core.model import (
    SEVERITY_ORDER,
    AlertState,
    Event,
    EventKind,
    Finding,
    Ident,
    Severity,
    Silence,
)
from watchdog.core.words import span


def firing(states: Mapping[Ident, AlertState]) -> dict[Ident, Severity]:
    """The findings still firing, by severity: what the rules hold (hysteresis). An ended
    finding whose resolution a silence holds is not among them."""
    return {ident: s.severity for ident, s in states.items() if s.firing}


def advance(
    states: Mapping[Ident, AlertState],
    findings: list[Finding],
    now: datetime,
    *,
    repeat_interval: timedelta,
    send_resolved: bool,
    silences: Mapping[str, Silence] | None = None,
) -> tuple[dict[Ident, AlertState], list[Event]]:
    """Given the alert states before this tick, its findings and the time, return the new
    states and the events to notify (see the module's docstring for silences)."""
    silences = silences or {}
    new_states: dict[Ident, AlertState] = {}
    events: list[Event] = []

    def silenced(rule: str) -> bool:
        silence = silences.get(rule)
        return silence is not None and silence.until > now

    for finding in findings:
        old = states.get(finding.ident)
        if old is not None and not old.firing:
            # It ended under the silence and is back: a new episode. Recipients last heard
            # it firing (the held resolution is moot); the silence's end tells them now.
            old = replace(old, since=now, resolved_at=None, suppressed=True)
        state, event = _step(old, finding, now, repeat_interval)
        if silenced(finding.rule):
            state = replace(state, suppressed=True, last_sent=old.last_sent if old else None)
            event = None
        elif old is not None and old.suppressed:
            event = _event("unsilenced", finding, state.since, now, previous=old.severity)
            state = replace(state, suppressed=False, last_sent=now)
        new_states[finding.ident] = state
        if event is not None:
            events.append(event)

    for ident, old in states.items():
        if ident in new_states:
            continue
        told = send_resolved and old.last_sent is not None
        if not old.firing:
            # A resolution held by a silence: sent once the silence is over.
            if silenced(old.rule):
                new_states[ident] = old
            elif told:
                events.append(_resolved(old, old.resolved_at or now, held_until=now))
        elif silenced(old.rule):
            # Ended under a silence: hold the resolution if anyone heard it started.
            if told:
                new_states[ident] = replace(old, suppressed=True, resolved_at=now)
        elif told:
            events.append(_resolved(old, now))
    return new_states, events


def _step(
    old: AlertState | None, finding: Finding, now: datetime, repeat_interval: timedelta
) -> tuple[AlertState, Event | None]:
    def state(last_sent: datetime | None) -> AlertState:
        return AlertState(
            finding.rule,
            finding.key,
            finding.severity,
            since=old.since if old else now,
            last_sent=last_sent,
            message=finding.message,
            value=finding.value,
            threshold=finding.threshold,
            suppressed=old.suppressed if old else False,
        )

    def event(kind: EventKind) -> Event:
        since = old.since if old else now
        return _event(kind, finding, since, now, previous=old.severity if old else None)

    if old is None:
        return state(now), event("firing")
    if finding.severity != old.severity:
        up = SEVERITY_ORDER[finding.severity] > SEVERITY_ORDER[old.severity]
        return state(now), event("escalated" if up else "de-escalated")
    due = (
        repeat_interval > timedelta(0)
        and old.last_sent is not None
        and now - old.last_sent >= repeat_interval
    )
    if due:
        return state(now), event("repeat")
    return state(old.last_sent), None


def _event(
    kind: EventKind, finding: Finding, since: datetime, now: datetime, previous: Severity | None
) -> Event:
    return Event(
        kind,
        finding.rule,
        finding.key,
        finding.severity,
        since,
        now,
        finding.message,
        finding,
        previous=previous,
    )


def _resolved(old: AlertState, at: datetime, held_until: datetime | None = None) -> Event:
    return Event(
        "resolved",
        old.rule,
        old.key,
        old.severity,
        old.since,
        at,
        f"Resolved after {span(at - old.since)}. It was: {old.message}",
        held_until=held_until,
    )
