"""The permit state machine: may batch jobs launch? Pure.

`advance(state, findings, override, poll, now, policy)` is shaped like `alerts.advance`:
the state before this tick in, the new state, the decision and the events out. It owns
every reason to say no-go:

- a manual trip (`budget-watchdog trip`) wins over everything, until `arm`;
- before the first successful poll since start, the answer is no-go ("starting"): the
  watchdog does not know, so it does not say go. A restart waits for fresh data too;
- a finding whose severity is in `killswitch.revoke_on` revokes; a `stale` finding revokes
  whatever its severity when `on_stale = "revoke"`;
- with `latch = true` a revocation by the rules holds until an `arm` newer than it.

Writing or removing the file is the edge's job (`watchdog.permitfile`); this decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from watchdog.core.model import (
    WATCHED,
    Event,
    EventKind,
    Finding,
    KillswitchPolicy,
    Override,
    PollHealth,
)

STARTING = "starting: no successful poll since start"


@dataclass(frozen=True)
class PermitState:
    """What the permit remembers between ticks and restarts. `armed` is None until the
    first decision ever, so a fresh install arms quietly instead of announcing it."""

    armed: bool | None = None
    reason: str = ""
    latched_since: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """What the permit is after this tick, and why. `actor` names who decided it."""

    armed: bool
    reason: str
    causes: tuple[str, ...] = ()
    latched: bool = False
    actor: str = "rules"


def decide(
    findings: Sequence[Finding],
    override: Override,
    poll: PollHealth,
    state: PermitState,
    policy: KillswitchPolicy,
) -> Decision:
    """Given this tick's findings, the manual override, polling health, the permit's state
    and the kill-switch policy, return the decision (see the module's docstring)."""
    latched = _latched(state, override)
    trip = override.trip
    if trip is not None:
        return Decision(
            False, f"tripped by {trip.by}: {trip.reason}", ("manual",), latched, actor=trip.by
        )
    causes = [f for f in findings if f.rule != "stale" and f.severity in policy.revoke_on]
    if policy.on_stale == "revoke":
        causes += [f for f in findings if f.rule == "stale"]
    if causes:
        reason = "; ".join(
            f"{f.rule} {f.severity}{' (predicted)' if f.predicted else ''}" for f in causes
        )
        return Decision(False, reason, tuple(f.rule for f in causes), latched=policy.latch)
    if latched:
        return Decision(
            False,
            "latched: revoked earlier; `budget-watchdog arm` re-arms it",
            ("latch",),
            latched=True,
        )
    if poll.last_success is None or poll.last_success < poll.started_at:
        return Decision(False, STARTING, ("starting",))
    return Decision(True, "no finding demands a stop")


def advance(
    state: PermitState,
    findings: Sequence[Finding],
    override: Override,
    poll: PollHealth,
    now: datetime,
    policy: KillswitchPolicy,
) -> tuple[PermitState, Decision, list[Event]]:
    """Given the permit's state before this tick and the tick's inputs, return the new
    state, the decision and the events worth a message (a revocation or a re-arm)."""
    decision = decide(findings, override, poll, state, policy)
    if decision.causes == ("starting",):
        # Not knowing yet is no transition: the permit stays away without a message, and
        # what it was before the restart is kept for when fresh data decides.
        return state, decision, []
    latched_since = state.latched_since
    if decision.armed:
        latched_since = None
    elif decision.latched and latched_since is None:
        latched_since = now
    new = replace(state, armed=decision.armed, reason=decision.reason, latched_since=latched_since)
    if state.armed is None and decision.armed:
        return new, decision, []  # first start with nothing wrong: armed quietly
    if state.armed == decision.armed:
        return new, decision, []
    message = (
        "Permit re-armed: batch launches are allowed again."
        if decision.armed
        else f"Permit revoked ({decision.reason}): new batch launches are blocked."
    )
    kind: EventKind = "armed" if decision.armed else "revoked"
    return new, decision, [Event(kind, "permit", WATCHED, "critical", now, now, message)]


def _latched(state: PermitState, override: Override) -> bool:
    """A latch holds until an `arm` asked for after it began."""
    if state.latched_since is None:
        return False
    return override.armed_at is None or override.armed_at < state.latched_since
