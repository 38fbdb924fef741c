"""The store on both engines: round trip, windows, migrations, thinning, the outbox and the
small state, each on SQLite and on a real (throwaway) PostgreSQL; and SQLite's own: WAL,
the single-daemon lock, a file that is not a database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watchdog.core.model import (
    AlertState,
    CapChange,
    KeySample,
    KnownKey,
    OutboxRow,
    PermitChange,
    Sample,
    Silence,
)
from watchdog.db import postgres_ddl
from watchdog.store import (
    MIGRATIONS,
    RAW_RETENTION,
    DatabaseFailed,
    Store,
    StoreError,
    StoreLocked,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def sample(minutes: float, usage: float = 0.0, **kwargs: Any) -> Sample:
    return Sample(ts=T0 + timedelta(minutes=minutes), usage=usage, **kwargs)


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: a SQLite file, or a fresh PostgreSQL database (by URL)."""
    if request.param == "sqlite":
        return str(tmp_path / "s.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(target: str) -> Iterator[Store]:
    with Store.open(target) as opened:
        yield opened


def raw(target: str, statements: Sequence[str], args: Sequence[Any] = ()) -> None:
    """Run statements on the database behind `target` without the store (as an older
    budget-watchdog, or another tool, would)."""
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.replace("?", "%s").encode(), args)
        return
    db = sqlite3.connect(target)
    for statement in statements:
        db.execute(statement, args)
    db.commit()
    db.close()


def schema(target: str, version: int) -> list[str]:
    """The statements of the first `version` migrations, and the version's record."""
    pg = target.startswith("postgresql://")
    out: list[str] = []
    for script in MIGRATIONS[:version]:
        out += postgres_ddl(script) if pg else [s for s in script.split(";") if s.strip()]
    if pg:
        out += [
            "CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)",
            f"INSERT INTO schema_version VALUES (1, {version})",  # noqa: S608 - a number
        ]
    else:
        out.append(f"PRAGMA user_version = {version}")
    return out


# -- both engines -------------------------------------------------------------------------


def test_samples_round_trip(target: str) -> None:
    kept = sample(0, 12.5, usage_daily=1.25, balance=-3.0, total_credits=50.0, key_limit=100.0)
    with Store.open(target) as store, store.unit() as unit:
        unit.add_samples([kept])
    with Store.open(target) as store:
        assert store.last_sample() == kept
        assert store.history(T0 - timedelta(days=1)) == [kept]


def test_a_sample_at_the_same_time_replaces_the_first(store: Store) -> None:
    with store.unit() as unit:
        unit.add_samples([sample(0, 1.0), sample(0, 2.0, balance=5.0)])
    assert store.history(T0 - timedelta(days=1)) == [sample(0, 2.0, balance=5.0)]


def test_history_includes_the_sample_before_the_window(store: Store) -> None:
    with store.unit() as unit:
        unit.add_samples([sample(m, m) for m in range(0, 100, 10)])
    got = store.history(T0 + timedelta(minutes=35))
    assert [s.usage for s in got] == [30, 40, 50, 60, 70, 80, 90]
    assert [s.usage for s in store.history(T0, T0 + timedelta(minutes=20))] == [0, 10, 20]


def test_a_fresh_database_gets_every_migration(store: Store) -> None:
    assert store.schema_version == len(MIGRATIONS)


def test_migrations_upgrade_an_older_database_and_keep_its_data(target: str) -> None:
    ms = int(T0.timestamp() * 1000)
    raw(target, schema(target, 1))
    raw(target, ["INSERT INTO samples (ts, usage) VALUES (?, ?)"], (ms, 4.5))
    with Store.open(target) as store:
        assert store.schema_version == len(MIGRATIONS)
        last = store.last_sample()
        assert last is not None
        assert last.usage == 4.5


