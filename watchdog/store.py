"""The embedded SQLite store: every poll's sample, and the state that must survive restarts.

WAL mode, one writer (the daemon holds `<path>.lock`; a second daemon refuses to start),
readers anywhere (the CLI's `status`, `report`, `trip`). Schema changes are numbered
migrations recorded in `PRAGMA user_version`. Old samples are thinned to one per hour so
a year of 60-second polls stays a few MB.

Reads are methods of `Store` returning the core's types. Writes happen in a unit of work:
`with store.unit() as unit: unit.add_sample(…); unit.save_alerts(…)` is one transaction
(BEGIN IMMEDIATE … COMMIT), so a crash leaves all of a tick's state or none of it. No
connection leaves this module, rows are read by column name, and the time is always
passed in: the store never reads the clock.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from watchdog.core.audit import Endpoint, ModelPrices, Price
from watchdog.core.model import (
    AlertState,
    CapChange,
    Ident,
    KeySample,
    KnownKey,
    OutboxRow,
    Override,
    PermitChange,
    Sample,
    Silence,
    TargetHealth,
    Trip,
)
from watchdog.core.permit import PermitState

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
    # 4: an alert that ended under a silence keeps its state until the silence ends, so
    # its resolution is sent then (AlertState.resolved_at), not dropped.
    """
    ALTER TABLE alerts ADD COLUMN resolved_at INTEGER;
    """,
    # 5: bring-your-own-key spend, shown on its own; byok_counted says whether `usage` and
    # its windows already include it (the key's limit counts BYOK spend).
    """
    ALTER TABLE samples ADD COLUMN byok_usage REAL;
    ALTER TABLE samples ADD COLUMN byok_usage_daily REAL;
    ALTER TABLE samples ADD COLUMN byok_usage_monthly REAL;
    ALTER TABLE samples ADD COLUMN byok_counted INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: prices for the audit, cached with their fetch time (fetched at most once an hour).
    # One row per model with endpoint '' (its listed price from GET /models; NULL prices
    # when not listed), and one per provider endpoint (GET …/endpoints, `endpoint` its tag).
    # Prices are USD per token.
    """
    CREATE TABLE prices (
        model TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        provider TEXT NOT NULL,
        prompt REAL,
        completion REAL,
        cache_read REAL,
        fetched_at INTEGER NOT NULL,
        PRIMARY KEY (model, endpoint)
    );
    """,
    # 7: every key of the account (issue 14). Keys are followed by hash (a rename keeps
    # the history); key_samples keep a key's counters when they changed (with the last
    # unchanged poll before a change), so an idle key costs no rows; cap_audit records
    # every change of a provider-side limit made by `caps`.
    """
    CREATE TABLE keys (
        hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        label TEXT,
        workspace_id TEXT,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        deleted_at INTEGER
    );
    CREATE TABLE key_samples (
        hash TEXT NOT NULL,
        ts INTEGER NOT NULL,
        usage REAL NOT NULL,
        usage_daily REAL,
        usage_weekly REAL,
        usage_monthly REAL,
        key_limit REAL,
        key_limit_remaining REAL,
        limit_reset TEXT,
        disabled INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (hash, ts)
    );
    CREATE TABLE cap_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        hash TEXT NOT NULL,
        name TEXT NOT NULL,
        old_limit REAL,
        old_reset TEXT,
        new_limit REAL,
        new_reset TEXT,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    """,
)


class StoreError(Exception):
    """The state file cannot be used; the message says why and what to do."""


class StoreLocked(StoreError):
    """Another daemon owns this state file."""


@dataclass(frozen=True)
class OutboxMessage:
    """A message in the outbox, with its delivery state."""

    id: int
    row: OutboxRow
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    state: str = "pending"


@dataclass(frozen=True)
class WatchedKey:
    """The watched key as last seen: its name for messages, its hash so a restart can still
    find a key we disabled (its own /key answers 401 then) among the account's keys."""

    name: str = "watched key"
    hash: str | None = None


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _dt_or_none(ms: int | None) -> datetime | None:
    return None if ms is None else _dt(ms)


