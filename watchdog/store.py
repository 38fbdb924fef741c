"""The embedded SQLite store: every poll's sample, and the state that must survive restarts.

WAL mode, one writer (the daemon holds `<path>.lock`; a second daemon refuses to start),
readers anywhere (the CLI's `status`, `report`, `trip`). Schema changes are numbered
migrations recorded in `PRAGMA user_version`. Old samples are thinned to one per hour so
a year of 60-second polls stays a few MB.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from watchdog.snapshot import Sample

# Raw samples are kept this long: the longest window measured (month to date, 31 days)
# plus the 7-day baseline before it would need 38; older ones keep one per hour.
RAW_RETENTION = timedelta(days=40)
THIN_BUCKET_MS = 3_600_000

MIGRATIONS: tuple[str, ...] = (
    # 1: samples and a key/value table for small state (last error, last poll).
    """
    CREATE TABLE samples (
        ts INTEGER PRIMARY KEY,          -- milliseconds since the epoch, UTC
        usage REAL NOT NULL,             -- lifetime spend counter, USD
        usage_daily REAL,
        usage_weekly REAL,
        usage_monthly REAL,
        balance REAL,
        total_credits REAL,
        key_limit REAL,
        key_limit_remaining REAL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
)


class StoreError(Exception):
    """The state file cannot be used; the message says why and what to do."""


class StoreLocked(StoreError):
    """Another daemon owns this state file."""


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class Store:
    """SQLite at `path`. With `lock=True` (the daemon) it takes the single-writer lock and
    raises StoreLocked when another daemon holds it."""

    def __init__(self, path: Path, *, lock: bool = False) -> None:
        self.path = path
        self._lock_file: IO[str] | None = None
        self._mutex = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {path.parent}: {exc.strerror}") from None
        if lock:
            self._take_lock()
        try:
            self._db = sqlite3.connect(
                str(path), timeout=10.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed outbox row or alert state survives a crash at any moment.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._release_lock()
            raise StoreError(f"cannot open state file {path}: {exc}") from None

    # -- lifecycle -------------------------------------------------------------------

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StoreLocked(
                f"another budget-watchdog (pid {holder}) is using {self.path}; stop it "
                "first, or give this one its own state.path"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def close(self) -> None:
        with self._mutex:
            self._db.close()
        self._release_lock()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of writes (BEGIN IMMEDIATE … COMMIT)."""
        with self._mutex:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema {version}, newer than this budget-watchdog "
                f"understands ({len(MIGRATIONS)}); upgrade budget-watchdog"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction() as db:
                for statement in _statements(script):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        with self._mutex:
            row = self._db.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def integrity_check(self) -> str:
        with self._mutex:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    # -- samples ---------------------------------------------------------------------

    def append(self, sample: Sample) -> None:
        """Keep one poll's sample. A sample at an existing timestamp replaces it."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO samples VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    _ms(sample.ts),
                    sample.usage,
                    sample.usage_daily,
                    sample.usage_weekly,
                    sample.usage_monthly,
                    sample.balance,
                    sample.total_credits,
                    sample.key_limit,
                    sample.key_limit_remaining,
                ),
            )

    def append_many(self, samples: Sequence[Sample]) -> None:
        """Keep many samples in one transaction (imports, benchmarks)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO samples VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        _ms(s.ts),
                        s.usage,
                        s.usage_daily,
                        s.usage_weekly,
                        s.usage_monthly,
                        s.balance,
                        s.total_credits,
                        s.key_limit,
                        s.key_limit_remaining,
                    )
                    for s in samples
                ],
            )

    def history(self, since: datetime, until: datetime | None = None) -> list[Sample]:
        """Samples from `since` on (and the last one before it, so windows can be
        interpolated at their start), oldest first."""
        end = _ms(until) if until else 2**62
        with self._mutex:
            rows = self._db.execute(
                """
                SELECT * FROM (SELECT * FROM samples WHERE ts < ? ORDER BY ts DESC LIMIT 1)
                UNION ALL
                SELECT * FROM samples WHERE ts >= ? AND ts <= ?
                ORDER BY ts
                """,
                (_ms(since), _ms(since), end),
            ).fetchall()
        return [_sample(row) for row in rows]

    def last_sample(self) -> Sample | None:
        with self._mutex:
            row = self._db.execute("SELECT * FROM samples ORDER BY ts DESC LIMIT 1").fetchone()
        return _sample(row) if row else None

    def sample_count(self) -> int:
        with self._mutex:
            return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def thin(self, now: datetime) -> int:
        """Keep one sample per hour for samples older than RAW_RETENTION; return how many
        were removed. Counters are cumulative, so spend per day stays exact to the hour."""
        cutoff = _ms(now - RAW_RETENTION)
        with self.transaction() as db:
            cursor = db.execute(
                """
                DELETE FROM samples WHERE ts < ? AND ts NOT IN (
                    SELECT MIN(ts) FROM samples WHERE ts < ? GROUP BY ts / ?
                )
                """,
                (cutoff, cutoff, THIN_BUCKET_MS),
            )
            return cursor.rowcount

    # -- small state -----------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        with self._mutex:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        with self._mutex:
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def vacuum(self) -> None:
        with self._mutex:
            self._db.execute("VACUUM")


def _sample(row: Sequence[Any]) -> Sample:
    return Sample(
        ts=_dt(row[0]),
        usage=row[1],
        usage_daily=row[2],
        usage_weekly=row[3],
        usage_monthly=row[4],
        balance=row[5],
        total_credits=row[6],
        key_limit=row[7],
        key_limit_remaining=row[8],
    )


def _statements(script: str) -> list[str]:
    # Migrations are ours and simple: statements never contain a ';' inside a literal.
    return [s.strip() for s in script.split(";") if s.strip() and not _only_comments(s)]


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