def test_key_samples_kept_before_they_were_ordered_by_time_survive_it(target: str) -> None:
    """Migration 11 moves the key samples to a table in time order: every row stays,
    and a sample at a (key, time) already kept still replaces it."""
    ms = int(T0.timestamp() * 1000)
    raw(target, schema(target, 10))
    for key_hash, at, usage in (("b" * 64, 0, 1.0), ("a" * 64, 0, 2.0), ("a" * 64, 60_000, 3.0)):
        raw(
            target,
            ["INSERT INTO key_samples (hash, ts, usage, limit_reset) VALUES (?, ?, ?, ?)"],
            (key_hash, ms + at, usage, "daily"),
        )
    with Store.open(target) as store:
        assert store.schema_version == len(MIGRATIONS)
        kept = store.key_history(T0 - timedelta(days=1))
        assert {h: [(s.ts, s.usage, s.limit_reset) for s in v] for h, v in kept.items()} == {
            "a" * 64: [(T0, 2.0, "daily"), (T0 + timedelta(minutes=1), 3.0, "daily")],
            "b" * 64: [(T0, 1.0, "daily")],
        }
        with store.unit() as unit:
            unit.add_key_samples([replace(kept["b" * 64][0], usage=1.5)])
        assert [s.usage for s in store.key_history(T0)["b" * 64]] == [1.5]


def test_a_newer_schema_is_refused(target: str) -> None:
    Store.open(target).close()
    if target.startswith("postgresql://"):
        raw(target, [f"UPDATE schema_version SET version = {len(MIGRATIONS) + 5}"])  # noqa: S608
    else:
        raw(target, [f"PRAGMA user_version = {len(MIGRATIONS) + 5}"])
    with pytest.raises(StoreError, match="upgrade budget-watchdog"):
        Store.open(target)


def test_thinning_keeps_one_sample_per_hour_beyond_retention(store: Store) -> None:
    now = T0 + RAW_RETENTION + timedelta(hours=3)
    minutes = range(6 * 60)  # six hours of one-minute samples from T0
    keys = [KeySample(hash="h1", ts=T0 + timedelta(minutes=m), usage=m) for m in minutes]
    with store.unit() as unit:
        unit.add_samples([sample(m, m / 10) for m in minutes])
        unit.add_key_samples(keys)
        removed = unit.thin(now)
    kept = store.history(T0)
    old = [s for s in kept if s.ts < now - RAW_RETENTION]
    recent = [s for s in kept if s.ts >= now - RAW_RETENTION]
    assert len(old) == 3  # one per hour for the three hours beyond retention
    assert all(s.ts.minute == 0 for s in old)
    assert len(recent) == 180  # everything within retention is untouched
    assert removed == 2 * (360 - 183)
    key_kept = store.key_history(T0)["h1"]
    assert [k.ts.minute for k in key_kept if k.ts < now - RAW_RETENTION] == [0, 0, 0]
    assert len(key_kept) == 183


def test_small_state_survives_reopening(target: str) -> None:
    """Permit, override, poll error and watched key: written in one unit, read back typed."""
    from watchdog.core.model import Override, Trip
    from watchdog.core.permit import PermitState
    from watchdog.store import WatchedKey

    state = PermitState(armed=False, reason="daily_limit critical", latched_since=T0)
    override = Override(trip=Trip("backfill", "alice", T0), armed_at=None)
    with Store.open(target) as store, store.unit() as unit:
        unit.save_permit(state, WatchedKey("batch", "abc123"))
        unit.set_override(override)
        unit.save_poll_error("HTTP 502", "transient", T0)
        unit.save_digest_state(T0, T0 - timedelta(days=7))
    with Store.open(target) as store:
        assert store.permit_state() == state
        assert store.watched_key() == WatchedKey("batch", "abc123")
        assert store.override() == override
        assert store.poll_error() == ("HTTP 502", "transient", T0)
        assert store.digest_state() == (T0, T0 - timedelta(days=7))


def test_a_fresh_database_has_neutral_state(store: Store) -> None:
    from watchdog.core.model import Override
    from watchdog.core.permit import PermitState

    assert store.permit_state() == PermitState()
    assert store.override() == Override()
    assert store.poll_error() == (None, None, None)
    assert store.load_alerts() == {}
    assert store.lease() is None


def test_a_failed_unit_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(RuntimeError), store.unit() as unit:
        unit.add_samples([sample(0, 1.0)])
        raise RuntimeError("crash mid-tick")
    assert store.last_sample() is None
    with store.unit() as unit:  # and the next unit works
        unit.add_samples([sample(1, 2.0)])
    assert store.last_sample() == sample(1, 2.0)


def test_a_refused_statement_is_a_store_error_and_an_sqlite3_error(store: Store) -> None:
    """Callers catch StoreError, or sqlite3.Error as they did when SQLite was the only
    engine: either catches a failure of either engine, and the unit rolls back."""
    with pytest.raises(DatabaseFailed) as caught, store.unit() as unit:
        unit.add_samples([sample(0, 1.0)])
        unit.db.run("INSERT INTO samples (ts) VALUES (?)", (1,))  # usage is NOT NULL
    assert isinstance(caught.value, StoreError) and isinstance(caught.value, sqlite3.Error)
    assert store.last_sample() is None


