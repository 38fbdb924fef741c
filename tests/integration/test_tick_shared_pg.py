"""Two instances' ticks on one real PostgreSQL, in-process: the leader polls and commits,
the follower never polls and decides from what the leader committed (and from the
operator's override, wherever it was made); a follower that becomes leader takes up the
alert state where the old one stopped; a deposed leader's tick writes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.fakes import Clock, ScriptedProvider
from watchdog.config import Settings, load
from watchdog.core.model import Override, Trip
from watchdog.leader import Leadership
from watchdog.log import get_logger
from watchdog.permitfile import Issuer
from watchdog.providers.base import AuthError
from watchdog.store import LeadershipLost, Store
from watchdog.tick import Tick, TickResult

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
LONG = timedelta(hours=1)  # no lease runs out by itself in these tests


def wall() -> datetime:
    return datetime.now(UTC)


class Host:
    """One instance: its own store connection, permit file, election and tick."""

    def __init__(self, name: str, url: str, tmp: Path, clock: Clock, script: list[float]) -> None:
        self.settings: Settings = load(
            None,
            require_key=False,
            overrides={
                "state": {"url": url},
                "killswitch": {"path": str(tmp / name / "permit")},
                "budget": {"daily_limit": 50.0},
            },
        ).settings
        self.store = Store.open(url)
        self.provider = ScriptedProvider(clock, script)
        self.lead = Leadership(url, name, LONG, wall)
        self.permit = self.settings.killswitch.path
        self.tick = Tick(
            policy=self.settings.policy(),
            provider=self.provider,
            admin=None,
            store=self.store,
            permit=Issuer(self.permit, clock),
            clock=clock,
            log=get_logger(),
            leadership=self.lead,
        )

    def run(self) -> TickResult:
        result = self.tick.run()
        assert result.outcome is not None, result.failure
        return result

    def armed(self) -> bool:
        return self.permit.exists()

    def close(self) -> None:
        self.lead.close()
        self.store.close()


@pytest.fixture
def hosts(pg_url: str, tmp_path: Path) -> Iterator[tuple[Host, Host, Clock]]:
    clock = Clock(T0)
    a = Host("a", pg_url, tmp_path, clock, [10.0, 11.0, 12.0, 80.0, 81.0, 82.0])
    b = Host("b", pg_url, tmp_path, clock, [83.0, 84.0, 85.0])
    assert a.lead.try_lead().leading and not b.lead.try_lead().leading
    yield a, b, clock
    a.close()
    b.close()


def test_only_the_leader_polls_and_the_follower_permits_from_its_data(
    hosts: tuple[Host, Host, Clock],
) -> None:
    a, b, clock = hosts
    for _ in range(3):
        a.run()
        follower = b.run()
        clock.advance(seconds=60)
    assert a.provider.calls == 3 and b.provider.calls == 0
    assert follower.snapshot is None and follower.decision.armed
    # The same numbers on both hosts, from one poll.
    assert a.tick.view.metrics is not None and b.tick.view.metrics is not None
    assert b.tick.view.metrics.spent_today == a.tick.view.metrics.spent_today
    assert a.armed() and b.armed()


def test_a_revocation_by_the_leader_revokes_the_followers_permit(
    hosts: tuple[Host, Host, Clock],
) -> None:
    a, b, clock = hosts
    a.run()
    b.run()
    assert b.armed()
    clock.advance(seconds=60)
    a.provider.script[0] = 90.0  # 80 USD more today: over the daily limit of 50
    revoked = a.run()
    assert not revoked.decision.armed and not a.armed()
    followed = b.run()
    assert not followed.decision.armed and not b.armed()
    assert "daily" in b.tick.view.permit_reason


def test_an_override_made_anywhere_holds_on_every_host(hosts: tuple[Host, Host, Clock]) -> None:
    a, b, clock = hosts
    a.run()
    b.run()
    # The operator trips the switch through the follower's host (its store connection).
    with b.store.unit() as unit:
        unit.set_override(Override(trip=Trip(reason="incident 42", by="ops", at=clock())))
    assert not b.run().decision.armed and not b.armed()  # at once, before the leader ticks
    assert not a.run().decision.armed and not a.armed()
    assert "incident 42" in b.tick.view.permit_reason


def test_a_new_leader_takes_up_the_alerts_where_the_old_one_stopped(
    hosts: tuple[Host, Host, Clock],
) -> None:
    a, b, clock = hosts
    a.run()
    clock.advance(seconds=60)
    a.provider.script[0] = 90.0
    fired = a.run()  # the daily limit's alert fires
    assert [e.rule for e in fired.events if e.kind == "firing"] == ["daily_limit"]
    before = {i: st.since for i, st in b.store.load_alerts().items() if st.firing}
    assert before
    b.run()
    a.lead.step_down()  # a clean stop: b may lead at its next attempt
    assert b.lead.try_lead().leading
    clock.advance(seconds=60)
    with capture_logs() as logs:
        result = b.run()
    assert b.provider.calls == 1 and result.snapshot is not None  # it polls now
    assert any(e["event"] == "leading" for e in logs)
    # The alert already firing is not announced again by the new leader; it keeps its start.
    assert not [e for e in result.events if e.kind == "firing"]
    after = {i: st.since for i, st in b.store.load_alerts().items() if st.firing}
    assert after == before
    assert not result.decision.armed and not b.armed()


def test_a_deposed_leaders_tick_writes_nothing_and_follows(pg_url: str, tmp_path: Path) -> None:
    clock = Clock(T0)
    a = Host("a", pg_url, tmp_path, clock, [10.0, 11.0])
    b = Host("b", pg_url, tmp_path, clock, [12.0])
    try:
        a.lead = Leadership(pg_url, "a", timedelta(seconds=1), wall)
        a.tick.leadership = a.lead
        assert a.lead.try_lead().leading
        a.run()
        stored = len(a.store.history(T0 - timedelta(days=1)))
        # a hangs past its lease; b takes over. a's own reckoning has not caught up yet:
        # it still believes it leads, so its tick polls — and the commit is refused.
        deadline = wall() + timedelta(seconds=5)
        while not b.lead.try_lead().leading:
            assert wall() < deadline, "b never took over"
        a.lead._deadline = wall() + LONG  # a clock that lies to a
        clock.advance(seconds=60)
        with capture_logs() as logs:
            result = a.tick.run()
        assert any(e["event"] == "leadership_lost" for e in logs)
        assert result.snapshot is None  # it ended as a follower's tick
        assert len(a.store.history(T0 - timedelta(days=1))) == stored
    finally:
        a.close()
        b.close()


def test_an_arm_made_after_the_leaders_revocation_is_judged_at_once_by_a_follower(
    hosts: tuple[Host, Host, Clock],
) -> None:
    a, b, clock = hosts
    a.run()
    with a.store.unit() as unit:
        unit.set_override(Override(trip=Trip(reason="invoice check", by="ops", at=clock())))
    assert not a.run().decision.armed  # the leader commits the revocation
    assert not b.run().decision.armed
    clock.advance(seconds=5)
    with b.store.unit() as unit:  # `arm` on the follower's host, before the leader ticks
        unit.set_override(Override(trip=None, armed_at=clock()))
    assert b.run().decision.armed and b.armed()
    assert "invoice check" not in b.tick.view.permit_reason
    # A finding after the arm revokes both again.
    clock.advance(seconds=55)
    a.provider.script[0] = 95.0
    assert not a.run().decision.armed
    assert not b.run().decision.armed and not b.armed()


def test_a_tick_begun_in_an_earlier_term_commits_nothing(pg_url: str, tmp_path: Path) -> None:
    """A leads, hangs in its tick past its lease; B leads a term and goes; A leads again
    (a new term) — the old tick's commit is refused: B's term may have changed its inputs."""
    clock = Clock(T0)
    a = Host("a", pg_url, tmp_path, clock, [10.0, 11.0, 12.0])
    b = Host("b", pg_url, tmp_path, clock, [12.0])
    try:
        a.lead = Leadership(pg_url, "a", timedelta(seconds=1), wall)
        a.tick.leadership = a.lead
        b.lead = Leadership(pg_url, "b", timedelta(seconds=1), wall)
        b.tick.leadership = b.lead
        assert a.lead.try_lead().leading
        a.run()
        assert a.tick._leads()  # the next tick begins, in term 1 ...
        deadline = wall() + timedelta(seconds=5)
        while not b.lead.try_lead().leading:  # ... and hangs: B takes over (term 2)
            assert wall() < deadline, "b never took over"
        b.lead.step_down()
        assert a.lead.try_lead().term == 3  # A leads again
        stored = len(a.store.history(T0 - timedelta(days=1)))
        clock.advance(seconds=60)
        with pytest.raises(LeadershipLost):
            a.tick._run()  # the rest of the tick begun in term 1
        assert len(a.store.history(T0 - timedelta(days=1))) == stored
        result = a.run()  # the next tick catches up, in term 3, and commits
        assert result.snapshot is not None
        assert len(a.store.history(T0 - timedelta(days=1))) == stored + 1
    finally:
        a.close()
        b.close()


def test_a_leader_whose_tick_is_stuck_steps_down_for_a_healthy_one(pg_url: str) -> None:
    from watchdog.cli import _election

    a = Leadership(pg_url, "a", timedelta(seconds=3), wall)
    b = Leadership(pg_url, "b", timedelta(seconds=3), wall)
    running: list[float | None] = [None]
    changes = [0]
    elect_a = _election(a, get_logger(), changes, lambda: running[0])
    try:
        assert elect_a() is True and a.role.leading  # just became the leader
        running[0] = 2.0  # a tick under way, not stuck: renewed
        assert elect_a() is False and a.role.leading
        running[0] = 7.0  # over two leases: a hung connection, say
        with capture_logs() as logs:
            assert elect_a() is False
        stepped_down = a.role
        assert not stepped_down.leading
        assert any(e["event"] == "leader_stepped_down" for e in logs)
        assert b.try_lead().leading  # at once: the lease was handed back
        assert elect_a() is False  # still stuck: no attempt
        still = a.role
        assert not still.leading
    finally:
        a.close()
        b.close()


def test_an_arm_on_a_follower_does_not_clear_what_only_the_leader_sees(
    hosts: tuple[Host, Host, Clock],
) -> None:
    """The provider refuses the leader's key: that finding is the leader's alone (its
    poll's error). An `arm` on the follower's host clears trips and latches, not that."""
    a, b, clock = hosts
    a.run()
    b.run()
    clock.advance(seconds=60)
    a.provider.script[0] = AuthError("GET /key: HTTP 401", status=401)
    refused = a.tick.run()
    assert refused.outcome is not None and not refused.decision.armed
    assert "auth" in refused.decision.causes
    assert not b.run().decision.armed
    clock.advance(seconds=5)
    with b.store.unit() as unit:
        unit.set_override(Override(trip=None, armed_at=clock()))
    followed = b.run()
    assert not followed.decision.armed and not b.armed()
    assert "auth" in b.tick.view.permit_reason


def test_a_host_whose_clock_is_off_neither_leads_nor_gives_permits(
    pg_url: str, tmp_path: Path
) -> None:
    clock = Clock(T0)
    a = Host("a", pg_url, tmp_path, clock, [10.0, 11.0])
    ahead = Leadership(pg_url, "a", LONG, lambda: wall() + timedelta(minutes=2))
    try:
        a.lead, a.tick.leadership = ahead, ahead
        role = ahead.try_lead()
        assert not role.leading and ahead.clock_offset is not None
        assert -121 < ahead.clock_offset < -119
        assert ahead.clock_problem and "120.0 s ahead of the shared database's" in (
            ahead.clock_problem
        )
        result = a.tick.run()
        assert result.outcome is None and "NTP" in (result.failure or "")
        assert not a.armed() and not a.tick.view.armed
        assert a.provider.calls == 0  # it did not poll either
        # Its clock fixed, it leads at its next attempt.
        ahead.clock = wall
        assert ahead.try_lead().leading and ahead.clock_problem is None
    finally:
        a.close()


def test_a_follower_judges_every_key_as_the_leader_does_without_reading_the_month_again(
    pg_url: str, tmp_path: Path
) -> None:
    """Per-key curves on a follower come from the leader's stored key samples, appended
    tick by tick (idle keys' flat runs extended as the leader's polls extend them): the
    same spend, rates and per-key verdicts as the leader's, and the same as a follower
    that read everything afresh."""
    from tests.unit.test_keyring import _Admin, key
    from watchdog.core.model import Credits, Snapshot
    from watchdog.permitfile import KeyPermits, keys_directory

    clock = Clock(T0)
    usages = {"steady": 0.0, "idle": 3.0, "runaway": 0.0}
    steps = {"steady": 0.02, "idle": 0.0, "runaway": 0.5}

    def snap() -> Snapshot:
        for name in usages:
            usages[name] += steps[name]
        keys = tuple(key(name, round(usage, 6)) for name, usage in usages.items())
        return Snapshot(clock(), credits=Credits(500.0, sum(usages.values())), keys=keys)

    def host(name: str, script: list[Snapshot]) -> tuple[Tick, Leadership, Path]:
        settings = load(
            None,
            require_key=False,
            overrides={
                "state": {"url": pg_url},
                "killswitch": {"path": str(tmp_path / name / "permit")},
                "provider": {"management_key": "sk-or-v1-" + "0" * 64},
                "budget": {"keys": [{"match": "runaway", "daily_limit": 4.0, "action": "revoke"}]},
            },
        ).settings
        permit = settings.killswitch.path
        key_permits = KeyPermits(keys_directory(permit), clock)
        issuer = Issuer(permit, clock)
        issuer.keys_epoch = key_permits.start()
        lead = Leadership(pg_url, name, LONG, wall)
        tick = Tick(
            policy=settings.policy(),
            provider=ScriptedProvider(clock, script),
            admin=_Admin(),  # type: ignore[arg-type]
            store=Store.open(pg_url),
            permit=issuer,
            clock=clock,
            log=get_logger(),
            key_permits=key_permits,
            leadership=lead,
        )
        return tick, lead, permit

    leader, lead_a, _ = host("a", [])
    script = leader.provider.script  # type: ignore[attr-defined]
    follower, lead_b, permit_b = host("b", [])
    try:
        assert lead_a.try_lead().leading and not lead_b.try_lead().leading
        for _ in range(12):
            script.append(snap())
            leader.run()
            follower.run()
            clock.advance(minutes=1)

        def rows(tick: Tick) -> dict[str, tuple[object, ...]]:
            return {
                r.name: (r.spent_today, r.burn_rate_per_hour, r.armed, r.headroom)
                for r in tick.view.keys
            }

        assert rows(follower) == rows(leader)
        assert rows(leader)["runaway"][2] is False  # $6 of its $4 limit: its own permit
        assert rows(leader)["steady"][2] is True
        # The follower's host: the runaway key's own file says no, the steady key's go.
        files = keys_directory(permit_b)
        assert json.loads((files / "runaway").read_text())["state"] == "revoked"
        assert json.loads((files / "steady").read_text())["state"] == "armed"
        # And the same as a follower that read everything afresh.
        fresh, lead_c, _ = host("c", [])
        try:
            fresh.run()  # (just started: no permits until the leader polls again)
            assert {n: r[:2] for n, r in rows(fresh).items()} == {
                n: r[:2] for n, r in rows(follower).items()
            }
        finally:
            lead_c.close()
            fresh.store.close()
    finally:
        lead_a.close()
        lead_b.close()
        leader.store.close()
        follower.store.close()
