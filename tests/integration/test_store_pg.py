"""The store on a real PostgreSQL shared by several instances: concurrent units, outbox
claims, concurrent migrations, and a server that is out of reach, stopped, or facing a
hung client. (The single-instance behaviour runs on both engines in unit/test_store.py.)"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.pg import PASSWORD, PostgresServer
from watchdog.core.model import OutboxRow, Sample
from watchdog.store import (
    MIGRATIONS,
    DatabaseFailed,
    Store,
    StoreError,
    StoreUnavailable,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0 … count-1) on as many threads, started together; their results (an
    exception is re-raised here)."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


def test_concurrent_units_of_two_instances_lose_no_write(pg_url: str) -> None:
    """Two instances (two sessions), each unit reading a counter and writing it back plus
    one, and adding a sample: units are serialised, so no increment and no sample is lost
    (under plain READ COMMITTED, without the units' lock, increments would be)."""
    per_thread = 60
    stores = [Store.open(pg_url) for _ in range(2)]
    try:
        with stores[0].unit() as unit:
            unit.db.run("INSERT INTO meta (key, value) VALUES ('n', '0')")

        def work(i: int) -> None:
            for j in range(per_thread):
                with stores[i].unit() as unit:
                    row = unit.db.one("SELECT value FROM meta WHERE key = 'n'")
                    assert row is not None
                    unit.db.run(
                        "UPDATE meta SET value = ? WHERE key = 'n'", (str(int(row["value"]) + 1),)
                    )
                    ts = T0 + timedelta(seconds=i * per_thread + j)
                    unit.add_samples([Sample(ts=ts, usage=float(j))])
                    unit.save_alerts({})  # DELETE then INSERT: safe only serialised

        started = time.monotonic()
        in_threads(2, work)
        elapsed = time.monotonic() - started
        row = stores[0]._one("SELECT value FROM meta WHERE key = 'n'")
        assert row is not None and int(row["value"]) == 2 * per_thread
        assert len(stores[1].history(T0)) == 2 * per_thread
        print(f"{2 * per_thread} contended units in {elapsed:.2f} s")
    finally:
        for store in stores:
            store.close()


def test_of_two_claimers_exactly_one_gets_each_message(pg_url: str) -> None:
    """Two instances drain the same outbox at once, each through its own session: every
    message is claimed, sent and marked once, and in order within its target."""
    targets = ["slack", "mail", "hook"]
    rows = [
        OutboxRow(T0, targets[i % 3], "critical", "firing", f"r{i}", f"t{i}", "b")
        for i in range(150)
    ]
    stores = [Store.open(pg_url) for _ in range(2)]
    try:
        with stores[0].unit() as unit:
            unit.enqueue(rows)
        now, hold = T0 + timedelta(minutes=1), timedelta(minutes=5)

        def drain(i: int) -> list[tuple[str, int]]:
            store, got = stores[i], []
            while store.pending_targets(due_at=now):
                for target in targets:
                    message = store.claim_next(target, f"instance-{i}", now, hold)
                    if message is None:
                        continue
                    got.append((target, message.id))
                    with store.unit() as unit:
                        unit.mark_sent(message.id, target, now)
            return got

        claimed = in_threads(2, drain)
        every = claimed[0] + claimed[1]
        assert Counter(every).most_common(1)[0][1] == 1  # nobody got a message twice
        assert len(every) == len(rows)  # and none was left
        assert claimed[0] and claimed[1]  # both took part
        for got in claimed:  # each instance's share of a target came in order
            for target in targets:
                ids = [m for t, m in got if t == target]
                assert ids == sorted(ids)
        health = stores[0].target_health()
        assert {t: health[t].sent for t in targets} == dict.fromkeys(targets, 50)
    finally:
        for store in stores:
            store.close()


def test_racing_claims_on_the_same_message_give_it_to_one(pg_url: str) -> None:
    """The conditional UPDATE alone decides: four sessions claim every message by id at
    the same moment; each message goes to exactly one of them."""
    stores = [Store.open(pg_url) for _ in range(4)]
    try:
        with stores[0].unit() as unit:
            unit.enqueue([OutboxRow(T0, "slack", "warning", "firing", "r", "t", "b")] * 60)
        ids = [r["id"] for r in stores[0]._all("SELECT id FROM outbox ORDER BY id")]
        hold = timedelta(minutes=5)

        def race(i: int) -> list[int]:
            return [m for m in ids if stores[i].claim(m, f"i{i}", T0, hold) is not None]

        won = in_threads(4, race)
        assert sorted(m for got in won for m in got) == ids
        owners = {r["id"]: r["claimed_by"] for r in stores[0]._all("SELECT * FROM outbox")}
        for i, got in enumerate(won):
            assert all(owners[m] == f"i{i}" for m in got)
    finally:
        for store in stores:
            store.close()


def test_instances_starting_together_migrate_once(pg_url: str) -> None:
    stores = in_threads(3, lambda i: Store.open(pg_url))
    try:
        assert [s.schema_version for s in stores] == [len(MIGRATIONS)] * 3
    finally:
        for store in stores:
            store.close()


def test_a_wrong_password_is_a_clear_error_without_the_password(
    pg_server: PostgresServer,
) -> None:
    pg_server.start()
    url = pg_server.url(password="not-the-" + PASSWORD)
    with pytest.raises(StoreUnavailable) as caught:
        Store.open(url)
    message = str(caught.value)
    assert "password authentication failed" in message
    assert "cannot reach PostgreSQL at postgresql://watchdog:***@127.0.0.1:" in message
    assert PASSWORD not in message and "not-the-" not in message


def test_a_server_that_is_not_there_is_a_quick_clear_error(pg_server: PostgresServer) -> None:
    pg_server.start()
    url = pg_server.url().replace(f":{pg_server.port}/", ":1/")  # nothing listens on port 1
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot reach PostgreSQL") as caught:
        Store.open(url)
    assert time.monotonic() - started < 5
    assert PASSWORD not in str(caught.value)


def test_a_stopped_server_is_unavailable_and_a_restarted_one_is_used_again(
    pg_server: PostgresServer, pg_url: str
) -> None:
    with Store.open(pg_url) as store:
        with store.unit() as unit:
            unit.add_samples([Sample(ts=T0, usage=1.0)])
        pg_server.stop()
        with pytest.raises(StoreUnavailable) as caught:
            store.last_sample()
        assert isinstance(caught.value, StoreError) and PASSWORD not in str(caught.value)
        with pytest.raises(StoreUnavailable), store.unit() as unit:
            unit.add_samples([Sample(ts=T0 + timedelta(minutes=1), usage=2.0)])
        pg_server.start()
        assert store.last_sample() == Sample(ts=T0, usage=1.0)  # a new session, by itself
        with store.unit() as unit:
            unit.add_samples([Sample(ts=T0 + timedelta(minutes=1), usage=2.0)])
        assert len(store.history(T0)) == 2


def test_a_server_restart_between_calls_costs_no_error_for_a_read(
    pg_server: PostgresServer, pg_url: str
) -> None:
    with Store.open(pg_url) as store:
        assert store.last_sample() is None
        pg_server.stop()
        pg_server.start()
        assert store.last_sample() is None  # the dead session is replaced, once


def test_a_client_hung_inside_a_unit_is_ended_by_the_server(pg_url: str) -> None:
    """A process that stops inside a unit holds the units' lock: the server ends its
    session after idle_in_transaction_session_timeout (here shortened through the URL),
    the others go on, and the hung one's unit is refused when it wakes."""
    url = pg_url + "%20-cidle_in_transaction_session_timeout%3D300"
    hung, other = Store.open(url), Store.open(pg_url)
    inside, wake = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    def hang() -> None:
        try:
            with hung.unit() as unit:
                unit.add_samples([Sample(ts=T0, usage=1.0)])
                inside.set()
                wake.wait(10)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        with other.unit() as unit:  # waits for the hung session to be ended
            unit.add_samples([Sample(ts=T0 + timedelta(minutes=1), usage=2.0)])
        waited = time.monotonic() - started
        assert waited < 5
    finally:
        wake.set()
        thread.join(10)
    assert outcome and isinstance(outcome[0], DatabaseFailed)
    assert [s.usage for s in other.history(T0)] == [2.0]
    hung.close()
    other.close()


def test_the_window_between_a_send_and_its_mark(pg_url: str) -> None:
    """At-least-once: a message goes out twice only if its sender dies between the
    transport's success and the commit of mark_sent. This measures that commit."""
    with Store.open(pg_url) as store:
        with store.unit() as unit:
            unit.enqueue([OutboxRow(T0, "slack", "warning", "firing", "r", "t", "b")] * 50)
        times = []
        while (message := store.claim_next("slack", "me", T0, timedelta(minutes=5))) is not None:
            started = time.perf_counter()
            with store.unit() as unit:
                unit.mark_sent(message.id, "slack", T0)
            times.append(time.perf_counter() - started)
    times.sort()
    median, worst = times[len(times) // 2], times[-1]
    print(f"mark_sent commit: median {median * 1000:.2f} ms, worst {worst * 1000:.2f} ms")
    assert len(times) == 50 and median < 0.1
