"""The outbox against a real SQLite file: order, retries with backoff, isolation, giving up."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.fakes import Clock
from watchdog.core.model import OutboxRow
from watchdog.log import get_logger
from watchdog.notify import DeliveryError, Target
from watchdog.outbox import GIVE_UP_AFTER, Outbox, backoff
from watchdog.store import Store

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)
A = Target("a" * 16, "json://a", "json://a", ("warning", "critical"))
B = Target("b" * 16, "json://b", "json://b", ("critical",))


class Transport:
    """Delivers to a list per target; a target in `down` raises instead."""

    def __init__(self) -> None:
        self.delivered: dict[str, list[str]] = {}
        self.down: set[str] = set()

    def send(self, target: Target, title: str, body: str, severity: str, resolved: bool) -> None:
        if target.id in self.down:
            raise DeliveryError("connection refused")
        self.delivered.setdefault(target.id, []).append(title)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state.db")


def enqueue(store: Store, target: Target, *titles: str, at: datetime = T0) -> None:
    with store.unit() as unit:
        unit.enqueue(
            [OutboxRow(at, target.id, "critical", "firing", "r", t, "body") for t in titles]
        )


def rows(store: Store) -> list[sqlite3.Row]:
    """The outbox as it is on disk, oldest first (read beside the store, as an operator
    would with sqlite3)."""
    db = sqlite3.connect(store.path)
    db.row_factory = sqlite3.Row
    try:
        return list(db.execute("SELECT state, attempts FROM outbox ORDER BY id"))
    finally:
        db.close()


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff(50) == timedelta(hours=1)


def test_messages_go_out_in_order_and_once(store: Store) -> None:
    transport, clock = Transport(), Clock(T0)
    outbox = Outbox(store, transport, [A], clock, get_logger())
    enqueue(store, A, "one", "two", "three")
    assert outbox.deliver() == 3
    assert outbox.deliver() == 0
    assert transport.delivered[A.id] == ["one", "two", "three"]
    assert [m["state"] for m in rows(store)] == ["sent"] * 3


def test_a_down_target_keeps_its_queue_in_order_and_blocks_nobody(store: Store) -> None:
    transport, clock = Transport(), Clock(T0)
    outbox = Outbox(store, transport, [A, B], clock, get_logger())
    transport.down.add(A.id)
    enqueue(store, A, "a1", "a2")
    enqueue(store, B, "b1")
    with capture_logs() as logs:
        assert outbox.deliver() == 1
    assert transport.delivered == {B.id: ["b1"]}
    failed = [e for e in logs if e["event"] == "notify_failed"]
    assert failed[0]["retry_in_s"] == 30.0
    clock.advance(seconds=10)
    enqueue(store, A, "a3")
    outbox.deliver()  # not due yet: nothing tried
    assert rows(store)[0]["attempts"] == 1
    transport.down.clear()
    clock.advance(seconds=25)
    assert outbox.deliver() == 3
    assert transport.delivered[A.id] == ["a1", "a2", "a3"]


def test_health_records_sent_failed_and_pending(store: Store) -> None:
    transport, clock = Transport(), Clock(T0)
    outbox = Outbox(store, transport, [A], clock, get_logger())
    transport.down.add(A.id)
    enqueue(store, A, "a1")
    outbox.deliver()
    health = store.target_health()[A.id]
    assert (health.sent, health.failed, health.pending) == (0, 1, 1)
    assert health.last_error == "connection refused"
    transport.down.clear()
    clock.advance(minutes=1)
    outbox.deliver()
    health = store.target_health()[A.id]
    assert (health.sent, health.failed, health.pending) == (1, 1, 0)


def test_a_message_is_given_up_loudly_after_a_day(store: Store) -> None:
    transport, clock = Transport(), Clock(T0)
    outbox = Outbox(store, transport, [A], clock, get_logger())
    transport.down.add(A.id)
    enqueue(store, A, "old")
    clock.now = T0 + GIVE_UP_AFTER
    with capture_logs() as logs:
        outbox.deliver()
    assert [e["event"] for e in logs] == ["notify_gave_up"]
    assert rows(store)[0]["state"] == "failed"


def test_messages_for_a_removed_target_are_given_up_not_lost_silently(store: Store) -> None:
    enqueue(store, B, "for b")
    outbox = Outbox(store, Transport(), [A], Clock(T0), get_logger())
    with capture_logs() as logs:
        outbox.deliver()
    assert logs[0]["event"] == "notify_gave_up"
    assert logs[0]["error"] == "target is no longer in the config"


def test_a_courier_that_fails_is_logged_and_the_message_kept(store: Store) -> None:
    from watchdog.courier import CourierOutbox

    enqueue(store, A, "kept")
    courier = CourierOutbox(store, [A], Clock(T0), get_logger(), python="/bin/false")
    with capture_logs() as logs:
        assert courier.deliver() == 1
    assert [e["event"] for e in logs] == ["courier_failed"]
    assert [m["state"] for m in rows(store)] == ["pending"]


class SlowTransport(Transport):
    """Like Transport, but sends to `slow` block until released; records send order."""

    def __init__(self, slow: str) -> None:
        super().__init__()
        self.slow = slow
        self.release = threading.Event()
        self.bodies: dict[str, list[str]] = {}
        self.fast_done = threading.Event()

    def send(self, target: Target, title: str, body: str, severity: str, resolved: bool) -> None:
        if target.id == self.slow:
            assert self.release.wait(10), "the slow target was never released"
        self.bodies.setdefault(target.id, []).append(body)
        super().send(target, title, body, severity, resolved)
        if target.id != self.slow and len(self.delivered[target.id]) == 3:
            self.fast_done.set()


def test_a_slow_target_does_not_hold_back_the_others(store: Store) -> None:
    """The fast target gets all its messages while the slow one is still on its first;
    each target keeps its own order."""
    transport = SlowTransport(slow=A.id)
    outbox = Outbox(store, transport, [A, B], Clock(T0), get_logger())
    enqueue(store, A, "a1", "a2", "a3")
    enqueue(store, B, "b1", "b2", "b3")
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(outbox.deliver()))
    runner.start()
    try:
        assert transport.fast_done.wait(5), "the fast target waited for the slow one"
        assert transport.delivered.get(A.id) is None  # the slow one is still sending a1
    finally:
        transport.release.set()
        runner.join(10)
    assert result == [6]
    assert transport.delivered == {A.id: ["a1", "a2", "a3"], B.id: ["b1", "b2", "b3"]}


def test_messages_written_while_another_target_is_busy_go_out_without_waiting(
    store: Store,
) -> None:
    transport = SlowTransport(slow=A.id)
    outbox = Outbox(store, transport, [A, B], Clock(T0), get_logger())
    enqueue(store, A, "a1")
    enqueue(store, B, "b1")
    runner = threading.Thread(target=outbox.deliver)
    runner.start()
    try:
        enqueue(store, B, "b2", "b3")  # written by the next tick, while a1 is stuck
        assert transport.fast_done.wait(5), "b2 and b3 waited for the slow target"
    finally:
        transport.release.set()
        runner.join(10)
    assert transport.delivered[B.id] == ["b1", "b2", "b3"]


def test_a_late_message_says_how_late_it_went_out(store: Store) -> None:
    from watchdog.core import messages

    transport, clock = SlowTransport(slow=""), Clock(T0)
    outbox = Outbox(store, transport, [B], clock, get_logger())
    body = f"**x**\n\n{messages.WHEN}2026-11-27 09:00 UTC\n- Spent today: $1.00"
    with store.unit() as unit:
        unit.enqueue([OutboxRow(T0, B.id, "critical", "firing", "r", "late", body)])
        unit.enqueue([OutboxRow(T0 + timedelta(minutes=18), B.id, "critical", "r", "r", "t", body)])
    clock.advance(minutes=19)
    outbox.deliver()
    first, second = transport.bodies[B.id]
    assert "- When: 2026-11-27 09:00 UTC; delivered 19 min late" in first
    assert second == body  # a minute late is on time


def test_a_target_waiting_out_its_backoff_has_nothing_due(store: Store) -> None:
    """Only the head of a target's queue can go out: messages behind a failed one are not
    due, so the daemon does not start a courier every few seconds during an outage."""
    transport, clock = Transport(), Clock(T0)
    outbox = Outbox(store, transport, [A], clock, get_logger())
    transport.down.add(A.id)
    enqueue(store, A, "a1", "a2", "a3")
    assert store.due_count(T0) == 3
    outbox.deliver()
    assert store.due_count(T0) == 0 and store.pending_targets(due_at=T0) == []
    assert store.due_count(T0 + timedelta(seconds=30)) == 3


def test_a_delivery_error_is_recorded_without_the_targets_secrets(store: Store) -> None:
    from watchdog.notify import make_target

    url = "jsons://hooks.example.com/services/T0SECRET1/B0SECRET2/XXTOKENXX99?+X-Token=tok-abc123"
    target = make_target(url, ["critical"])

    class Leaky(Transport):
        def send(self, t: Target, title: str, body: str, severity: str, resolved: bool) -> None:
            raise DeliveryError(f"POST to {t.url} failed (token tok-abc123)")

    enqueue(store, target, "x")
    with capture_logs() as logs:
        Outbox(store, Leaky(), [target], Clock(T0), get_logger()).deliver()
    error = store.target_health()[target.id].last_error or ""
    assert "hooks.example.com" in error
    for secret in ("T0SECRET1", "B0SECRET2", "XXTOKENXX99", "tok-abc123"):
        assert secret not in error and secret not in str(logs)