def test_byok_spend_round_trips(target: str) -> None:
    kept = sample(0, 12.5, byok_usage=3.0, byok_usage_daily=1.0, byok_counted=True)
    with Store.open(target) as store, store.unit() as unit:
        unit.add_samples([kept])
    with Store.open(target) as store:
        assert store.last_sample() == kept


def test_alerts_and_silences_round_trip(store: Store) -> None:
    alert = AlertState(
        rule="daily_limit",
        key="*",
        severity="critical",
        since=T0,
        last_sent=T0 + timedelta(minutes=1),
        message="$18.40 spent today",
        value=18.4,
        threshold=20.0,
        suppressed=True,
        resolved_at=None,
    )
    with store.unit() as unit:
        unit.save_alerts({alert.ident: alert})
        unit.set_silence(Silence("spike", T0 + timedelta(hours=2), "deploy"), T0)
        unit.set_silence(Silence("stale", T0 + timedelta(minutes=5), ""), T0)
    with store.unit() as unit:  # replaced, not added to
        unit.save_alerts({alert.ident: alert})
        unit.set_silence(Silence("spike", T0 + timedelta(hours=3), "longer"), T0)
    assert store.load_alerts() == {alert.ident: alert}
    later = T0 + timedelta(minutes=10)
    assert store.silences(later) == {
        "spike": Silence("spike", T0 + timedelta(hours=3), "longer", T0)
    }
    with store.unit() as unit:
        assert unit.remove_silence("spike")
        assert not unit.remove_silence("spike")
    assert store.silences(later) == {}


def test_keys_key_samples_and_cap_changes_round_trip(store: Store) -> None:
    key = KnownKey(hash="h1", name="batch", label="sk-or-v1-abc", first_seen=T0, last_seen=T0)
    renamed = KnownKey(
        hash="h1",
        name="batch-2",
        label="sk-or-v1-abc",
        workspace_id="w",
        first_seen=T0,
        last_seen=T0 + timedelta(hours=1),
        deleted_at=T0 + timedelta(hours=2),
    )
    ks = KeySample(
        hash="h1",
        ts=T0,
        usage=3.5,
        usage_daily=1.0,
        key_limit=10.0,
        limit_reset="daily",
        disabled=True,
    )
    change = CapChange(T0, "h1", "batch", None, None, 5.0, "daily", "caps", "1.3 × expected")
    with store.unit() as unit:
        unit.save_keys([key])
        unit.save_keys([renamed])
        unit.add_key_samples([ks, ks])
        unit.audit_cap(change)
    assert store.known_keys() == {"h1": renamed}
    assert store.key_history(T0 - timedelta(hours=1)) == {"h1": [ks]}
    assert store.cap_log() == [change]


def test_permit_audit_and_disabled_keys_round_trip(store: Store) -> None:
    changes = [
        PermitChange(T0, "armed", "watchdog", "first poll"),
        PermitChange(T0 + timedelta(minutes=1), "revoked", "alice", "manual trip"),
    ]
    with store.unit() as unit:
        for change in changes:
            unit.audit(change)
        unit.record_disabled("h1", "batch", T0, "daily limit")
        unit.record_disabled("h1", "batch-renamed", T0, "daily limit")
        unit.record_disabled("h2", "other", T0, "daily limit")
        unit.forget_disabled("h2")
    assert store.audit_log() == changes[::-1]
    assert store.audit_log(limit=1) == changes[-1:]
    assert store.disabled_keys() == {"h1": "batch-renamed"}


def test_prices_round_trip(store: Store) -> None:
    from watchdog.core.audit import Endpoint, ModelPrices, Price

    listed = ModelPrices(
        "a/model",
        T0,
        Price(1e-6, 2e-6, None),
        (Endpoint("prov", Price(1.5e-6, 2.5e-6, 1e-7), "prov/fp8"),),
    )
    with store.unit() as unit:
        unit.save_prices([listed, ModelPrices("x/unlisted", T0, None, ())])
        unit.save_prices([listed])  # replaced
    assert store.prices() == {"a/model": listed, "x/unlisted": ModelPrices("x/unlisted", T0)}


