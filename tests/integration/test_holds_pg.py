"""Reservations shared through one real PostgreSQL: two instances (two connections)
reserving at once never grant more than the headroom; holds made on one are seen, counted
and released on the other; a database out of reach grants nothing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from tests.pg import PostgresServer, wait_until
from watchdog.holds import SharedReservations
from watchdog.log import get_logger
from watchdog.server import Admit, HoldsFull
from watchdog.store import Store

HEADROOM = 10.0


def wall() -> datetime:
    return datetime.now(UTC)


def admit_within(headroom: float, cost: float) -> Admit:
    def admit(reserved: float, held_for_key: float) -> list[str]:
        return [] if reserved + cost <= headroom + 1e-9 else ["no headroom"]

    return admit


def test_two_instances_reserving_at_once_never_over_commit(pg_url: str) -> None:
    told: list[float] = []
    stores = [Store.open(pg_url), Store.open(pg_url)]
    instances = [
        SharedReservations(s, f"host{n}", wall, get_logger(), on_change=told.append)
        for n, s in enumerate(stores)
    ]
    granted: list[float] = []
    refused: list[list[str]] = []
    lock = threading.Lock()
    start = threading.Barrier(100)

    def ask(holds: SharedReservations) -> None:
        start.wait()
        now = wall()
        hold, reasons, _ = holds.reserve(
            0.75, now + timedelta(minutes=5), "job", "", admit_within(HEADROOM, 0.75), now
        )
        with lock:
            if hold is not None:
                granted.append(hold.amount)
            else:
                refused.append(reasons)

    threads = [threading.Thread(target=ask, args=(instances[n % 2],)) for n in range(100)]  # 2 × 50
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert len(granted) == 13  # 13 × 0.75 = 9.75 ≤ 10 < 14 × 0.75
        assert sum(granted) <= HEADROOM
        assert len(refused) == 87 and all(r == ["no headroom"] for r in refused)
        # Each instance sees every hold, whichever host made it (reads answer from the
        # holds as last read: at most REFRESH_S old).
        for holds in instances:
            holds.refresh()
        now = wall()
        assert instances[0].count(now) == instances[1].count(now) == 13
        assert instances[0].total(now) == pytest.approx(9.75)
        assert len(told) == 13
    finally:
        for holds in instances:
            holds.close()


def test_a_hold_made_on_one_host_is_released_on_the_other(pg_url: str) -> None:
    a = SharedReservations(Store.open(pg_url), "a", wall, get_logger())
    b = SharedReservations(Store.open(pg_url), "b", wall, get_logger(), capacity=2)
    try:
        now = wall()
        hold, _, total = a.reserve(
            4.0, now + timedelta(minutes=1), "nightly", "hash1", lambda r, k: [], now
        )
        assert hold is not None and total == 4.0
        # b answers from what it read last, and reads again every second.
        wait_until(lambda: b.by_key(wall()) == {"hash1": 4.0}, 3)
        assert b.total_for("hash1", now) == 4.0
        seen: list[float] = []

        def key_admit(reserved: float, held_for_key: float) -> list[str]:
            seen.append(held_for_key)
            return []

        b.reserve(1.0, wall() + timedelta(seconds=3), "short", "hash1", key_admit, wall())
        assert seen == [4.0]  # the key's holds, from the other host, in the same check
        with pytest.raises(HoldsFull):
            b.reserve(1.0, now + timedelta(minutes=1), "", "", lambda r, k: [], now)
        assert b.release(hold.id) and not a.release(hold.id)
        # Expired holds count for nothing, wherever they were made.
        later = wall() + timedelta(seconds=4)
        assert a.total(later) == 0.0 and a.active(later) == []
    finally:
        a.close()
        b.close()


def test_no_hold_is_granted_while_the_database_is_out_of_reach(
    pg_server: PostgresServer, pg_url: str
) -> None:
    store = Store.open(pg_url)
    holds = SharedReservations(store, "a", wall, get_logger())
    now = wall()
    holds.reserve(2.0, now + timedelta(minutes=5), "", "", lambda r, k: [], now)
    pg_server.stop()
    try:
        with pytest.raises(OSError, match="out of reach"):
            holds.reserve(1.0, now + timedelta(minutes=5), "", "", lambda r, k: [], now)
        # Displays keep the last sums read (the tick's own failure already says no-go).
        assert holds.total(now) == 2.0
    finally:
        pg_server.start()
        holds.close()


def test_a_host_whose_clock_runs_ahead_does_not_end_others_holds(pg_url: str) -> None:
    def ahead() -> datetime:
        return wall() + timedelta(minutes=5)

    a = SharedReservations(Store.open(pg_url), "a", wall, get_logger())
    b = SharedReservations(Store.open(pg_url), "b", ahead, get_logger())
    try:
        now = wall()
        a.reserve(8.0, now + timedelta(minutes=4), "", "", admit_within(HEADROOM, 8.0), now)
        later = ahead()
        hold, reasons, total = b.reserve(
            8.0, later + timedelta(minutes=4), "", "", admit_within(HEADROOM, 8.0), later
        )
        # What is live is judged on the database's clock: a's hold is neither removed
        # nor left out of the sum, so b cannot take the same headroom.
        assert hold is None and reasons == ["no headroom"] and total == 8.0
        a.refresh()
        assert [h.amount for h in a.active(wall())] == [8.0]
    finally:
        a.close()
        b.close()
