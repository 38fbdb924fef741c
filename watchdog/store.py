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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from watchdog.alerts import AlertState, Silence
from watchdog.messages import OutboxRow
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
    # 2: alerts. Active alert states (hysteresis and dedup survive restarts), silences,
    # and the outbox: every message is written here, in the tick's transaction, before it
    # is sent, so a crash can delay a message but not lose it.
    """
    CREATE TABLE alerts (
        rule TEXT NOT NULL,
        key TEXT NOT NULL,
        severity TEXT NOT NULL,
        since INTEGER NOT NULL,
        last_sent INTEGER,
        message TEXT NOT NULL,
        value REAL,
        threshold REAL,
        suppressed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (rule, key)
    );
    CREATE TABLE silences (
        rule TEXT PRIMARY KEY,
        until INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at INTEGER NOT NULL,
        target TEXT NOT NULL,
        severity TEXT NOT NULL,
        kind TEXT NOT NULL,
        rule TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        sent_at INTEGER
    );
    CREATE INDEX outbox_pending ON outbox (state, target, id);
    CREATE TABLE target_health (
        target TEXT PRIMARY KEY,
        sent INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        last_ok INTEGER,
        last_error TEXT,
        last_error_at INTEGER
    );
    """,
    # 3: the kill switch. Every permit transition (who, why, when) for audit, and the keys
    # the watchdog itself disabled at the provider, so it re-enables only those.
    """
    CREATE TABLE permit_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        state TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE disabled_keys (
        hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        disabled_at INTEGER NOT NULL,
        reason TEXT NOT NULL
    );
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
        try:
            handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for life
        except OSError as exc:
            raise StoreError(f"cannot open {lock_path}: {exc.strerror}") from None
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
            self.insert_sample(db, sample)

    @staticmethod
    def insert_sample(db: sqlite3.Connection, sample: Sample) -> None:
        """append() inside the caller's transaction."""
        db.execute(_INSERT_SAMPLE, _sample_row(sample))

    def append_many(self, samples: Sequence[Sample]) -> None:
        """Keep many samples in one transaction (imports, benchmarks)."""
        with self.transaction() as db:
            db.executemany(_INSERT_SAMPLE, [_sample_row(s) for s in samples])

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
        with self.transaction() as db:
            self.set_meta_in(db, key, value)

    # -- alerts ----------------------------------------------------------------------

    def load_alerts(self) -> dict[tuple[str, str], AlertState]:
        with self._mutex:
            rows = self._db.execute("SELECT * FROM alerts").fetchall()
        states = [
            AlertState(
                rule=r[0],
                key=r[1],
                severity=r[2],
                since=_dt(r[3]),
                last_sent=_dt(r[4]) if r[4] is not None else None,
                message=r[5],
                value=r[6],
                threshold=r[7],
                suppressed=bool(r[8]),
            )
            for r in rows
        ]
        return {s.ident: s for s in states}

    @staticmethod
    def save_alerts(db: sqlite3.Connection, states: dict[tuple[str, str], AlertState]) -> None:
        """Replace the alert states (inside the caller's transaction)."""
        db.execute("DELETE FROM alerts")
        db.executemany(
            "INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    s.rule,
                    s.key,
                    s.severity,
                    _ms(s.since),
                    _ms(s.last_sent) if s.last_sent else None,
                    s.message,
                    s.value,
                    s.threshold,
                    int(s.suppressed),
                )
                for s in states.values()
            ],
        )

    def set_silence(self, silence: Silence) -> None:
        created = silence.created_at or datetime.now(UTC)
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO silences VALUES (?,?,?,?)",
                (silence.rule, _ms(silence.until), silence.reason, _ms(created)),
            )

    def remove_silence(self, rule: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM silences WHERE rule = ?", (rule,)).rowcount > 0

    def silences(self, now: datetime) -> dict[str, Silence]:
        """The silences still in force at `now` (expired ones are forgotten)."""
        with self._mutex:
            rows = self._db.execute(
                "SELECT rule, until, reason, created_at FROM silences WHERE until > ?", (_ms(now),)
            ).fetchall()
        return {r[0]: Silence(r[0], _dt(r[1]), r[2], _dt(r[3])) for r in rows}

    # -- outbox ----------------------------------------------------------------------

    @staticmethod
    def enqueue(db: sqlite3.Connection, rows: Sequence[OutboxRow]) -> None:
        """Add messages to the outbox (inside the caller's transaction)."""
        db.executemany(
            "INSERT INTO outbox (created_at, target, severity, kind, rule, title, body, "
            "next_attempt_at) VALUES (?,?,?,?,?,?,?,?)",
            [
                (
                    _ms(r.created_at),
                    r.target,
                    r.severity,
                    r.kind,
                    r.rule,
                    r.title,
                    r.body,
                    _ms(r.created_at),
                )
                for r in rows
            ],
        )

    def next_pending(self, target: str) -> OutboxMessage | None:
        """The oldest undelivered message for `target` (messages go out in order)."""
        with self._mutex:
            row = self._db.execute(
                _SELECT_OUTBOX + "WHERE state = 'pending' AND target = ? ORDER BY id LIMIT 1",
                (target,),
            ).fetchone()
        return _message(row) if row is not None else None

    def retry_pending_now(self, now: datetime) -> int:
        """Make every pending message due now (at start: the restart may be the fix)."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE outbox SET next_attempt_at = ? "
                "WHERE state = 'pending' AND next_attempt_at > ?",
                (_ms(now), _ms(now)),
            ).rowcount

    def due_count(self, now: datetime) -> int:
        """How many undelivered messages are due at `now`."""
        with self._mutex:
            row = self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?",
                (_ms(now),),
            ).fetchone()
        return int(row[0])

    def pending_targets(self) -> list[str]:
        with self._mutex:
            rows = self._db.execute(
                "SELECT DISTINCT target FROM outbox WHERE state = 'pending'"
            ).fetchall()
        return [r[0] for r in rows]

    def mark_sent(self, message_id: int, target: str, now: datetime) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1 "
                "WHERE id = ?",
                (_ms(now), message_id),
            )
            db.execute(
                "INSERT INTO target_health (target, sent, last_ok) VALUES (?, 1, ?) "
                "ON CONFLICT (target) DO UPDATE SET sent = sent + 1, last_ok = excluded.last_ok",
                (target, _ms(now)),
            )

    def mark_failed(
        self, message_id: int, target: str, now: datetime, error: str, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt; `retry_at` None gives the message up for good."""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
                "state = ? WHERE id = ?",
                (error, _ms(retry_at or now), "pending" if retry_at else "failed", message_id),
            )
            db.execute(
                "INSERT INTO target_health (target, failed, last_error, last_error_at) "
                "VALUES (?, 1, ?, ?) ON CONFLICT (target) DO UPDATE SET failed = failed + 1, "
                "last_error = excluded.last_error, last_error_at = excluded.last_error_at",
                (target, error, _ms(now)),
            )

    def outbox_messages(self) -> list[OutboxMessage]:
        """Every outbox message, oldest first (for tests and status)."""
        with self._mutex:
            rows = self._db.execute(_SELECT_OUTBOX + "ORDER BY id").fetchall()
        return [_message(r) for r in rows]

    def target_health(self) -> dict[str, TargetHealth]:
        with self._mutex:
            rows = self._db.execute("SELECT * FROM target_health").fetchall()
            pending = dict(
                self._db.execute(
                    "SELECT target, COUNT(*) FROM outbox WHERE state = 'pending' GROUP BY target"
                ).fetchall()
            )
        out = {
            r[0]: TargetHealth(
                sent=r[1],
                failed=r[2],
                last_ok=_dt(r[3]) if r[3] else None,
                last_error=r[4],
                last_error_at=_dt(r[5]) if r[5] else None,
                pending=pending.get(r[0], 0),
            )
            for r in rows
        }
        for target, count in pending.items():
            out.setdefault(target, TargetHealth(pending=count))
        return out

    # -- permit ----------------------------------------------------------------------

    @staticmethod
    def audit(db: sqlite3.Connection, at: datetime, state: str, actor: str, reason: str) -> None:
        """Record a permit transition (inside the caller's transaction)."""
        db.execute(
            "INSERT INTO permit_audit (at, state, actor, reason) VALUES (?,?,?,?)",
            (_ms(at), state, actor, reason),
        )

    def audit_log(self, limit: int = 50) -> list[tuple[datetime, str, str, str]]:
        """The latest permit transitions, newest first."""
        with self._mutex:
            rows = self._db.execute(
                "SELECT at, state, actor, reason FROM permit_audit ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [(_dt(r[0]), r[1], r[2], r[3]) for r in rows]

    def set_override(
        self, override: dict[str, Any], at: datetime, state: str, actor: str, reason: str
    ) -> None:
        """Write a manual override (trip or arm) and its audit entry, atomically. The tick
        reads it; only the CLI and the control endpoint write it."""
        with self.transaction() as db:
            self.set_meta_in(db, "override", override)
            self.audit(db, at, state, actor, reason)

    def disabled_keys(self) -> dict[str, str]:
        """Keys the watchdog disabled at the provider: hash → name."""
        with self._mutex:
            rows = self._db.execute("SELECT hash, name FROM disabled_keys").fetchall()
        return {r[0]: r[1] for r in rows}

    def record_disabled(self, key_hash: str, name: str, at: datetime, reason: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO disabled_keys VALUES (?,?,?,?)",
                (key_hash, name, _ms(at), reason),
            )

    def forget_disabled(self, key_hash: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM disabled_keys WHERE hash = ?", (key_hash,))

    def set_meta_in(self, db: sqlite3.Connection, key: str, value: Any) -> None:
        """set_meta inside the caller's transaction."""
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    def checkpoint(self) -> None:
        """Fold the WAL into the main file (the size on disk is then the file's)."""
        with self._mutex:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def vacuum(self) -> None:
        with self._mutex:
            self._db.execute("VACUUM")


@dataclass(frozen=True)
class OutboxMessage:
    """A message in the outbox, with its delivery state."""

    id: int
    created_at: datetime
    target: str
    severity: str
    kind: str
    rule: str
    title: str
    body: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    state: str = "pending"


@dataclass(frozen=True)
class TargetHealth:
    sent: int = 0
    failed: int = 0
    last_ok: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    pending: int = 0


_SELECT_OUTBOX = (
    "SELECT id, created_at, target, severity, kind, rule, title, body, attempts, "
    "next_attempt_at, last_error, state FROM outbox "
)


def _message(row: Sequence[Any]) -> OutboxMessage:
    return OutboxMessage(
        id=row[0],
        created_at=_dt(row[1]),
        target=row[2],
        severity=row[3],
        kind=row[4],
        rule=row[5],
        title=row[6],
        body=row[7],
        attempts=row[8],
        next_attempt_at=_dt(row[9]),
        last_error=row[10],
        state=row[11],
    )


_INSERT_SAMPLE = "INSERT OR REPLACE INTO samples VALUES (?,?,?,?,?,?,?,?,?)"


def _sample_row(s: Sample) -> tuple[Any, ...]:
    return (
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
