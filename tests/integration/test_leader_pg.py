"""The election on a real PostgreSQL: one leader among several instances, a leader killed
(SIGKILL), hung (SIGSTOP) or cut off from the database, and a deposed leader's writes
refused by its term. Failover times are printed (pytest -s shows them)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.pg import PostgresServer, wait_until
from watchdog.core.model import Sample
from watchdog.leader import Leadership, Role
from watchdog.store import LeadershipLost, Store

T0 = datetime(2026, 11, 1, tzinfo=UTC)
# The child's samples are at CHILD_T0 + n seconds, the parent's before it.
CHILD_T0 = datetime(2026, 11, 2, tzinfo=UTC)


def wall() -> datetime:
    return datetime.now(UTC)


# An instance in its own process: tries to lead every 50 ms and, while it leads, writes a
# sample in a fenced unit; says what happened on each line.
CHILD = """
import sys, time
from datetime import UTC, datetime, timedelta
from watchdog.core.model import Sample
from watchdog.leader import Leadership
from watchdog.store import LeadershipLost, Store, StoreError

url, lease = sys.argv[1], float(sys.argv[2])
store = Store.open(url)
lead = Leadership(store, "child", timedelta(seconds=lease), lambda: datetime.now(UTC))
n = 0
while True:
    role = lead.try_lead()
    if role.leading:
        n += 1
        try:
            with store.unit() as unit:
                lead.fence(unit)
                ts = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(seconds=n)
                unit.add_samples([Sample(ts=ts, usage=float(n))])
            print("wrote", role.term, flush=True)
        except LeadershipLost:
            print("refused", role.term, flush=True)
        except StoreError as exc:  # its session ended by the server while it was stopped
            print("failed", exc, flush=True)
    else:
        print("follower", role.leader_id, flush=True)
    time.sleep(0.05)
