"""One tick's decisions in one call, with plain values: no store, no provider, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchdog.core import burn
from watchdog.core.decide import Inputs, Outcome, decide
from watchdog.core.model import (
    BudgetPolicy,
    Override,
    Policy,
    PollHealth,
    Recipient,
    Sample,
    Silence,
    Trip,
)
from watchdog.core.permit import STARTING, PermitState

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
POLICY = Policy(budget=BudgetPolicy(daily_limit=20.0, monthly_limit=400.0))
OPS = Recipient("ops", ("warning", "critical"))


def history(*points: tuple[int, float, float]) -> burn.History:
    """(minutes after T0, lifetime usage, usage_daily) samples."""
    return burn.History.from_samples(
        Sample(T0 + timedelta(minutes=m), usage, usage_daily=daily) for m, usage, daily in points
    )


def inputs(h: burn.History, now: datetime, **overrides: object) -> Inputs:
    base: dict[str, object] = {
        "now": now,
        "policy": POLICY,
        "history": h,
        "prior": burn.Prior(),
        "poll": PollHealth(started_at=T0, last_success=now),
        "alerts": {},
        "permit": PermitState(armed=True),
        "override": Override(),
        "silences": {},
        "recipients": [OPS],
        "key_name": "batch",
    }
    base.update(overrides)
    return Inputs(**base)  # type: ignore[arg-type]


def quiet() -> Outcome:
    h = history((0, 100.0, 1.0), (1, 100.01, 1.01))
    return decide(inputs(h, T0 + timedelta(minutes=1)))


def test_a_quiet_account_is_armed_with_no_messages() -> None:
    o = quiet()
    assert o.decision.armed and o.findings == [] and o.events == [] and o.outbox == []
    assert o.metrics.spent_today == pytest.approx(1.01)


def test_a_limit_crossed_revokes_and_routes_both_messages() -> None:
    h = history((0, 100.0, 1.0), (1, 121.0, 22.0))
    o = decide(inputs(h, T0 + timedelta(minutes=1)))
    assert not o.decision.armed
    assert [(e.kind, e.rule) for e in o.events] == [
        ("firing", "daily_limit"),
        ("revoked", "permit"),
    ]
    assert o.transition is not None and o.transition.kind == "revoked"
    assert {r.target for r in o.outbox} == {"ops"} and len(o.outbox) == 2
    assert o.outbox[0].title.startswith("[CRITICAL] daily_limit on batch")


def test_a_recipient_gets_only_its_severities() -> None:
    h = history((0, 100.0, 1.0), (1, 117.0, 17.0))  # 85%: a warning
    o = decide(inputs(h, T0 + timedelta(minutes=1), recipients=[Recipient("pager", ("critical",))]))
    assert [e.severity for e in o.events] == ["warning"] and o.outbox == []


def test_a_silence_holds_the_message_but_not_the_permit() -> None:
    h = history((0, 100.0, 1.0), (1, 121.0, 22.0))
    now = T0 + timedelta(minutes=1)
    silences = {"daily_limit": Silence("daily_limit", now + timedelta(hours=1))}
    o = decide(inputs(h, now, silences=silences))
    assert not o.decision.armed
    assert [e.rule for e in o.events] == ["permit"]
    assert o.alerts[("daily_limit", "*")].suppressed


def test_a_trip_revokes_a_quiet_account() -> None:
    h = history((0, 100.0, 1.0), (1, 100.01, 1.01))
    trip = Override(trip=Trip("investigating", "alice", T0))
    o = decide(inputs(h, T0 + timedelta(minutes=1), override=trip))
    assert not o.decision.armed and o.decision.actor == "alice"


def test_before_the_first_poll_since_start_it_is_no_go_without_a_message() -> None:
    now = T0 + timedelta(minutes=1)
    o = decide(inputs(burn.History(), now, poll=PollHealth(started_at=now)))
    assert not o.decision.armed and o.decision.reason == STARTING
    assert o.events == [] and o.permit == PermitState(armed=True)


def test_a_failing_key_disable_is_a_critical_finding_that_revokes() -> None:
    h = history((0, 100.0, 1.0), (1, 100.01, 1.01))
    o = decide(inputs(h, T0 + timedelta(minutes=1), disable_error="HTTP 500"))
    assert [f.rule for f in o.findings] == ["key_disable"]
    assert not o.decision.armed


def test_messages_carry_the_data_age() -> None:
    h = history((0, 100.0, 1.0), (1, 121.0, 22.0))
    now = T0 + timedelta(minutes=1)
    poll = PollHealth(started_at=T0, last_success=now - timedelta(seconds=45))
    o = decide(inputs(h, now, poll=poll))
    assert "Data age: 45 s" in o.outbox[0].body