def row(minutes: float, target: str = "slack", kind: str = "firing") -> OutboxRow:
    return OutboxRow(T0 + timedelta(minutes=minutes), target, "critical", kind, "spike", "t", "b")


def test_the_outbox_on_one_instance(store: Store) -> None:
    """Enqueue, the oldest first, failure with backoff, sent, counts and health."""
    with store.unit() as unit:
        unit.enqueue([row(0), row(0, "mail"), row(1), row(2, kind="resolved")])
    first = store.next_pending("slack")
    assert first is not None and first.row == row(0) and first.attempts == 0
    assert store.due_count(T0) == 4  # every message behind a due head
    assert sorted(store.pending_targets()) == ["mail", "slack"]
    assert store.pending_targets(due_at=T0) == ["slack", "mail"]
    later = T0 + timedelta(minutes=5)
    with store.unit() as unit:
        unit.mark_failed(first.id, "slack", T0, "HTTP 500", later)
    assert store.pending_targets(due_at=T0 + timedelta(minutes=1)) == ["mail"]
    assert store.due_count(T0 + timedelta(minutes=1)) == 1
    with store.unit() as unit:
        assert unit.retry_pending_now(T0 + timedelta(minutes=2)) == 1
        unit.mark_sent(first.id, "slack", T0)
    after = store.next_pending("slack")
    assert after is not None and after.row == row(1)
    health = store.target_health()
    assert health["slack"].sent == 1 and health["slack"].failed == 1
    assert health["slack"].last_error == "HTTP 500" and health["slack"].pending == 2
    assert health["mail"].pending == 1 and health["mail"].sent == 0
    assert store.fired_between(T0, T0 + timedelta(hours=1)) == [("spike", "critical", 2)]


def test_a_claim_is_exclusive_until_it_runs_out(store: Store) -> None:
    with store.unit() as unit:
        unit.enqueue([row(0), row(1)])
    hold = timedelta(minutes=2)
    got = store.claim_next("slack", "a", T0, hold)
    assert got is not None and got.row == row(0) and got.state == "sending"
    assert got.claimed_by == "a" and got.claimed_until == T0 + hold
    # Nobody else has it, nor the message behind it (order), until the claim runs out.
    assert store.claim_next("slack", "b", T0 + timedelta(minutes=1), hold) is None
    assert store.claim(got.id, "b", T0 + timedelta(minutes=1), hold) is None
    # A message claimed elsewhere is not due here (no courier starts for it) until the
    # claim runs out; then the target's messages are due again.
    assert store.due_count(T0) == 0 and store.pending_targets(due_at=T0) == []
    assert store.due_count(T0 + hold) == 2 and store.pending_targets(due_at=T0 + hold) == ["slack"]
    retaken = store.claim_next("slack", "b", T0 + hold, hold)
    assert retaken is not None and retaken.id == got.id and retaken.claimed_by == "b"
    with store.unit() as unit:
        unit.mark_sent(retaken.id, "slack", T0 + hold)
    second = store.claim_next("slack", "a", T0 + hold, hold)
    assert second is not None and second.row == row(1)
    with store.unit() as unit:  # a failure releases the claim, for when it is due again
        unit.mark_failed(second.id, "slack", T0, "HTTP 500", T0 + timedelta(hours=1))
    assert store.claim_next("slack", "b", T0 + hold, hold) is None  # not due yet
    again = store.claim_next("slack", "b", T0 + timedelta(hours=1), hold)
    assert again is not None and again.attempts == 1 and again.claimed_by == "b"


def test_a_postgres_store_has_no_path_and_a_file_has_no_url(store: Store) -> None:
    if store.engine == "sqlite":
        assert store.path == Path(store.target) and store.shown == store.target
        return
    assert store.engine == "postgresql"
    assert "***" in store.shown and "pg-s3cret" not in store.shown
    with pytest.raises(StoreError, match="PostgreSQL"):
        _ = store.path


# -- SQLite's own -------------------------------------------------------------------------


def test_a_file_is_created_with_its_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "state.db"
    with Store(path) as store, store.unit() as unit:
        unit.add_samples([sample(0, 1.0)])
    with Store.open(str(path)) as store:
        assert store.engine == "sqlite" and store.last_sample() == sample(0, 1.0)


