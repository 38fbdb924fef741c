"""The outbox against a real SQLite file: order, retries with backoff, isolation, giving up."""

from __future__ import annotations

import sqlite3
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