"""


class Child:
    """The child instance, with the lines it printed (read on a thread)."""

    def __init__(self, url: str, lease: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(lease)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def signal(self, number: int) -> None:
        os.kill(self.process.pid, number)

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@pytest.fixture
def child(pg_url: str) -> Iterator[list[Child]]:
    """The child processes a test started (append them): each is killed at the end."""
    started: list[Child] = []
    yield started
    for one in started:
        one.end()


def child_samples(store: Store) -> int:
    return len([s for s in store.history(T0) if s.ts >= CHILD_T0])


def attempt_until_leading(lead: Leadership, timeout: float, every: float = 0.05) -> float:
    """Try to lead every `every` seconds until it works; the seconds it took."""
    return wait_until(lambda: lead.try_lead().leading, timeout, every)


def test_of_two_instances_exactly_one_leads(pg_url: str) -> None:
    lease = timedelta(seconds=30)
    a = Leadership(pg_url, "a", lease, wall)
    b = Leadership(pg_url, "b", lease, wall)
    try:
        first, second = a.try_lead(), b.try_lead()
        assert first.role == "leader" and first.leader_id == "a" and first.term == 1
        assert second == Role("b", "follower", "a", first.since)
        for _ in range(5):  # renewals keep the leader and its term
            assert a.try_lead() == first
            assert not b.try_lead().leading
        assert a.is_leading() and not b.is_leading()
    finally:
        a.close()
        b.close()


def test_a_leader_that_steps_down_is_followed_at_the_next_attempt(pg_url: str) -> None:
    lease = timedelta(seconds=30)
    with Store.open(pg_url) as store:
        a = Leadership(store, "a", lease, wall)
        b = Leadership(store, "b", lease, wall)
        assert a.try_lead().leading and not b.try_lead().leading
        a.step_down()
        assert not a.role.leading and not a.is_leading()
        taken = b.try_lead()
        assert taken.leading and taken.term == 2
        assert a.try_lead() == Role("a", "follower", "b", taken.since)


def test_racing_instances_never_share_a_term(pg_url: str) -> None:
    """Three instances trying to lead as fast as they can, stepping down now and then:
    every term has one holder."""
    holders: dict[int, set[str]] = {}
    lock = threading.Lock()

    def run(name: str) -> None:
        lead = Leadership(pg_url, name, timedelta(seconds=5), wall)
        try:
            for i in range(40):
                role = lead.try_lead()
                if role.leading:
                    with lock:
                        holders.setdefault(role.term, set()).add(name)
                    if i % 4 == 3:
                        lead.step_down()
        finally:
            lead.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(holders) > 3  # leadership did change hands
    assert all(len(names) == 1 for names in holders.values()), holders


def test_a_killed_leader_is_replaced_within_its_lease(pg_url: str, child: list[Child]) -> None:
    lease = 1.0
    leader = Child(pg_url, lease)
    child.append(leader)
    wait_until(lambda: "wrote 1" in leader.lines, 20)
    b = Leadership(pg_url, "b", timedelta(seconds=lease), wall)
    try:
        assert not b.try_lead().leading
        leader.signal(signal.SIGKILL)
        killed = time.monotonic()
        leader.process.wait(10)
        attempt_until_leading(b, lease + 5)
        failover = time.monotonic() - killed
        print(f"failover after SIGKILL: {failover:.2f} s (lease {lease} s, attempts 50 ms)")
        assert failover <= lease + 1.0
        assert b.role.term == 2
    finally:
        b.close()


def test_a_hung_leader_is_replaced_and_its_late_writes_refused(
    pg_url: str, child: list[Child]
) -> None:
    lease = 1.0
    # Stopped inside a unit, it would hold the units' lock until the server ends its
    # session (IDLE_IN_TRANSACTION, shortened here): b's attempts wait for that.
    hung = Child(pg_url + "%20-cidle_in_transaction_session_timeout%3D500", lease)
    child.append(hung)
    wait_until(lambda: "wrote 1" in hung.lines, 20)
    with Store.open(pg_url) as store:
        b = Leadership(store, "b", timedelta(seconds=lease), wall)
        hung.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        attempt_until_leading(b, lease + 5)
        failover = time.monotonic() - stopped
        print(f"failover after SIGSTOP: {failover:.2f} s (lease {lease} s)")
        with store.unit() as unit:  # the new leader writes, fenced
            b.fence(unit)
            unit.add_samples([Sample(ts=T0, usage=1.0)])
            written = child_samples(store)
        seen = len(hung.lines)
        hung.signal(signal.SIGCONT)
        for _ in range(10):  # the old leader wakes; b goes on leading
            time.sleep(0.05)
            assert b.try_lead().leading
        wait_until(lambda: any(ln.startswith("follower b") for ln in hung.lines[seen:]), 5)
        assert child_samples(store) == written  # nothing of the old leader's since
        b.close()


def test_a_deposed_leaders_write_with_its_old_term_is_refused(pg_url: str) -> None:
    lease = timedelta(milliseconds=300)
    with Store.open(pg_url) as store:
        a = Leadership(store, "a", lease, wall)
        b = Leadership(store, "b", lease, wall)
        old = a.try_lead()
        assert old.leading and old.term == 1
        time.sleep(0.35)  # a hangs past its lease
        assert not a.is_leading()
        assert b.try_lead().term == 2
        refused = pytest.raises(LeadershipLost, match="term 1 is over; b leads now")
        with refused, store.unit() as unit:
            unit.add_samples([Sample(ts=T0, usage=9.0)])
            unit.fence("a", old.term)
        assert store.last_sample() is None  # the unit rolled back
        with pytest.raises(LeadershipLost), store.unit() as unit:  # what `a` itself does
            a.fence(unit)
        assert a.try_lead() == Role("a", "follower", "b", b.role.since)


def test_a_leader_that_loses_the_database_leads_until_its_lease_ends(
    pg_server: PostgresServer, pg_url: str
) -> None:
    lease = timedelta(seconds=10)
    a = Leadership(pg_url, "a", lease, wall)
    try:
        now = wall()
        assert a.try_lead(now).leading
        pg_server.stop()
        # Out of reach: nobody can take over before the lease ends, so a still leads...
        assert a.try_lead(now + timedelta(seconds=5)).leading
        assert a.is_leading(now + lease - timedelta(milliseconds=1))
        # ...and not a moment after.
        assert not a.is_leading(now + lease)
        gone = a.try_lead(now + lease)
        assert gone == Role("a", "follower", None, None)
        pg_server.start()
        assert a.try_lead().leading  # back, and nobody else took it meanwhile
    finally:
        a.close()


def test_on_sqlite_the_one_daemon_always_leads(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        lead = Leadership(store, "solo", timedelta(seconds=1), wall)
        role = lead.try_lead(T0)
        assert role == Role("solo", "leader", "solo", T0)
        assert lead.try_lead(T0 + timedelta(days=1)) == role
        assert lead.is_leading(T0 + timedelta(days=2))
        with store.unit() as unit:
            lead.fence(unit)  # nothing to check: the lock file is the fence
            unit.add_samples([Sample(ts=T0, usage=1.0)])
        assert store.last_sample() == Sample(ts=T0, usage=1.0)


class Partition:
    """A TCP relay to the server that can be cut: while cut, it holds every byte it
    receives (the sockets stay open, as in a network cut, not a closed connection), and
    delivers them when healed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.port))
            self.sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
                self.flowing.wait()
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    def cut(self) -> None:
        self.flowing.clear()

    def heal(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.heal()
        for one in self.sockets:
            one.close()


def test_a_leader_cut_off_stops_leading_before_another_takes_over(pg_url: str) -> None:
    """The network between the leader and the database is cut: the leader's own reckoning
    ends its leadership before the database lets another instance take over, and the unit
    it had started when the cut came is refused when the network is back."""
    lease = timedelta(seconds=1)
    server = urlsplit(pg_url)
    assert server.port is not None
    relay = Partition(server.port)
    cut_off = Store.open(pg_url.replace(server.netloc.split("@")[1], relay.address))
    a = Leadership(cut_off, "a", lease, wall)
    b = Leadership(pg_url, "b", lease, wall)
    outcome: list[BaseException] = []

    def write_as_leader() -> None:
        try:
            with cut_off.unit() as unit:
                a.fence(unit)
                unit.add_samples([Sample(ts=T0, usage=9.0)])
        except BaseException as exc:
            outcome.append(exc)

    writer = threading.Thread(target=write_as_leader)
    try:
        assert a.try_lead().leading
        relay.cut()
        writer.start()  # stuck behind the cut
        took = attempt_until_leading(b, 5)
        print(f"failover after a network cut: {took:.2f} s (lease 1 s)")
        assert not a.is_leading()  # a had stopped counting itself leader by then
        with b._open().unit() as unit:
            b.fence(unit)
            unit.add_samples([Sample(ts=T0 + timedelta(minutes=1), usage=1.0)])
        relay.heal()
        writer.join(10)
        assert outcome and isinstance(outcome[0], LeadershipLost)
        assert [s.usage for s in cut_off.history(T0)] == [1.0]
        assert a.try_lead() == Role("a", "follower", "b", b.role.since)
    finally:
        relay.heal()
        writer.join(10)
        b.close()
        cut_off.close()
        relay.close()
