"""Several instances, one budget: two real `budget-watchdog run` processes sharing one real
PostgreSQL (a fresh schema per test, tests/pg.py) against the loopback fake OpenRouter.

Issue 16's proof, point by point: exactly one instance polls; a SIGKILLed leader is replaced
within 2 x poll_interval + the lease; alerts go out once across both and none is lost in a
failover; concurrent reservations on both never over-commit; PostgreSQL down lets both
permits run out within the ttl, and they come back with it; trips, silences and latches made
through one instance hold on the other. Measured figures are printed (pytest -s shows them).
Skipped, with the reason, only when the PostgreSQL binaries are absent.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.conftest import DaemonProcess, base_config, cli, gate, get, wait_for
from tests.fake_openrouter import API_KEY, MANAGEMENT_KEY, FakeOpenRouter
from tests.pg import PASSWORD, PostgresServer
from tests.servers import WebhookSink, free_port

POLL_S = 1.0  # poll_interval of every instance here
LEASE_S = 3.0  # the leader's lease: clamp(poll_interval, 3 s, 60 s) (watchdog.cli._lease)
FAILOVER_BOUND_S = 2 * POLL_S + LEASE_S  # the bound for a new leader's first poll
DELIVER_EVERY_S = 2.0  # the daemon looks at the outbox this often (watchdog.daemon)


# -- two instances ------------------------------------------------------------------------


@dataclass
class Instance:
    """One `budget-watchdog run` of the pair: its process, status port and permit file."""

    name: str
    proc: DaemonProcess
    port: int
    permit: Path

    @property
    def config(self) -> Path:
        return self.proc.config

    def status(self) -> dict[str, Any] | None:
        answer = get(self.port, "/status")
        if answer is None or answer.status_code != 200:
            return None
        body: dict[str, Any] = answer.json()
        return body

    def role(self) -> str | None:
        body = self.status()
        return None if body is None else str(body["instance"]["role"])

    def instance_id(self) -> str:
        return f"{self.name}-unknown" if (body := self.status()) is None else body["instance"]["id"]

    def polls(self) -> list[dict[str, Any]]:
        return self.proc.events("poll")

    def armed(self) -> bool:
        return gate(self.permit).returncode == 0

    def preflight(self, cost: float) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}/preflight", params={"cost": cost})


@dataclass
class Pair:
    """Two instances on one database, and which of them leads once they agree."""

    a: Instance
    b: Instance
    instances: list[Instance] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.instances = [self.a, self.b]

    def settled(self, timeout: float = 20.0) -> tuple[Instance, Instance]:
        """(leader, follower) once both say who leads, and agree, and the leader polled."""

        def agreed() -> tuple[Instance, Instance] | None:
            seen = {i.name: (i, i.status()) for i in self.instances}
            parts = {name: body["instance"] for name, (_, body) in seen.items() if body}
            leaders = [name for name, part in parts.items() if part["role"] == "leader"]
            if len(parts) != 2 or len(leaders) != 1:
                return None
            leader = seen[leaders[0]][0]
            follower = self.b if leader is self.a else self.a
            if any(part["leader_id"] != parts[leader.name]["id"] for part in parts.values()):
                return None
            return (leader, follower) if leader.polls() else None

        found: tuple[Instance, Instance] = wait_for(agreed, timeout, "one leader, one follower")
        return found


@pytest.fixture
def pair(fake: FakeOpenRouter, pg_url: str, tmp_path: Path) -> Iterator[Callable[..., Pair]]:
    """Start two instances on this test's schema; each in its own directory, with its own
    status port and permit. `extra` joins every config; `killswitch` lines go in
    [killswitch]."""
    started: list[DaemonProcess] = []

    def start(*, extra: str = "", killswitch: str = "", management: bool = False) -> Pair:
        instances = []
        for name in ("a", "b"):
            home = tmp_path / name
            home.mkdir()
            port = free_port()
            config = base_config(
                fake, home, management=management, extra=extra, port=port, url=pg_url
            ).replace("[killswitch]\n", f"[killswitch]\n{killswitch}")
            proc = DaemonProcess(home, config, name=name)
            started.append(proc)
            instances.append(Instance(name, proc, port, home / "run" / "permit"))
        for instance in instances:
            instance.proc.start()
        return Pair(instances[0], instances[1])

    yield start
    for proc in started:
        proc.stop()
    for proc in started:  # no key and no database password in any log line
        output = proc.output()
        assert API_KEY not in output and MANAGEMENT_KEY not in output
        assert PASSWORD not in output


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows `sql` reads in the shared database (none before its tables exist)."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            return list(conn.execute(sql.encode()).fetchall())
    except psycopg.errors.UndefinedTable:
        return []


def outbox(url: str) -> list[tuple[str, str]]:
    """(title, state) of every outbox row in the shared database, oldest first."""
    rows = query(url, "SELECT title, state FROM outbox ORDER BY id")
    return [(str(title), str(state)) for title, state in rows]


def fired(instance: Instance, rule: str) -> list[tuple[str, str]]:
    """(kind, severity) of the alerts `instance` logged for `rule`."""
    return [(e["kind"], e["severity"]) for e in instance.proc.events("alert") if e["rule"] == rule]


def kill(instance: Instance) -> float:
    """SIGKILL the instance; the monotonic time it was sent."""
    at = time.monotonic()
    instance.proc.signal(signal.SIGKILL)
    instance.proc.wait()
    return at


# -- the proof ----------------------------------------------------------------------------


def test_exactly_one_instance_polls_each_interval(
    fake: FakeOpenRouter, pair: Callable[..., Pair]
) -> None:
    leader, follower = pair().settled()
    wait_for(lambda: len(leader.polls()) >= 2, what="the leader polling steadily")
    intervals = 4
    start = time.monotonic()
    polls_before = len(leader.polls())
    time.sleep(intervals * POLL_S)
    asked = fake.polls_between(start, time.monotonic())
    # One request per interval (a boundary may fall either side), not one per instance.
    assert intervals - 1 <= len(asked) <= intervals + 1, asked
    gaps = [later - earlier for earlier, later in itertools.pairwise(asked)]
    assert min(gaps) > 0.5 * POLL_S, gaps  # two pollers would interleave
    assert abs((len(leader.polls()) - polls_before) - len(asked)) <= 1
    assert not follower.polls()  # the follower never asked the provider
    # ...yet it writes its own host's permit from the shared decision
    assert leader.armed() and follower.armed()
    for instance, leads in ((leader, 1), (follower, 0)):
        metrics = get(instance.port, "/metrics")
        assert metrics is not None
        assert re.search(rf"^budget_watchdog_leader {leads}(\.0)?$", metrics.text, re.M)
    print(
        f"\n{len(asked)} polls in {intervals} intervals of {POLL_S:g} s, all by "
        f"{leader.instance_id()}; gaps {min(gaps):.2f}..{max(gaps):.2f} s"
    )


def test_a_killed_leader_is_replaced_and_polls_within_two_intervals_and_a_lease(
    fake: FakeOpenRouter, pair: Callable[..., Pair]
) -> None:
    leader, follower = pair().settled()
    wait_for(lambda: len(leader.polls()) >= 2, what="the leader polling steadily")
    killed_at = kill(leader)
    first = wait_for(
        lambda: fake.polls_between(killed_at), FAILOVER_BOUND_S + 5, "a poll by the new leader"
    )[0]
    took = first - killed_at
    bound = FAILOVER_BOUND_S
    print(f"\nfailover: the new leader polled {took:.2f} s after SIGKILL (bound {bound:g} s)")
    assert took <= FAILOVER_BOUND_S
    wait_for(lambda: follower.polls(), what="the poll in the new leader's log")
    status = follower.status()
    assert status is not None and status["instance"]["role"] == "leader"
    assert status["instance"]["leader_id"] == status["instance"]["id"]
    assert follower.proc.events("leader_changed")
    assert follower.armed()  # kept armed throughout, now from its own decisions


def test_alerts_go_out_once_across_both_and_none_is_lost_when_the_leader_dies(
    fake: FakeOpenRouter, pair: Callable[..., Pair], pg_url: str
) -> None:
    sink = WebhookSink().start()
    try:
        extra = (  # (no spike finding: only the daily limit speaks)
            "[budget]\ndaily_limit = 20.0\nspike_min_rate = 1000.0\n"
            f'[[notify.targets]]\nurl = "{sink.url}"\nseverities = ["warning", "critical"]\n'
        )
        leader, follower = pair(extra=extra).settled()
        # A warning while both run: one message, from the leader.
        fake.spend(15.0)  # $17 of $20 today: 85%
        wait_for(lambda: len(sink.titles()) == 1, 15, "the warning delivered")
        # A critical: the leader is killed as soon as its message is in the shared outbox,
        # before its courier (every 2 s) has sent it, or while it does.
        fake.spend(4.0)  # $21 of $20
        critical = wait_for(
            lambda: [r for r in outbox(pg_url) if r[0].startswith("[CRITICAL")],
            10,
            "the critical in the outbox",
        )
        killed_id = leader.instance_id()
        killed_at = kill(leader)
        state_at_kill = critical[0][1]
        wait_for(
            lambda: any(t.startswith("[CRITICAL") for t in sink.titles()),
            20,
            "the critical delivered after the kill",
        )
        delivered = time.monotonic() - killed_at
        # Settle: a second copy would come within a delivery round or two.
        wait_for(lambda: all(s == "sent" for _, s in outbox(pg_url)), 10, "every row sent")
        time.sleep(DELIVER_EVERY_S)
        titles, rows = sink.titles(), outbox(pg_url)
        senders = query(pg_url, "SELECT claimed_by FROM outbox WHERE title LIKE '[CRITICAL%'")
    finally:
        sink.stop()
    sender = "the killed leader's courier" if senders[0][0] == killed_id else "the new leader"
    print(
        f"\nthe critical, {state_at_kill!r} when its leader was killed, arrived "
        f"{delivered:.2f} s after the SIGKILL, sent by {sender}; delivered: {titles}"
    )
    assert sorted(titles) == sorted(title for title, _ in rows)  # each exactly once
    assert [t.split("]")[0] for t in titles] == [
        "[WARNING",
        "[CRITICAL, escalated",
        "[PERMIT REVOKED",
    ]
    # Fired once across both: the old leader's log has the three alerts, the new one's none
    # (it took the alert state over from the database, it did not fire them again).
    logged = [(e["rule"], e["kind"]) for e in leader.proc.events("alert")]
    assert logged == [
        ("daily_limit", "firing"),
        ("daily_limit", "escalated"),
        ("permit", "revoked"),
    ]
    wait_for(lambda: follower.polls(), what="the new leader polling")
    assert not follower.proc.events("alert")


def test_a_hundred_concurrent_reservations_on_both_never_over_commit(
    fake: FakeOpenRouter, pair: Callable[..., Pair], pg_url: str
) -> None:
    leader, follower = pair(extra="[budget]\ndaily_limit = 20.0\n").settled()
    wait_for(lambda: follower.preflight(0).status_code == 200, what="the follower's go")
    headroom = leader.preflight(0).json()["headroom_usd"]
    assert follower.preflight(0).json()["headroom_usd"] == headroom == 18.0  # $20 - $2
    cost = 2.5  # 7 fit in $18 (17.50), the 8th would not
    fits = math.floor(headroom / cost)
    per_instance = 50
    barrier = threading.Barrier(2 * per_instance)
    answers: list[tuple[str, int, dict[str, Any]]] = []
    spans: list[tuple[float, float]] = []  # each request's start and end
    lock = threading.Lock()

    # One client, a connection per request: all 100 are open at once.
    client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=2 * per_instance))

    def reserve(instance: Instance, n: int) -> None:
        barrier.wait()
        began = time.monotonic()
        answer = client.post(
            f"http://127.0.0.1:{instance.port}/preflight",
            params={"cost": cost, "hold": "10m", "label": f"{instance.name}-{n}"},
        )
        ended = time.monotonic()
        with lock:
            answers.append((instance.name, answer.status_code, answer.json()))
            spans.append((began, ended))

    threads = [
        threading.Thread(target=reserve, args=(instance, n))
        for n in range(per_instance)
        for instance in (leader, follower)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    client.close()
    took = max(end for _, end in spans) - min(start for start, _ in spans)
    assert len(answers) == 2 * per_instance
    granted = [(name, body) for name, code, body in answers if code == 200]
    refused = [body for _, code, body in answers if code != 200]
    assert {code for _, code, _ in answers} <= {200, 409}, answers
    assert all(body["go"] and body["reservation"]["amount"] == cost for _, body in granted)
    assert math.fsum(cost for _ in granted) <= headroom  # never over-committed...
    assert len(granted) == fits  # ...and not under either: exactly what fits
    assert all(not body["go"] and body["reasons"] for body in refused)
    held = query(pg_url, "SELECT count(*), coalesce(sum(amount), 0) FROM holds")[0]
    assert held == (fits, fits * cost)
    by = {name: sum(1 for n, _ in granted if n == name) for name in (leader.name, follower.name)}
    print(
        f"\n{2 * per_instance} concurrent POST /preflight of ${cost} against ${headroom} of "
        f"headroom in {took:.2f} s: {len(granted)} granted ({by}), {len(refused)} refused"
    )
    # Both instances see every hold (a read answers from the holds read at most a second
    # ago: watchdog.holds.REFRESH_S): what is left is the same on either.
    for instance in (leader, follower):

        def sees_all(instance: Instance = instance) -> bool:
            status = instance.status()
            return status is not None and status["reserved_usd"] == fits * cost

        wait_for(sees_all, 3, f"{instance.name} counting every hold")
        assert instance.preflight(cost).status_code == 409


def test_postgres_down_lets_both_permits_expire_within_the_ttl_and_they_come_back(
    pair: Callable[..., Pair], pg_server: PostgresServer
) -> None:
    ttl = 4.0
    leader, follower = pair(killswitch=f'ttl = "{ttl:g}s"\n').settled()
    both = (leader, follower)
    wait_for(lambda: all(i.armed() for i in both), what="both permits armed")
    stopped_at = time.monotonic()
    pg_server.stop()  # fast shutdown: every session is ended
    try:
        gone: dict[str, float] = {}

        def expired() -> bool:
            for instance in both:
                if instance.name not in gone and not instance.armed():
                    gone[instance.name] = time.monotonic() - stopped_at
            return len(gone) == 2

        wait_for(expired, ttl + 5, "both permits expired")
        for instance in both:
            verdict = gate(instance.permit)
            assert verdict.returncode == 1
            # run out at its lease, not removed: a blip shorter than the ttl stops no job
            assert "expired" in verdict.stderr, verdict.stderr
            answer = instance.preflight(0)
            assert answer.status_code == 409 and not answer.json()["go"], answer.text
        status = follower.status()
        assert status is not None and status["permit"] == "revoked"
        assert any(f["rule"] == "state" for f in status["findings"])
    finally:
        restarted_at = time.monotonic()
        pg_server.start()
    wait_for(lambda: all(i.armed() for i in both), 20, "both permits armed again")
    back = time.monotonic() - restarted_at
    wait_for(lambda: all(i.preflight(0).status_code == 200 for i in both), 10, "go again")
    print(
        f"\nPostgreSQL stopped: permits expired after {gone[leader.name]:.2f} s (leader) and "
        f"{gone[follower.name]:.2f} s (follower), ttl {ttl:g} s; started again: both armed "
        f"{back:.2f} s later"
    )
    assert max(gone.values()) <= ttl + 0.5  # the lease, and the gate's own start-up
    roles = sorted(str(i.role()) for i in both)
    assert roles == ["follower", "leader"]


def test_trips_silences_and_latches_made_on_one_instance_hold_on_the_other(
    fake: FakeOpenRouter, pair: Callable[..., Pair], pg_url: str
) -> None:
    sink = WebhookSink().start()
    try:
        # Balance $200 (management key): under $150 is critical (no warning above $187.50).
        # latch: a revocation holds until `arm`.
        extra = (
            "[budget]\nmin_balance = 150.0\nspike_min_rate = 1000.0\n"
            f'[[notify.targets]]\nurl = "{sink.url}"\nseverities = ["warning", "critical"]\n'
        )
        leader, follower = pair(extra=extra, killswitch="latch = true\n", management=True).settled()
        both = (leader, follower)
        wait_for(lambda: all(i.armed() for i in both), what="both permits armed")

        # A trip through the follower stops the leader's host too (and the reverse arm).
        tripped = cli(follower.config, "trip", "--reason", "invoice check")
        assert tripped.returncode == 0, tripped.stderr
        assert not follower.armed()  # at once: the CLI removes its own host's file
        wait_for(lambda: not leader.armed(), 5, "the leader's permit revoked by the trip")
        answer = leader.preflight(0)
        assert answer.status_code == 409 and "invoice check" in json.dumps(answer.json())
        armed = cli(leader.config, "arm")
        assert armed.returncode == 0, armed.stdout + armed.stderr
        wait_for(lambda: all(i.armed() for i in both), 5, "both armed again")

        # A silence set through the follower mutes the leader's messages.
        silenced = cli(follower.config, "silence", "min_balance", "--for", "1h")
        assert silenced.returncode == 0, silenced.stderr
        wait_for(
            lambda: (
                (s := leader.status()) and [x["rule"] for x in s["silences"]] == ["min_balance"]
            ),
            5,
            "the silence on the leader (at its next tick)",
        )
        fake.spend(60.0)  # the balance falls to $140: critical, and the permit latched off
        wait_for(lambda: not any(i.armed() for i in both), 5, "both revoked")
        with fake.lock:
            fake.account.total_credits += 100.0  # a top-up: $240, the finding clears
        wait_for(
            lambda: (s := leader.status()) is not None and not s["findings"],
            5,
            "the finding cleared on the leader",
        )
        # The latch holds on both; after the leader dies, on the one that takes over.
        killed_at = kill(leader)
        wait_for(lambda: follower.role() == "leader", FAILOVER_BOUND_S + 2, "a new leader")
        wait_for(follower.polls, 5, "a poll of the new leader")
        assert not follower.armed()
        status = follower.status()
        assert status is not None and status["permit"] == "revoked"
        assert "latch" in str(status["permit_reason"]), status["permit_reason"]
        assert not status["findings"]  # nothing fires: only the latch holds it
        armed = cli(follower.config, "arm")
        assert armed.returncode == 0, armed.stdout + armed.stderr
        wait_for(follower.armed, 5, "the new leader's permit armed by `arm`")
        wait_for(lambda: all(s == "sent" for _, s in outbox(pg_url)), 10, "every message sent")
        titles = sink.titles()
    finally:
        sink.stop()
    print(f"\nlatched through a failover {time.monotonic() - killed_at:.1f} s; sent: {titles}")
    # The silence held on the leader that judged the balance: no min_balance message; the
    # permit's own messages (revoked, armed) are not a rule's, and went out.
    assert [t.split("]")[0] for t in titles] == ["[PERMIT REVOKED", "[PERMIT ARMED"] * 2, titles
    judged = [e for e in leader.polls() if "min_balance:critical" in e["findings"]]
    assert judged and not fired(leader, "min_balance")  # judged, and not told


def test_arm_through_a_follower_says_the_permit_is_armed(pair: Callable[..., Pair]) -> None:
    leader, follower = pair().settled()
    wait_for(lambda: leader.armed() and follower.armed(), what="both permits armed")
    tripped = cli(leader.config, "trip", "--reason", "invoice check")
    assert tripped.returncode == 0, tripped.stderr
    wait_for(lambda: not follower.armed(), 5, "the follower's permit revoked")
    armed = cli(follower.config, "arm")
    wait_for(lambda: leader.armed() and follower.armed(), 5, "both armed again")  # it is so
    assert armed.returncode == 0, armed.stdout  # and `arm` says so
    assert "invoice check" not in armed.stdout


class StallingSink(WebhookSink):
    """A webhook receiver that takes each message in (the receiver has it), then answers
    nothing while `stalled` is set: its sender is caught mid-send."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = threading.Event()
        self.arrived: list[tuple[float, str]] = []  # when each message came in, its title

    def start(self) -> StallingSink:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                with sink.lock:
                    sink.received.append(body)
                    sink.arrived.append((time.monotonic(), str(body.get("title"))))
                while sink.stalled.is_set() and sink._server is not None:
                    time.sleep(0.05)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self


