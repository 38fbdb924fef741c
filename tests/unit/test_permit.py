"""The permit state machine: trip, latch, stale, recovery and "never polled", with plain
values (no files, no clock, no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchdog.core.model import Finding, KillswitchPolicy, Override, PollHealth, Severity, Trip
from watchdog.core.permit import STARTING, Decision, PermitState, advance, decide

NOW = datetime(2026, 11, 27, 14, tzinfo=UTC)
STARTED = NOW - timedelta(hours=1)
POLLED = PollHealth(started_at=STARTED, last_success=NOW)
NEVER = PollHealth(started_at=STARTED)
ARMED = PermitState(armed=True)
KS = KillswitchPolicy()
NO_OVERRIDE = Override()


def f(rule: str, severity: Severity = "critical", predicted: bool = False) -> Finding:
    return Finding(rule, severity, 1.0, 1.0, "m", predicted=predicted)


def step(
    state: PermitState,
    findings: list[Finding] | None = None,
    *,
    override: Override = NO_OVERRIDE,
    poll: PollHealth = POLLED,
    policy: KillswitchPolicy = KS,
    now: datetime = NOW,
) -> tuple[PermitState, Decision, list[str]]:
    new, decision, events = advance(state, findings or [], override, poll, now, policy)
    return new, decision, [e.kind for e in events]


def test_nothing_wrong_is_armed() -> None:
    assert decide([f("spike", "warning")], Override(), POLLED, ARMED, KS).armed


def test_a_critical_finding_revokes_and_says_why() -> None:
    d = decide(
        [f("daily_limit", predicted=True), f("spike", "warning")], Override(), POLLED, ARMED, KS
    )
    assert not d.armed
    assert d.reason == "daily_limit critical (predicted)"
    assert d.causes == ("daily_limit",)


def test_revoke_on_can_include_warnings() -> None:
    ks = KillswitchPolicy(revoke_on=("warning", "critical"))
    assert not decide([f("spike", "warning")], Override(), POLLED, ARMED, ks).armed


@pytest.mark.parametrize(("on_stale", "armed"), [("revoke", False), ("keep", True)])
def test_stale_follows_on_stale_whatever_its_severity(on_stale: str, armed: bool) -> None:
    ks = KillswitchPolicy(on_stale=on_stale)  # type: ignore[arg-type]
    for severity in ("critical", "warning"):
        d = decide([f("stale", severity)], Override(), POLLED, ARMED, ks)
        assert d.armed is armed


def test_a_manual_trip_wins_and_names_who() -> None:
    trip = Override(trip=Trip("runaway backfill", "alice (cli)", NOW))
    new, d, events = step(ARMED, override=trip)
    assert not d.armed and not new.armed
    assert d.reason == "tripped by alice (cli): runaway backfill"
    assert d.actor == "alice (cli)"
    assert events == ["revoked"]


def test_a_trip_holds_without_findings_until_cleared() -> None:
    trip = Override(trip=Trip("why", "bob", NOW))
    state, d, _ = step(ARMED, override=trip)
    state, d, events = step(state, override=trip, now=NOW + timedelta(minutes=5))
    assert not d.armed and events == []
    state, d, events = step(state, override=Override(armed_at=NOW + timedelta(minutes=6)))
    assert d.armed and events == ["armed"]


def test_latch_keeps_it_revoked_after_the_cause_is_gone() -> None:
    ks = KillswitchPolicy(latch=True)
    state, d, events = step(ARMED, [f("daily_limit")], policy=ks)
    assert d.latched and state.latched_since == NOW and events == ["revoked"]
    later = NOW + timedelta(hours=1)
    state, d, events = step(state, [], policy=ks, now=later)
    assert not d.armed and "budget-watchdog arm" in d.reason and events == []


def test_an_arm_older_than_the_latch_does_not_clear_it() -> None:
    ks = KillswitchPolicy(latch=True)
    state, _, _ = step(ARMED, [f("daily_limit")], policy=ks)
    stale_arm = Override(armed_at=NOW - timedelta(minutes=1))
    _, d, _ = step(state, [], override=stale_arm, policy=ks, now=NOW + timedelta(minutes=5))
    assert not d.armed


def test_an_arm_after_the_latch_re_arms_and_says_so() -> None:
    ks = KillswitchPolicy(latch=True)
    state, _, _ = step(ARMED, [f("daily_limit")], policy=ks)
    arm = Override(armed_at=NOW + timedelta(minutes=1))
    state, d, events = step(state, [], override=arm, policy=ks, now=NOW + timedelta(minutes=2))
    assert d.armed and state.latched_since is None and events == ["armed"]


def test_without_latch_it_recovers_by_itself() -> None:
    state, d, events = step(ARMED, [f("min_balance")])
    assert events == ["revoked"]
    state, d, events = step(state, [], now=NOW + timedelta(minutes=1))
    assert d.armed and events == ["armed"]


def test_stale_data_revokes_and_fresh_data_re_arms() -> None:
    state, d, events = step(ARMED, [f("stale", "warning")])
    assert not d.armed and d.causes == ("stale",) and events == ["revoked"]
    state, d, events = step(state, [])
    assert d.armed and events == ["armed"]


def test_never_polled_is_no_go_and_quiet() -> None:
    state, d, events = step(PermitState(), poll=NEVER)
    assert not d.armed and d.reason == STARTING
    assert events == [] and state == PermitState()  # not knowing is no transition


def test_after_a_restart_only_a_poll_since_start_arms() -> None:
    restarted = PollHealth(started_at=NOW, last_success=NOW - timedelta(seconds=30))
    state, d, events = step(ARMED, poll=restarted)
    assert not d.armed and d.reason == STARTING and events == [] and state == ARMED
    state, d, events = step(state, poll=restarted.succeeded(NOW + timedelta(seconds=1)))
    assert d.armed and events == []  # armed before the restart, armed again: no message


def test_the_first_arm_ever_is_quiet() -> None:
    state, d, events = step(PermitState())
    assert d.armed and state.armed is True and events == []


def test_a_finding_before_the_first_poll_still_revokes_with_its_reason() -> None:
    _, d, _ = step(ARMED, [f("auth")], poll=NEVER)
    assert not d.armed and d.causes == ("auth",)
