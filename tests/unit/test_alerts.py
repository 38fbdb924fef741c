"""The alert lifecycle with explicit time: fire, repeat, escalate, resolve, silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from watchdog.core import alerts, rules
from watchdog.core.model import AlertState, BudgetPolicy, Event, Finding, Severity, Silence
from watchdog.store import Store

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
REPEAT = timedelta(hours=4)


def finding(severity: Severity = "warning", rule: str = "daily_limit") -> Finding:
    return Finding(rule, severity, 17.0, 16.0, f"{rule} is {severity}")


class Run:
    """Feeds findings tick by tick and keeps the events, like the daemon would."""

    def __init__(self, *, send_resolved: bool = True, repeat: timedelta = REPEAT) -> None:
        self.states: dict[tuple[str, str], AlertState] = {}
        self.silences: dict[str, Silence] = {}
        self.send_resolved = send_resolved
        self.repeat = repeat

    def at(self, minutes: float, *found: Finding) -> list[tuple[str, str, str]]:
        return [(e.kind, e.rule, e.severity) for e in self.events_at(minutes, *found)]

    def events_at(self, minutes: float, *found: Finding) -> list[Event]:
        now = T0 + timedelta(minutes=minutes)
        self.states, events = alerts.advance(
            self.states,
            list(found),
            now,
            repeat_interval=self.repeat,
            send_resolved=self.send_resolved,
            silences=self.silences,
        )
        return events


def test_a_new_finding_fires_once() -> None:
    run = Run()
    assert run.at(0, finding()) == [("firing", "daily_limit", "warning")]
    assert run.at(1, finding()) == []
    assert run.at(60, finding()) == []


def test_a_lasting_finding_repeats_at_the_interval() -> None:
    run = Run()
    run.at(0, finding())
    assert run.at(239, finding()) == []
    assert run.at(240, finding()) == [("repeat", "daily_limit", "warning")]
    assert run.at(300, finding()) == []
    assert run.at(480, finding()) == [("repeat", "daily_limit", "warning")]


def test_repeat_interval_zero_never_repeats() -> None:
    run = Run(repeat=timedelta(0))
    run.at(0, finding())
    assert run.at(10_000, finding()) == []


def test_escalation_and_de_escalation_are_new_messages() -> None:
    run = Run()
    run.at(0, finding("warning"))
    assert run.at(5, finding("critical")) == [("escalated", "daily_limit", "critical")]
    assert run.at(6, finding("critical")) == []
    assert run.at(7, finding("warning")) == [("de-escalated", "daily_limit", "warning")]


def test_a_second_threshold_is_not_swallowed_by_the_first_ones_dedup() -> None:
    run = Run()
    run.at(0, finding("warning"))
    # Within the repeat window, the critical crossing still goes out at once.
    assert run.at(1, finding("critical")) == [("escalated", "daily_limit", "critical")]


def test_resolution_is_sent_once_and_says_how_long_it_lasted() -> None:
    run = Run()
    run.at(0, finding())
    now = T0 + timedelta(minutes=95)
    states, events = alerts.advance(run.states, [], now, repeat_interval=REPEAT, send_resolved=True)
    assert [(e.kind, e.severity) for e in events] == [("resolved", "warning")]
    assert events[0].message.startswith("Resolved after 1 h 35 min. It was: daily_limit is warning")
    assert states == {}


def test_no_resolved_message_when_switched_off() -> None:
    run = Run(send_resolved=False)
    run.at(0, finding())
    assert run.at(5) == []


def test_independent_rules_do_not_interfere() -> None:
    run = Run()
    assert run.at(0, finding(rule="spike"), finding(rule="daily_limit")) == [
        ("firing", "spike", "warning"),
        ("firing", "daily_limit", "warning"),
    ]
    assert run.at(1, finding(rule="daily_limit")) == [("resolved", "spike", "warning")]


def test_a_silence_holds_messages_and_the_end_sends_it_again() -> None:
    run = Run()
    run.silences["spike"] = Silence("spike", T0 + timedelta(hours=2))
    assert run.at(0, finding(rule="spike")) == []
    assert run.at(30, finding("critical", rule="spike")) == []
    assert run.at(121, finding("critical", rule="spike")) == [("unsilenced", "spike", "critical")]
    assert run.at(122, finding("critical", rule="spike")) == []


def test_a_finding_that_starts_and_ends_during_its_silence_sends_nothing() -> None:
    run = Run()
    run.silences["spike"] = Silence("spike", T0 + timedelta(hours=2))
    run.at(0, finding(rule="spike"))
    assert run.at(10) == []
    assert run.at(200) == []
    assert run.states == {}


def test_a_finding_that_ends_during_its_silence_is_resolved_when_the_silence_ends() -> None:
    """Recipients told "[WARNING] spike" before the silence hear that it ended: held while
    the silence lasts, sent when it ends, saying when it really ended."""
    run = Run()
    assert run.at(0, finding(rule="spike")) == [("firing", "spike", "warning")]
    run.silences["spike"] = Silence("spike", T0 + timedelta(hours=2))
    assert run.at(30, finding(rule="spike")) == []
    assert run.at(45) == []  # ended here, under the silence
    assert run.at(90) == []
    assert alerts.firing(run.states) == {}  # held, but not firing: the rules hold nothing
    events = run.events_at(121)
    assert [(e.kind, e.rule) for e in events] == [("resolved", "spike")]
    assert events[0].at == T0 + timedelta(minutes=45)
    assert events[0].held_until == T0 + timedelta(minutes=121)
    assert events[0].message.startswith("Resolved after 45 min.")
    assert run.states == {} and run.at(122) == []


def test_a_held_resolution_is_sent_when_unsilence_removes_the_silence() -> None:
    run = Run()
    run.at(0, finding(rule="spike"))
    run.silences["spike"] = Silence("spike", T0 + timedelta(hours=8))
    run.at(10)
    del run.silences["spike"]  # `budget-watchdog unsilence spike`
    assert run.at(11) == [("resolved", "spike", "warning")]


def test_a_finding_back_after_its_held_resolution_is_sent_again_when_the_silence_ends() -> None:
    run = Run()
    run.at(0, finding(rule="spike"))
    run.silences["spike"] = Silence("spike", T0 + timedelta(hours=2))
    run.at(10)  # ended, resolution held
    assert run.at(20, finding("critical", rule="spike")) == []  # back, still silenced
    assert alerts.firing(run.states) == {("spike", "*"): "critical"}
    assert run.at(121, finding("critical", rule="spike")) == [("unsilenced", "spike", "critical")]
    assert run.states[("spike", "*")].since == T0 + timedelta(minutes=20)


def test_no_held_resolution_when_resolved_messages_are_off() -> None:
    run = Run(send_resolved=False)
    run.at(0, finding(rule="spike"))
    run.silences["spike"] = Silence("spike", T0 + timedelta(hours=2))
    run.at(10)
    assert run.states == {}
    assert run.at(121) == []


def test_unsilence_sends_a_finding_still_firing_again_though_nothing_was_held() -> None:
    """Fired and sent before the silence, unchanged during it: no message was held back,
    yet ending the silence (here by `unsilence`) sends it again, as the README says."""
    run = Run()
    run.at(0, finding(rule="spike"))
    run.silences["spike"] = Silence("spike", T0 + timedelta(hours=2))
    assert run.at(5, finding(rule="spike")) == []
    assert run.at(6, finding(rule="spike")) == []
    del run.silences["spike"]
    assert run.at(7, finding(rule="spike")) == [("unsilenced", "spike", "warning")]
    assert run.at(8, finding(rule="spike")) == []
    # The repeat interval counts from the re-send.
    assert run.at(7 + 240, finding(rule="spike")) == [("repeat", "spike", "warning")]


def test_a_silence_that_expires_sends_a_finding_still_firing_again() -> None:
    run = Run()
    run.at(0, finding(rule="spike"))
    run.silences["spike"] = Silence("spike", T0 + timedelta(minutes=30))
    assert run.at(10, finding(rule="spike")) == []
    assert run.at(31, finding(rule="spike")) == [("unsilenced", "spike", "warning")]


def test_a_silence_does_not_touch_other_rules() -> None:
    run = Run()
    run.silences["spike"] = Silence("spike", T0 + timedelta(hours=2))
    assert run.at(0, finding(rule="spike"), finding(rule="stale")) == [
        ("firing", "stale", "warning")
    ]


def test_states_survive_a_restart_without_duplicates(tmp_path: Path) -> None:
    run = Run()
    run.at(0, finding("critical"), finding(rule="spike"))
    with Store(tmp_path / "s.db") as store, store.unit() as unit:
        unit.save_alerts(run.states)
    with Store(tmp_path / "s.db") as store:
        restored = store.load_alerts()
    assert restored == run.states
    again = Run()
    again.states = restored
    assert again.at(1, finding("critical"), finding(rule="spike")) == []  # no duplicate
    assert again.at(2, finding("critical")) == [("resolved", "spike", "warning")]  # none missed


def test_a_value_hovering_at_the_line_does_not_flap() -> None:
    """Rules hold active findings (hysteresis); alerts see one firing, no resolve."""
    from tests.unit.test_rules import metrics, poll

    budget = BudgetPolicy(daily_limit=20)  # warning at $16.00, released under $15.20
    run = Run()
    kinds = []
    for minute, spent in enumerate([15.9, 16.1, 15.95, 16.05, 15.8, 16.2, 15.6, 16.0, 15.5]):
        held = {ident: s.severity for ident, s in run.states.items()}
        found = rules.evaluate(
            metrics(spent_today=spent), budget, poll(), horizon=timedelta(seconds=75), held=held
        )
        kinds += run.at(minute, *found)
    assert kinds == [("firing", "daily_limit", "warning")]


def test_a_held_resolution_survives_a_restart(tmp_path: Path) -> None:
    run = Run()
    run.at(0, finding(rule="spike"))
    run.silences["spike"] = Silence("spike", T0 + timedelta(hours=2))
    run.at(45)  # ended under the silence: held
    with Store(tmp_path / "s.db") as store, store.unit() as unit:
        unit.save_alerts(run.states)
    again = Run()
    again.silences = run.silences
    with Store(tmp_path / "s.db") as store:
        again.states = store.load_alerts()
    assert again.at(60) == []  # still silenced: still held, nothing sent
    assert again.at(121) == [("resolved", "spike", "warning")]