def test_file_is_in_wal_mode(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db"):
        mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_fresh_file_passes_the_integrity_check(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        assert store.schema_version == len(MIGRATIONS)
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_text("this is not a database, just text that is long enough" * 50)
    with pytest.raises(StoreError, match="cannot open state file"):
        Store(path)


def test_a_second_daemon_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path, lock=True):
        with pytest.raises(StoreLocked, match=r"another budget-watchdog \(pid \d+\)"):
            Store(path, lock=True)
        with pytest.raises(StoreLocked):
            Store.open(path, lock=True)
        with Store(path) as reader:  # commands that only read or add a row still work
            assert reader.last_sample() is None
            with reader.unit() as unit:
                unit.add_samples([sample(0, 1.0)])
    with Store(path, lock=True):  # released on close
        pass


def test_a_newer_schema_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    raw(str(path), [f"PRAGMA user_version = {len(MIGRATIONS) + 1}"])
    with pytest.raises(StoreError, match="upgrade"):
        Store(path, lock=True)
    raw(str(path), [f"PRAGMA user_version = {len(MIGRATIONS)}"])
    Store(path, lock=True).close()


def test_a_second_daemon_through_a_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    (tmp_path / "elsewhere").mkdir()
    alias = tmp_path / "elsewhere" / "alias.db"
    with Store(path, lock=True):
        alias.symlink_to(path)
        with pytest.raises(StoreLocked, match="another budget-watchdog"):
            Store(alias, lock=True)
        with pytest.raises(StoreLocked):
            Store(tmp_path / "elsewhere" / ".." / "s.db", lock=True)


def test_a_busy_file_is_a_store_error_that_callers_of_old_still_catch(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as store:
        blocker = sqlite3.connect(path, timeout=0)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the file
        store._db.execute("PRAGMA busy_timeout = 50")
        try:
            with pytest.raises(sqlite3.Error, match="locked") as caught, store.unit():
                pass
        finally:
            blocker.rollback()
            blocker.close()
    assert isinstance(caught.value, StoreError)


# -- URLs and their passwords ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://watchdog:s3cret@db.internal:5432/watchdog",
            "postgresql://watchdog:***@db.internal:5432/watchdog",
        ),
        (
            "postgres://w:p%40ss:w0rd@h1:5432,h2:5433/db?sslmode=require",
            "postgres://w:***@h1:5432,h2:5433/db?sslmode=require",
        ),
        (
            "postgresql://w@h/db?password=s3cret&sslmode=verify-full",
            "postgresql://w@h/db?password=***&sslmode=verify-full",
        ),
        ("postgresql://w@h/db", "postgresql://w@h/db"),
        # libpq takes a password with an unencoded ? or # (urlsplit would cut it there)
        ("postgresql://w:pa?ss#Leak@h:5432/db", "postgresql://w:***@h:5432/db"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    from watchdog.db import mask_url, url_secrets

    assert mask_url(url) == shown
    for secret in url_secrets(url):
        assert secret not in mask_url(url).replace("***", "")


def test_every_form_of_the_password_is_a_secret() -> None:
    from watchdog.db import url_secrets

    assert set(url_secrets("postgresql://w:p%40ss@h/db")) == {"p%40ss", "p@ss"}
    assert set(url_secrets("postgresql://w@h/db?password=a%20b")) == {"a b", "a%20b"}
    assert url_secrets("postgresql://w@h/db") == []


def test_open_tells_a_url_from_a_path(tmp_path: Path) -> None:
    from watchdog.db import is_postgres_url

    assert is_postgres_url("postgresql://w@h/db") and is_postgres_url("postgres://h/db")
    assert not is_postgres_url(str(tmp_path / "postgresql.db"))
    assert not is_postgres_url(tmp_path / "postgresql:")


def test_a_restart_releases_only_its_own_hosts_claims(store: Store) -> None:
    with store.unit() as unit:
        unit.enqueue([row(0), row(0, target="mail")])
    hold = timedelta(minutes=2)
    mine = store.claim_next("slack", "vm:8787/a1b2c3", T0, hold)
    theirs = store.claim_next("mail", "other:8787/d4e5f6", T0, hold)
    assert mine is not None and theirs is not None
    with store.unit() as unit:
        assert unit.release_claims("vm:8787/") == 1  # this host's run before the restart
    # Its message is to be had again at once; the other host's claim still holds.
    assert store.claim_next("slack", "vm:8787/0a0b0c", T0, hold) is not None
    assert store.claim_next("mail", "vm:8787/0a0b0c", T0, hold) is None
    with store.unit() as unit:
        assert unit.release_claims(None) == 2  # one host on SQLite: every claim