def _iso_or_none(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


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
            self._db.row_factory = sqlite3.Row
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
        # Keyed by the file itself, not the name it was given: a second daemon pointed at
        # a symlink (or a path with ..) to the same state file meets the same lock.
        real = self.path.resolve()
        lock_path = real.with_name(real.name + ".lock")
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
        try:
            # Unbuffered: a buffered write that fails on a full disk fails again on close.
            os.ftruncate(handle.fileno(), 0)
            os.pwrite(handle.fileno(), f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:  # a full disk
            handle.close()
            raise StoreError(
                f"cannot write {lock_path}: {exc.strerror} (the state's disk is full?)"
            ) from None
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
    def unit(self) -> Iterator[Unit]:
        """One atomic unit of writes (BEGIN IMMEDIATE … COMMIT; ROLLBACK on any error)."""
        with self._mutex:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield Unit(self._db)
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
            with self.unit() as unit:
                for statement in _statements(script):
                    unit.db.execute(statement)
                unit.db.execute(f"PRAGMA user_version = {number}")

    def _one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._mutex:
            row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
        return row

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._mutex:
            return list(self._db.execute(sql, args).fetchall())

    @property
    def schema_version(self) -> int:
        row = self._one("PRAGMA user_version")
        return int(row[0]) if row else 0

    # -- samples ---------------------------------------------------------------------

    def history(self, since: datetime, until: datetime | None = None) -> list[Sample]:
        """Samples from `since` on (and the last one before it, so windows can be
        interpolated at their start), oldest first."""
        end = _ms(until) if until else 2**62
        rows = self._all(
            """
            SELECT * FROM (SELECT * FROM samples WHERE ts < ? ORDER BY ts DESC LIMIT 1)
            UNION ALL
            SELECT * FROM samples WHERE ts >= ? AND ts <= ?
            ORDER BY ts
            """,
            (_ms(since), _ms(since), end),
        )
        return [_sample(row) for row in rows]

    def last_sample(self) -> Sample | None:
        row = self._one("SELECT * FROM samples ORDER BY ts DESC LIMIT 1")
        return _sample(row) if row else None

    # -- keys ------------------------------------------------------------------------

    def known_keys(self) -> dict[str, KnownKey]:
        """Every key ever listed, by hash (deleted ones keep `deleted_at`)."""
        return {r["hash"]: _known_key(r) for r in self._all("SELECT * FROM keys ORDER BY name")}

    def key_history(
        self, since: datetime, until: datetime | None = None
    ) -> dict[str, list[KeySample]]:
        """Each key's samples from `since` on (and its last one before), oldest first."""
        end = _ms(until) if until else 2**62
        rows = self._all(
            """
            SELECT k.* FROM key_samples k JOIN (
                SELECT hash, MAX(ts) AS ts FROM key_samples WHERE ts < ? GROUP BY hash
            ) b ON k.hash = b.hash AND k.ts = b.ts
            UNION ALL
            SELECT * FROM key_samples WHERE ts >= ? AND ts <= ?
            ORDER BY hash, ts
            """,
            (_ms(since), _ms(since), end),
        )
        found: dict[str, list[KeySample]] = {}
        for row in rows:
            found.setdefault(row["hash"], []).append(_key_sample(row))
        return found

    def cap_log(self, limit: int = 100) -> list[CapChange]:
        """The latest changes of provider-side limits, newest first."""
        rows = self._all("SELECT * FROM cap_audit ORDER BY id DESC LIMIT ?", (limit,))
        return [
            CapChange(
                at=_dt(r["at"]),
                hash=r["hash"],
                name=r["name"],
                old_limit=r["old_limit"],
                old_reset=r["old_reset"],
                new_limit=r["new_limit"],
                new_reset=r["new_reset"],
                actor=r["actor"],
                reason=r["reason"],
            )
            for r in rows
        ]

    # -- prices ----------------------------------------------------------------------

    def prices(self) -> dict[str, ModelPrices]:
        """The cached prices by model id, each with the time it was fetched."""
        found: dict[str, ModelPrices] = {}
        endpoints: dict[str, list[Endpoint]] = {}
        for r in self._all("SELECT * FROM prices ORDER BY model, endpoint"):
            price = _price(r)
            if r["endpoint"] == "":
                found[r["model"]] = ModelPrices(r["model"], _dt(r["fetched_at"]), price)
            elif price is not None:
                endpoints.setdefault(r["model"], []).append(
                    Endpoint(r["provider"], price, r["endpoint"])
                )
        return {
            model: replace(prices, endpoints=tuple(endpoints.get(model, ())))
            for model, prices in found.items()
        }

    # -- small state -----------------------------------------------------------------

    def _meta(self, key: str) -> dict[str, Any]:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        value = json.loads(row["value"]) if row else None
        return value if isinstance(value, dict) else {}

    def permit_state(self) -> PermitState:
        saved = self._meta("permit")
        armed = saved.get("armed")
        return PermitState(
            armed=armed if isinstance(armed, bool) else None,
            reason=str(saved.get("reason") or ""),
            latched_since=_iso_or_none(saved.get("latched_since")),
        )

    def watched_key(self) -> WatchedKey:
        saved = self._meta("permit")
        return WatchedKey(
            name=str(saved.get("key_name") or "watched key"),
            hash=saved.get("watched_hash") or None,
        )

    def override(self) -> Override:
        saved = self._meta("override")
        trip = saved.get("trip")
        return Override(
            trip=Trip(
                reason=str(trip.get("reason", "")),
                by=str(trip.get("by", "operator")),
                at=_iso_or_none(trip.get("at")) or datetime.min.replace(tzinfo=UTC),
            )
            if isinstance(trip, dict)
            else None,
            armed_at=_iso_or_none(saved.get("armed_at")),
        )

    def digest_state(self) -> tuple[datetime | None, datetime | None]:
        """The digest's slot last sent (None: never) and when its schedule was first kept."""
        saved = self._meta("digest")
        return _iso_or_none(saved.get("last_slot")), _iso_or_none(saved.get("since"))

    def fired_between(self, start: datetime, end: datetime) -> list[tuple[str, str, int]]:
        """What fired in [start, end): (rule, worst severity, times), from the messages
        written then (one row per target, so each event is counted once)."""
        rows = self._all(
            "SELECT rule, MAX(CASE severity WHEN 'critical' THEN 2 ELSE 1 END) AS worst, "
            "COUNT(DISTINCT created_at) AS n FROM outbox WHERE created_at >= ? AND "
            "created_at < ? AND kind IN ('firing', 'escalated', 'unsilenced') GROUP BY rule "
            "ORDER BY worst DESC, n DESC, rule",
            (_ms(start), _ms(end)),
        )
        return [
            (r["rule"], "critical" if r["worst"] == 2 else "warning", int(r["n"])) for r in rows
        ]

    def poll_error(self) -> tuple[str | None, str | None, datetime | None]:
        """The last poll error as persisted: message, kind, when."""
        saved = self._meta("poll_health")
        return saved.get("last_error"), saved.get("last_error_kind"), _iso_or_none(saved.get("at"))

    # -- alerts ----------------------------------------------------------------------

    def load_alerts(self) -> dict[Ident, AlertState]:
        states = [
            AlertState(
                rule=r["rule"],
                key=r["key"],
                severity=r["severity"],
                since=_dt(r["since"]),
                last_sent=_dt_or_none(r["last_sent"]),
                message=r["message"],
                value=r["value"],
                threshold=r["threshold"],
                suppressed=bool(r["suppressed"]),
                resolved_at=_dt_or_none(r["resolved_at"]),
            )
            for r in self._all("SELECT * FROM alerts")
        ]
        return {s.ident: s for s in states}

    def silences(self, now: datetime) -> dict[str, Silence]:
        """The silences still in force at `now` (expired ones are forgotten)."""
        rows = self._all("SELECT * FROM silences WHERE until > ?", (_ms(now),))
        return {
            r["rule"]: Silence(r["rule"], _dt(r["until"]), r["reason"], _dt(r["created_at"]))
            for r in rows
        }

    # -- permit ----------------------------------------------------------------------

    def audit_log(self, limit: int = 50) -> list[PermitChange]:
        """The latest permit transitions, newest first."""
        rows = self._all("SELECT * FROM permit_audit ORDER BY id DESC LIMIT ?", (limit,))
        return [PermitChange(_dt(r["at"]), r["state"], r["actor"], r["reason"]) for r in rows]

    def disabled_keys(self) -> dict[str, str]:
        """Keys the watchdog disabled at the provider: hash → name."""
        return {r["hash"]: r["name"] for r in self._all("SELECT hash, name FROM disabled_keys")}

    # -- outbox ----------------------------------------------------------------------
    # The courier's side: each call is its own small transaction.

    def next_pending(self, target: str) -> OutboxMessage | None:
        """The oldest undelivered message for `target` (messages go out in order)."""
        row = self._one(
            "SELECT * FROM outbox WHERE state = 'pending' AND target = ? ORDER BY id LIMIT 1",
            (target,),
        )
        return _message(row) if row is not None else None

    def due_count(self, now: datetime) -> int:
        """How many undelivered messages wait behind a message due at `now`: the messages
        of the targets whose oldest pending one is due (a target waiting out its backoff
        has none due, however many it holds)."""
        row = self._one(
            """
            SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND target IN (
                SELECT target FROM outbox WHERE next_attempt_at <= ? AND id IN (
                    SELECT MIN(id) FROM outbox WHERE state = 'pending' GROUP BY target))
            """,
            (_ms(now),),
        )
        return int(row[0]) if row else 0

    def pending_targets(self, due_at: datetime | None = None) -> list[str]:
        """The targets with undelivered messages; with `due_at`, only those whose oldest
        pending message is due then (messages go out in order, so only it can be sent)."""
        if due_at is not None:
            heads = self._all(
                """
                SELECT target FROM outbox WHERE next_attempt_at <= ? AND id IN (
                    SELECT MIN(id) FROM outbox WHERE state = 'pending' GROUP BY target)
                ORDER BY id
                """,
                (_ms(due_at),),
            )
            return [r["target"] for r in heads]
        rows = self._all("SELECT DISTINCT target FROM outbox WHERE state = 'pending'")
        return [r["target"] for r in rows]

    def target_health(self) -> dict[str, TargetHealth]:
        rows = self._all("SELECT * FROM target_health")
        pending = {
            r["target"]: r["n"]
            for r in self._all(
                "SELECT target, COUNT(*) AS n FROM outbox WHERE state = 'pending' GROUP BY target"
            )
        }
        out = {
            r["target"]: TargetHealth(
                sent=r["sent"],
                failed=r["failed"],
                last_ok=_dt_or_none(r["last_ok"]),
                last_error=r["last_error"],
                last_error_at=_dt_or_none(r["last_error_at"]),
                pending=pending.get(r["target"], 0),
            )
            for r in rows
        }
        for target, count in pending.items():
            out.setdefault(target, TargetHealth(pending=count))
        return out


class Unit:
    """The writes of one transaction (see Store.unit). Every time is passed in."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    # -- samples ---------------------------------------------------------------------

    def add_samples(self, samples: Sequence[Sample]) -> None:
        """Keep polls' samples. A sample at an existing timestamp replaces it."""
        self.db.executemany(
            "INSERT OR REPLACE INTO samples (ts, usage, usage_daily, usage_weekly, "
            "usage_monthly, balance, total_credits, key_limit, key_limit_remaining, "
            "byok_usage, byok_usage_daily, byok_usage_monthly, byok_counted) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    s.byok_usage,
                    s.byok_usage_daily,
                    s.byok_usage_monthly,
                    int(s.byok_counted),
                )
                for s in samples
            ],
        )

    def thin(self, now: datetime) -> int:
        """Keep one sample per hour for samples older than RAW_RETENTION (per key for key
        samples); return how many were removed. Counters are cumulative, so spend per day
        stays exact to the hour."""
        cutoff = _ms(now - RAW_RETENTION)
        cursor = self.db.execute(
            """
            DELETE FROM samples WHERE ts < ? AND ts NOT IN (
                SELECT MIN(ts) FROM samples WHERE ts < ? GROUP BY ts / ?
            )
            """,
            (cutoff, cutoff, THIN_BUCKET_MS),
        )
        keys = self.db.execute(
            """
            DELETE FROM key_samples WHERE ts < ? AND (hash, ts) NOT IN (
                SELECT hash, MIN(ts) FROM key_samples WHERE ts < ? GROUP BY hash, ts / ?
            )
            """,
            (cutoff, cutoff, THIN_BUCKET_MS),
        )
        return cursor.rowcount + keys.rowcount

    # -- keys ------------------------------------------------------------------------

    def add_key_samples(self, samples: Sequence[KeySample]) -> None:
        """Keep keys' samples. A sample at an existing (hash, timestamp) replaces it."""
        self.db.executemany(
            "INSERT OR REPLACE INTO key_samples (hash, ts, usage, usage_daily, usage_weekly, "
            "usage_monthly, key_limit, key_limit_remaining, limit_reset, disabled) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    s.hash,
                    _ms(s.ts),
                    s.usage,
                    s.usage_daily,
                    s.usage_weekly,
                    s.usage_monthly,
                    s.key_limit,
                    s.key_limit_remaining,
                    s.limit_reset,
                    int(s.disabled),
                )
                for s in samples
            ],
        )

    def save_keys(self, keys: Sequence[KnownKey]) -> None:
        """Insert or update keys as followed (by hash)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO keys (hash, name, label, workspace_id, first_seen, "
            "last_seen, deleted_at) VALUES (?,?,?,?,?,?,?)",
            [
                (
                    k.hash,
                    k.name,
                    k.label,
                    k.workspace_id,
                    _ms(_seen(k.first_seen or k.last_seen)),
                    _ms(_seen(k.last_seen or k.first_seen)),
                    None if k.deleted_at is None else _ms(k.deleted_at),
                )
                for k in keys
            ],
        )

    def audit_cap(self, change: CapChange) -> None:
        """Record a change of a key's provider-side limit."""
        self.db.execute(
            "INSERT INTO cap_audit (at, hash, name, old_limit, old_reset, new_limit, "
            "new_reset, actor, reason) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                _ms(change.at),
                change.hash,
                change.name,
                change.old_limit,
                change.old_reset,
                change.new_limit,
                change.new_reset,
                change.actor,
                change.reason,
            ),
        )

    # -- small state -----------------------------------------------------------------

    def _set_meta(self, key: str, value: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    def save_permit(self, state: PermitState, watched: WatchedKey) -> None:
        self._set_meta(
            "permit",
            {
                "armed": state.armed,
                "reason": state.reason,
                "latched_since": state.latched_since.isoformat() if state.latched_since else None,
                "key_name": watched.name,
                "watched_hash": watched.hash,
            },
        )

    def set_override(self, override: Override) -> None:
        """Write a manual override (trip or arm). The tick reads it; only the CLI and the
        control endpoint write it."""
        trip = override.trip
        self._set_meta(
            "override",
            {
                "trip": {"reason": trip.reason, "by": trip.by, "at": trip.at.isoformat()}
                if trip
                else None,
                "armed_at": override.armed_at.isoformat() if override.armed_at else None,
            },
        )

    def save_digest_state(self, last_slot: datetime | None, since: datetime) -> None:
        self._set_meta(
            "digest",
            {"last_slot": last_slot.isoformat() if last_slot else None, "since": since.isoformat()},
        )

    def save_poll_error(self, message: str, kind: str, at: datetime) -> None:
        self._set_meta(
            "poll_health", {"last_error": message, "last_error_kind": kind, "at": at.isoformat()}
        )

    # -- alerts ----------------------------------------------------------------------

    def save_alerts(self, states: dict[Ident, AlertState]) -> None:
        """Replace the alert states."""
        self.db.execute("DELETE FROM alerts")
        self.db.executemany(
            "INSERT INTO alerts (rule, key, severity, since, last_sent, message, value, "
            "threshold, suppressed, resolved_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
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
                    _ms(s.resolved_at) if s.resolved_at else None,
                )
                for s in states.values()
            ],
        )

    def set_silence(self, silence: Silence, now: datetime) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO silences (rule, until, reason, created_at) VALUES (?,?,?,?)",
            (silence.rule, _ms(silence.until), silence.reason, _ms(silence.created_at or now)),
        )

    def remove_silence(self, rule: str) -> bool:
        return self.db.execute("DELETE FROM silences WHERE rule = ?", (rule,)).rowcount > 0

    # -- permit ----------------------------------------------------------------------

    def audit(self, change: PermitChange) -> None:
        """Record a permit transition."""
        self.db.execute(
            "INSERT INTO permit_audit (at, state, actor, reason) VALUES (?,?,?,?)",
            (_ms(change.at), change.state, change.by, change.reason),
        )

    def record_disabled(self, key_hash: str, name: str, at: datetime, reason: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO disabled_keys (hash, name, disabled_at, reason) "
            "VALUES (?,?,?,?)",
            (key_hash, name, _ms(at), reason),
        )

    def forget_disabled(self, key_hash: str) -> None:
        self.db.execute("DELETE FROM disabled_keys WHERE hash = ?", (key_hash,))

    # -- prices ----------------------------------------------------------------------

    def save_prices(self, prices: Sequence[ModelPrices]) -> None:
        """Replace the cached prices of these models (their listed price and endpoints)."""
        for model in prices:
            self.db.execute("DELETE FROM prices WHERE model = ?", (model.model,))
            rows = [("", "", model.listed)] + [
                (e.tag, e.provider, e.price) for e in model.endpoints
            ]
            seen: set[str] = set()
            for endpoint, provider, price in rows:
                tag = endpoint if endpoint or provider == "" else provider
                if tag in seen:
                    continue  # one row per endpoint: the first listed
                seen.add(tag)
                self.db.execute(
                    "INSERT INTO prices (model, endpoint, provider, prompt, completion, "
                    "cache_read, fetched_at) VALUES (?,?,?,?,?,?,?)",
                    (
                        model.model,
                        tag,
                        provider,
                        price.prompt if price else None,
                        price.completion if price else None,
                        price.cache_read if price else None,
                        _ms(model.fetched_at),
                    ),
                )

    # -- outbox ----------------------------------------------------------------------

    def enqueue(self, rows: Sequence[OutboxRow]) -> None:
        """Add messages to the outbox, due at once."""
        self.db.executemany(
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

    def retry_pending_now(self, now: datetime) -> int:
        """Make every pending message due now (at start: the restart may be the fix)."""
        return self.db.execute(
            "UPDATE outbox SET next_attempt_at = ? WHERE state = 'pending' AND next_attempt_at > ?",
            (_ms(now), _ms(now)),
        ).rowcount

    def mark_sent(self, message_id: int, target: str, now: datetime) -> None:
        self.db.execute(
            "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ?",
            (_ms(now), message_id),
        )
        self.db.execute(
            "INSERT INTO target_health (target, sent, last_ok) VALUES (?, 1, ?) "
            "ON CONFLICT (target) DO UPDATE SET sent = sent + 1, last_ok = excluded.last_ok",
            (target, _ms(now)),
        )

    def mark_failed(
        self, message_id: int, target: str, now: datetime, error: str, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt; `retry_at` None gives the message up for good."""
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
            "state = ? WHERE id = ?",
            (error, _ms(retry_at or now), "pending" if retry_at else "failed", message_id),
        )
        self.db.execute(
            "INSERT INTO target_health (target, failed, last_error, last_error_at) "
            "VALUES (?, 1, ?, ?) ON CONFLICT (target) DO UPDATE SET failed = failed + 1, "
            "last_error = excluded.last_error, last_error_at = excluded.last_error_at",
            (target, error, _ms(now)),
        )


def _message(r: sqlite3.Row) -> OutboxMessage:
    return OutboxMessage(
        id=r["id"],
        row=OutboxRow(
            created_at=_dt(r["created_at"]),
            target=r["target"],
            severity=r["severity"],
            kind=r["kind"],
            rule=r["rule"],
            title=r["title"],
            body=r["body"],
        ),
        attempts=r["attempts"],
        next_attempt_at=_dt(r["next_attempt_at"]),
        last_error=r["last_error"],
        state=r["state"],
    )


def _price(r: sqlite3.Row) -> Price | None:
    if r["prompt"] is None or r["completion"] is None:
        return None
    return Price(r["prompt"], r["completion"], r["cache_read"])


def _seen(at: datetime | None) -> datetime:
    if at is None:
        raise ValueError("a key is saved with the time it was seen")
    return at


def _known_key(r: sqlite3.Row) -> KnownKey:
    return KnownKey(
        hash=r["hash"],
        name=r["name"],
        label=r["label"],
        workspace_id=r["workspace_id"],
        first_seen=_dt(r["first_seen"]),
        last_seen=_dt(r["last_seen"]),
        deleted_at=_dt_or_none(r["deleted_at"]),
    )


def _key_sample(r: sqlite3.Row) -> KeySample:
    return KeySample(
        hash=r["hash"],
        ts=_dt(r["ts"]),
        usage=r["usage"],
        usage_daily=r["usage_daily"],
        usage_weekly=r["usage_weekly"],
        usage_monthly=r["usage_monthly"],
        key_limit=r["key_limit"],
        key_limit_remaining=r["key_limit_remaining"],
        limit_reset=r["limit_reset"],
        disabled=bool(r["disabled"]),
    )


def _sample(r: sqlite3.Row) -> Sample:
    return Sample(
        ts=_dt(r["ts"]),
        usage=r["usage"],
        usage_daily=r["usage_daily"],
        usage_weekly=r["usage_weekly"],
        usage_monthly=r["usage_monthly"],
        balance=r["balance"],
        total_credits=r["total_credits"],
        key_limit=r["key_limit"],
        key_limit_remaining=r["key_limit_remaining"],
        byok_usage=r["byok_usage"],
        byok_usage_daily=r["byok_usage_daily"],
        byok_usage_monthly=r["byok_usage_monthly"],
        byok_counted=bool(r["byok_counted"]),
    )


def _statements(script: str) -> list[str]:
    # Migrations are ours and simple: statements never contain a ';' inside a literal.
    return [s.strip() for s in script.split(";") if s.strip() and not _only_comments(s)]


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
