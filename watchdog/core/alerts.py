"""The alert lifecycle, pure: per (rule, key) firing → repeated → escalated/de-escalated →
resolved, with silences. `advance` turns the previous states and this tick's findings into
new states and the events worth a message.

Hysteresis is applied by the rules (they are told which findings are held), so a finding
that disappears here has really cleared its threshold by the margin.
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
    Silence,
)
from watchdog.core.words import span


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
    states and the events to notify. Silenced rules change state but emit nothing; when
    the silence ends while the finding still fires, it is sent again."""
    silences = silences or {}
    new_states: dict[Ident, AlertState] = {}
    events: list[Event] = []

    def silenced(rule: str) -> bool:
        silence = silences.get(rule)
        return silence is not None and silence.until > now

    for finding in findings:
        old = states.get(finding.ident)
        state, event = _step(old, finding, now, repeat_interval)
        if silenced(finding.rule):
            if event is not None:
                state = replace(state, suppressed=True, last_sent=old.last_sent if old else None)
                event = None
        elif state.suppressed:
            if event is None:
                event = Event(
                    "unsilenced",
                    finding.rule,
                    finding.key,
                    finding.severity,
                    state.since,
                    now,
                    finding.message,
                    finding,
                )
            state = replace(state, suppressed=False, last_sent=now)
        new_states[finding.ident] = state
        if event is not None:
            events.append(event)

    for ident, old in states.items():
        if ident in new_states:
            continue
        # The finding is gone: resolved (unless its messages were all held back).
        if send_resolved and not silenced(old.rule) and old.last_sent is not None:
            events.append(
                Event(
                    "resolved",
                    old.rule,
                    old.key,
                    old.severity,
                    old.since,
                    now,
                    _resolved_text(old, now),
                )
            )
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
        return Event(
            kind,
            finding.rule,
            finding.key,
            finding.severity,
            old.since if old else now,
            now,
            finding.message,
            finding,
            previous=old.severity if old else None,
        )

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


def _resolved_text(old: AlertState, now: datetime) -> str:
    return f"Resolved after {span(now - old.since)}. It was: {old.message}"