def children(pid: int) -> list[int]:
    """The processes `pid` started (the courier it runs to send the outbox)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


@pytest.mark.slow
def test_a_leader_host_dying_mid_send_delays_the_message_by_the_claim_at_most(
    fake: FakeOpenRouter, pair: Callable[..., Pair], pg_url: str
) -> None:
    """The at-least-once window: the leader and its courier die while a message is on the
    wire (a host crash). The message is claimed by the dead instance until its claim runs
    out (watchdog.outbox.CLAIM_HOLD, 90 s); the new leader sends it then. The receiver may
    have it twice (it took the first copy in); it never has it zero times."""
    from watchdog.outbox import CLAIM_HOLD

    sink = StallingSink().start()
    try:
        extra = (
            "[budget]\ndaily_limit = 20.0\nspike_min_rate = 1000.0\n"
            f'[[notify.targets]]\nurl = "{sink.url}"\nseverities = ["warning", "critical"]\n'
        )
        leader, follower = pair(extra=extra).settled()
        assert leader.proc.proc is not None
        sink.stalled.set()
        fake.spend(19.0)  # $21 of $20: critical, and the permit revoked
        wait_for(lambda: sink.arrived, 15, "the critical on the wire")
        couriers = children(leader.proc.proc.pid)
        killed_id = leader.instance_id()
        killed_at = kill(leader)
        for pid in couriers:  # the whole host goes: the courier with its daemon
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        sink.stalled.clear()
        claimed = query(pg_url, "SELECT state, claimed_by FROM outbox ORDER BY id LIMIT 1")
        hold = CLAIM_HOLD.total_seconds()
        wait_for(lambda: len(sink.arrived) >= 2, hold + 30, "the critical sent again")
        again = sink.arrived[1][0] - killed_at
        wait_for(lambda: all(s == "sent" for _, s in outbox(pg_url)), 15, "every row sent")
        titles = sink.titles()
        resent_by = query(pg_url, "SELECT claimed_by FROM outbox ORDER BY id LIMIT 1")[0][0]
    finally:
        sink.stalled.clear()
        sink.stop()
    print(
        f"\nkilled mid-send ({claimed[0][0]!r}, claimed by {claimed[0][1]}): sent again by "
        f"the new leader {again:.1f} s after the crash (claim {hold:g} s); received: {titles}"
    )
    assert claimed[0] == ("sending", killed_id)
    assert resent_by == follower.instance_id()
    critical = [t for t in titles if t.startswith("[CRITICAL")]
    assert len(critical) == 2  # at least once: the copy on the wire, and the resend
    assert len([t for t in titles if t.startswith("[PERMIT REVOKED")]) == 1
    assert again <= hold + 2 * DELIVER_EVERY_S + 5  # the window: the claim, a round, a start
