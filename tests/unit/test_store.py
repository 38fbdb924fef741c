"""The SQLite store: round trip, windows, migrations, thinning, the single-daemon lock."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watchdog.core.model import Sample
from watchdog.store import MIGRATIONS, RAW_RETENTION, Store, StoreError, StoreLocked

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def sample(minutes: float, usage: float = 0.0, **kwargs: Any) -> Sample:
    return Sample(ts=T0 + timedelta(minutes=minutes), usage=usage, **kwargs)


def test_samples_round_trip_through_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "state.db"
    kept = sample(0, 12.5, usage_daily=1.25, balance=-3.0, total_credits=50.0, key_limit=100.0)
    with Store(path) as store, store.unit() as unit:
        unit.add_samples([kept])
    with Store(path) as store:
        assert store.last_sample() == kept
        assert store.history(T0 - timedelta(days=1)) == [kept]


def test_history_includes_the_sample_before_the_window(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        with store.unit() as unit:
            unit.add_samples([sample(m, m) for m in range(0, 100, 10)])
        got = store.history(T0 + timedelta(minutes=35))
    assert [s.usage for s in got] == [30, 40, 50, 60, 70, 80, 90]


def test_file_is_in_wal_mode(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db"):
        mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_fresh_file_gets_every_migration(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        assert store.schema_version == len(MIGRATIONS)
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_migrations_upgrade_an_older_file_and_keep_its_data(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    db.execute("INSERT INTO samples (ts, usage) VALUES (?, ?)", (int(T0.timestamp() * 1000), 4.5))
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        last = store.last_sample()
        assert last is not None
        assert last.usage == 4.5


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path):
        pass
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="upgrade budget-watchdog"):
        Store(path)


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
        with Store(path) as reader:  # commands that only read or add a row still work
            assert reader.last_sample() is None
            with reader.unit() as unit:
                unit.add_samples([sample(0, 1.0)])
    with Store(path, lock=True):  # released on close
        pass


def test_thinning_keeps_one_sample_per_hour_beyond_retention(tmp_path: Path) -> None:
    now = T0 + RAW_RETENTION + timedelta(hours=3)
    minutes = range(6 * 60)  # six hours of one-minute samples from T0
    with Store(tmp_path / "s.db") as store:
        with store.unit() as unit:
            unit.add_samples([sample(m, m / 10) for m in minutes])
            removed = unit.thin(now)
        kept = store.history(T0)
    old = [s for s in kept if s.ts < now - RAW_RETENTION]
    recent = [s for s in kept if s.ts >= now - RAW_RETENTION]
    assert len(old) == 3  # one per hour for the three hours beyond retention
    assert all(s.ts.minute == 0 for s in old)
    assert len(recent) == 180  # everything within retention is untouched
    assert removed == 360 - 183


def test_small_state_survives_reopening(tmp_path: Path) -> None:
    """Permit, override, poll error and watched key: written in one unit, read back typed."""
    from watchdog.core.model import Override, Trip
    from watchdog.core.permit import PermitState
    from watchdog.store import WatchedKey

    state = PermitState(armed=False, reason="daily_limit critical", latched_since=T0)
    override = Override(trip=Trip("backfill", "alice", T0), armed_at=None)
    with Store(tmp_path / "s.db") as store, store.unit() as unit:
        unit.save_permit(state, WatchedKey("batch", "abc123"))
        unit.set_override(override)
        unit.save_poll_error("HTTP 502", "transient", T0)
    with Store(tmp_path / "s.db") as store:
        assert store.permit_state() == state
        assert store.watched_key() == WatchedKey("batch", "abc123")
        assert store.override() == override
        assert store.poll_error() == ("HTTP 502", "transient", T0)


def test_a_fresh_file_has_neutral_state(tmp_path: Path) -> None:
    from watchdog.core.model import Override
    from watchdog.core.permit import PermitState

    with Store(tmp_path / "s.db") as store:
        assert store.permit_state() == PermitState()
        assert store.override() == Override()
        assert store.poll_error() == (None, None, None)


def test_a_failed_unit_leaves_nothing_behind(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(RuntimeError), store.unit() as unit:
            unit.add_samples([sample(0, 1.0)])
            raise RuntimeError("crash mid-tick")
        assert store.last_sample() is None


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


def test_byok_spend_round_trips(tmp_path: Path) -> None:
    kept = sample(0, 12.5, byok_usage=3.0, byok_usage_daily=1.0, byok_counted=True)
    with Store(tmp_path / "s.db") as store, store.unit() as unit:
        unit.add_samples([kept])
    with Store(tmp_path / "s.db") as store:
        assert store.last_sample() == kept
