"""The store: every poll's sample, and the state that must survive restarts.

Two engines, one store (watchdog.db holds what differs between them). SQLite is the
embedded default: a state file in WAL mode, one writer (the daemon holds `<path>.lock`; a
second daemon refuses to start), readers anywhere (the CLI's `status`, `report`, `trip`).
PostgreSQL is for several instances sharing one budget (`Store.open(url)`): there is no
lock file, every instance writes, one of them leads (watchdog.leader), and the leader's
writes carry its term (`Unit.fence`) so that a deposed leader's are refused.

Schema changes are numbered migrations, written once in SQLite's words and translated for
PostgreSQL; the version is in `PRAGMA user_version`, or a `schema_version` table. Old
samples are thinned to one per hour so a year of 60-second polls stays a few MB.

Reads are methods of `Store` returning the core's types. Writes happen in a unit of work:
`with store.unit() as unit: unit.add_sample(…); unit.save_alerts(…)` is one transaction
(SQLite: BEGIN IMMEDIATE … COMMIT; PostgreSQL: BEGIN, the units' advisory lock, …
COMMIT), so a crash leaves all of a tick's state or none of it, and units of several
instances never interleave. No connection leaves this module, rows are read by column
name, and the time is always passed in: the store never reads the clock (the one
exception is the leader's lease, judged by the database server's clock so that instances
on hosts whose clocks differ agree on when it ends).

Every database error of either engine leaves the store's methods as a StoreError: a
DatabaseFailed (also an sqlite3.Error, for callers that catch that), or StoreUnavailable
when the database cannot be reached. No message carries a password.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from watchdog import pidlock
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
from watchdog.db import (
    Database,
    PostgreSQL,
    Row,
    SQLite,
    Unreachable,
    is_postgres_url,
    mask_url,
)

# Raw samples are kept this long: the longest window measured (month to date, 31 days)
# plus the 7-day baseline before it would need 38; older ones keep one per hour.
RAW_RETENTION = timedelta(days=40)
THIN_BUCKET_MS = 3_600_000
# A message not yet delivered: waiting, or claimed by an instance sending it.
_UNDELIVERED = "state IN ('pending', 'sending')"
# Not claimed by an instance that may be sending it at the time given (the query's next
# parameter): a message whose claim ran out is to be had again.
_UNCLAIMED = "(state = 'pending' OR claimed_until <= ?)"

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
    # 8: several instances on one database (issue 16). An outbox message is claimed before
    # it is sent (state 'sending', by whom, until when), so exactly one instance sends it
    # and a claim left by one that died runs out; the leader's lease (one row: who, which
    # term, since and until when, on the database's clock).
    """
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
    CREATE TABLE leader (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        holder TEXT NOT NULL,
        term INTEGER NOT NULL,
        since INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    """,
    # 9: pre-flight reservations shared by every instance on one database (issue 16): a
    # job that reserved on one host holds the money for the jobs of every host.
    """
    CREATE TABLE holds (
        id TEXT PRIMARY KEY,
        amount REAL NOT NULL,
        until INTEGER NOT NULL,
        label TEXT NOT NULL,
        key_hash TEXT NOT NULL DEFAULT '',
        made_by TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX holds_until ON holds (until);
    """,
    # 10: a follower reads the key samples the leader added since its last tick.
    """
    CREATE INDEX key_samples_ts ON key_samples (ts);
    """,
    # 11: key samples kept in time order (ts, then hash): a tick's rows for many keys
    # go to the table's last pages, where by key first they landed on a page per key
    # (with hundreds of keys, most of a tick's writes). Every read of them is by time.
    # On PostgreSQL the primary key's index is in that order (no WITHOUT ROWID there).
    """
    CREATE TABLE key_samples_by_time (
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
        PRIMARY KEY (ts, hash)
    ) WITHOUT ROWID;
    INSERT INTO key_samples_by_time (
        hash, ts, usage, usage_daily, usage_weekly, usage_monthly, key_limit,
        key_limit_remaining, limit_reset, disabled
    ) SELECT
        hash, ts, usage, usage_daily, usage_weekly, usage_monthly, key_limit,
        key_limit_remaining, limit_reset, disabled
    FROM key_samples;
    DROP TABLE key_samples;
    ALTER TABLE key_samples_by_time RENAME TO key_samples;
    """,
)


class StoreError(Exception):
    """The state cannot be used; the message says why and what to do."""


class StoreLocked(StoreError):
    """Another daemon owns this state file."""


class DatabaseFailed(StoreError, sqlite3.Error):
    """The database refused or failed a statement (either engine). Also an sqlite3.Error,
    so that callers written when SQLite was the only engine still catch it."""


class StoreUnavailable(DatabaseFailed):
    """The database cannot be reached (PostgreSQL down, a network cut, a wrong password)."""


class LeadershipLost(StoreError):
    """A leader's unit of work was refused: its term is over (see Unit.fence)."""


@dataclass(frozen=True)
class OutboxMessage:
    """A message in the outbox, with its delivery state."""

    id: int
    row: OutboxRow
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    state: str = "pending"
    claimed_by: str | None = None
    claimed_until: datetime | None = None


@dataclass(frozen=True)
class Lease:
    """The leader's lease as the database holds it. `now` is the database's clock when it
    was read: the lease is live while `now < expires_at`."""

    holder: str
    term: int
    since: datetime
    expires_at: datetime
    now: datetime

    @property
    def live(self) -> bool:
        return bool(self.holder) and self.now < self.expires_at


@dataclass(frozen=True)
class StoredHold:
    """A pre-flight reservation as the database keeps it: `key` is the hash of the key it
    was made for ("" for the account), `made_by` the instance that granted it."""

    id: str
    amount: float
    until: datetime
    label: str
    key: str = ""
    made_by: str = ""


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
    raises StoreLocked when another daemon holds it. `Store.open` also opens PostgreSQL."""

    engine: str  # "sqlite" or "postgresql"
    shown: str  # where the state is, for messages: the path, or the URL without password
    target: str  # what opens it again (`Store.open(target)`): the path, or the URL WITH password

    def __init__(self, path: Path, *, lock: bool = False) -> None:
        self._path: Path | None = path
        self.engine = "sqlite"
        self.shown = self.target = str(path)
        self._lock_file: IO[str] | None = None
        self._mutex = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {path.parent}: {exc.strerror}") from None
        if lock:
            self._take_lock()
        try:
            self._db: Database = SQLite(path)
        except sqlite3.Error as exc:
            self._release_lock()
            raise StoreError(f"cannot open state file {path}: {exc}") from None
        try:
            self._migrate()
        except DatabaseFailed as exc:
            self.close()
            raise StoreError(f"cannot open state file {path}: {exc}") from None
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, target: str | Path, *, lock: bool = False) -> Store:
        """The store at `target`: a `postgresql://` (or `postgres://`) URL, or the path of
        a SQLite file. `lock` applies to a file only: instances sharing PostgreSQL elect
        a leader instead (watchdog.leader). Raise StoreError (StoreUnavailable when the
        server cannot be reached) if it cannot be used."""
        if is_postgres_url(target):
            return cls.postgres(str(target))
        return cls(Path(target), lock=lock)

    @classmethod
    def postgres(cls, url: str) -> Store:
        """The store in the PostgreSQL database at `url` (libpq's URL: user, password,
        hosts, database, parameters such as sslmode). The schema is created or upgraded;
        several instances may open it at once. Raise StoreUnavailable if the server cannot
        be reached (the message has the URL without its password)."""
        store = cls.__new__(cls)
        store._path = None
        store.engine = "postgresql"
        store.shown = mask_url(url)
        store.target = url
        store._lock_file = None
        store._mutex = threading.RLock()
        try:
            store._db = PostgreSQL(url)
        except Unreachable as exc:
            raise StoreUnavailable(str(exc)) from None
        try:
            store._migrate()
        except BaseException:
            store.close()
            raise
        return store

    @property
    def path(self) -> Path:
        """The SQLite file (StoreError on PostgreSQL, which has none: use `target`)."""
        if self._path is None:
            raise StoreError(f"the state is in PostgreSQL ({self.shown}), not in a file")
        return self._path

    # -- lifecycle -------------------------------------------------------------------

    def _take_lock(self) -> None:
        # Keyed by the file itself, not the name it was given: a second daemon pointed at
        # a symlink (or a path with ..) to the same state file meets the same lock.
        real = self.path.resolve()
        lock_path = real.with_name(real.name + ".lock")
        try:
            self._lock_file = pidlock.take(lock_path)
        except pidlock.Held as held:
            raise StoreLocked(
                f"another budget-watchdog (pid {held.holder}) is using {self.path}; stop it "
                "first, or give this one its own state.path"
            ) from None
        except pidlock.Unwritable as exc:
            raise StoreError(
                f"cannot write {lock_path}: {exc.strerror} (the state's disk is full?)"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot open {lock_path}: {exc.strerror}") from None

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
    def _errors(self) -> Iterator[None]:
        """The engines' exceptions as StoreErrors, worded without secrets."""
        try:
            yield
        except StoreError:
            raise
        except self._db.errors as exc:
            message = self._db.describe(exc)
            if self._db.unavailable(exc):
                raise StoreUnavailable(f"cannot reach {self.shown}: {message}") from None
            raise DatabaseFailed(message) from None

    @contextmanager
    def unit(self) -> Iterator[Unit]:
        """One atomic unit of writes (SQLite: BEGIN IMMEDIATE … COMMIT; PostgreSQL: BEGIN,
        the units' advisory lock, … COMMIT; ROLLBACK on any error). A failure of the
        database, inside the unit or at its commit, is a DatabaseFailed; on PostgreSQL a
        commit whose answer was lost may have been applied."""
        with self._mutex, self._errors(), self._db.transaction():
            yield Unit(self._db)

    def _migrate(self) -> None:
        version = self.schema_version
        while version < len(MIGRATIONS):
            with self.unit() as unit:
                # Again under the units' lock: another instance may have migrated since.
                version = self._db.schema_version()
                if version >= len(MIGRATIONS):
                    break
                for statement in self._db.migration(MIGRATIONS[version]):
                    unit.db.run(statement)
                version += 1
                self._db.set_schema_version(version)
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.shown} has schema {version}, newer than this budget-watchdog "
                f"understands ({len(MIGRATIONS)}); upgrade budget-watchdog"
            )

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        with self._mutex, self._errors():
            return self._db.one(sql, args)

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with self._mutex, self._errors():
            return self._db.all(sql, args)

    @property
    def schema_version(self) -> int:
        with self._mutex, self._errors():
            return self._db.schema_version()

    # -- samples ---------------------------------------------------------------------

    def history(self, since: datetime, until: datetime | None = None) -> list[Sample]:
        """Samples from `since` on (and the last one before it, so windows can be
        interpolated at their start), oldest first."""
        end = _ms(until) if until else 2**62
        rows = self._all(
            """
            SELECT * FROM (SELECT * FROM samples WHERE ts < ? ORDER BY ts DESC LIMIT 1) AS b
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

    def key_samples_since(self, since: datetime) -> dict[str, list[KeySample]]:
        """The key samples stored at or after `since`, by key, oldest first (a follower's
        catch-up: what the leader added; nothing before, unlike key_history)."""
        rows = self._all("SELECT * FROM key_samples WHERE ts >= ? ORDER BY hash, ts", (_ms(since),))
        return _by_key(rows)

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
        return _by_key(rows)

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

    def permit_decided(self) -> tuple[tuple[str, ...], datetime | None]:
        """The causes of the saved permit state's revocation, and the operator's `arm`
        the decision took into account (None: none, or before this was recorded)."""
        saved = self._meta("permit")
        causes = saved.get("causes")
        return (
            tuple(str(c) for c in causes) if isinstance(causes, list) else (),
            _iso_or_none(saved.get("seen_arm")),
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
    # The courier's side: each call is its own small transaction. A message is
    # undelivered while it is 'pending' or 'sending' (claimed by an instance that is
    # sending it, see claim).

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
            f"""
            SELECT COUNT(*) AS n FROM outbox WHERE {_UNDELIVERED} AND target IN (
                SELECT target FROM outbox WHERE next_attempt_at <= ? AND {_UNCLAIMED} AND id IN (
                    SELECT MIN(id) FROM outbox WHERE {_UNDELIVERED} GROUP BY target))
            """,  # noqa: S608 - a constant of ours
            (_ms(now), _ms(now)),
        )
        return int(row["n"]) if row else 0

    def pending_targets(self, due_at: datetime | None = None) -> list[str]:
        """The targets with undelivered messages; with `due_at`, only those whose oldest
        pending message is due then (messages go out in order, so only it can be sent)."""
        if due_at is not None:
            heads = self._all(
                f"""
                SELECT target FROM outbox WHERE next_attempt_at <= ? AND {_UNCLAIMED} AND id IN (
                    SELECT MIN(id) FROM outbox WHERE {_UNDELIVERED} GROUP BY target)
                ORDER BY id
                """,  # noqa: S608 - a constant of ours
                (_ms(due_at), _ms(due_at)),
            )
            return [r["target"] for r in heads]
        rows = self._all(f"SELECT DISTINCT target FROM outbox WHERE {_UNDELIVERED}")  # noqa: S608
        return [r["target"] for r in rows]

    def target_health(self) -> dict[str, TargetHealth]:
        rows = self._all("SELECT * FROM target_health")
        pending = {
            r["target"]: r["n"]
            for r in self._all(
                f"SELECT target, COUNT(*) AS n FROM outbox WHERE {_UNDELIVERED} GROUP BY target"  # noqa: S608
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

    def claim(
        self, message_id: int, by: str, now: datetime, hold: timedelta
    ) -> OutboxMessage | None:
        """Claim a message for sending, for `hold` from `now`; the message, or None when it
        is not to be had (sent, given up, not due, or claimed by someone else until later).

        One conditional UPDATE, the pattern healthchecks' workers use: of several instances
        claiming at once, the one whose update changed the row sends the message, and the
        others leave it. The sender then marks it sent (or failed, which releases it). A
        claim that is never marked (its instance died) runs out after `hold` and the
        message is claimed again: delivery is at-least-once. A message goes out twice
        only if its sender dies between the transport's success and the commit of
        `mark_sent` (a few milliseconds), or a send outlasts `hold` (so `hold` should be
        well above the transport's timeout and the hosts' clock difference: `now` is the
        claimer's clock)."""
        with self._mutex, self._errors():
            changed = self._db.run(
                "UPDATE outbox SET state = 'sending', claimed_by = ?, claimed_until = ? "
                "WHERE id = ? AND next_attempt_at <= ? AND (state = 'pending' OR "
                "(state = 'sending' AND claimed_until <= ?))",
                (by, _ms(now + hold), message_id, _ms(now), _ms(now)),
            )
            if changed != 1:
                return None
            row = self._db.one("SELECT * FROM outbox WHERE id = ?", (message_id,))
        return _message(row) if row is not None else None

    def claim_next(
        self, target: str, by: str, now: datetime, hold: timedelta
    ) -> OutboxMessage | None:
        """Claim the oldest undelivered message for `target` if it is due and nobody else
        holds it (see claim); None otherwise. Messages keep their order: while the oldest
        one is claimed by someone else, none of the target's messages are to be had."""
        head = self._one(
            f"SELECT * FROM outbox WHERE {_UNDELIVERED} AND target = ? ORDER BY id LIMIT 1",  # noqa: S608
            (target,),
        )
        if head is None or head["next_attempt_at"] > _ms(now):
            return None
        if head["state"] == "sending" and (head["claimed_until"] or 0) > _ms(now):
            return None
        return self.claim(head["id"], by, now, hold)

    # -- leadership ------------------------------------------------------------------

    def lease(self) -> Lease | None:
        """The leader's lease as the database holds it (None: nobody ever led)."""
        with self._mutex, self._errors():
            return _lease(self._db, self._db.clock_ms())

    # -- reservations ----------------------------------------------------------------

    def holds(self, now: datetime) -> list[StoredHold]:
        """Every reservation still running at `now`, the soonest to expire first."""
        rows = self._all("SELECT * FROM holds WHERE until > ? ORDER BY until, id", (_ms(now),))
        return [_stored_hold(r) for r in rows]


class Unit:
    """The writes of one transaction (see Store.unit). Every time is passed in."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- leadership ------------------------------------------------------------------

    def fence(self, holder: str, term: int) -> None:
        """Go on only if `holder` leads in `term` with its lease still running (on the
        database's clock); otherwise raise LeadershipLost, and the unit rolls back. A
        leader checks its term first in each of its units: units are serialised (and a
        new term begins in one), so every write of term n commits before term n + 1
        begins, and none of a deposed leader's after. On SQLite there is nothing to check:
        one daemon per file, the lock file is its fence."""
        if self.db.engine == "sqlite":
            return
        lease = _lease(self.db, self.db.clock_ms())
        if lease is None or lease.holder != holder or lease.term != term or not lease.live:
            current = lease.holder if lease and lease.live else "nobody"
            raise LeadershipLost(
                f"{holder} no longer leads (its term {term} is over; {current} leads now): "
                "its writes are refused"
            )

    def take_lease(self, holder: str, lease: timedelta) -> Lease:
        """Renew `holder`'s live lease, or take the lease when it ran out (or was never
        taken): until the database's clock + `lease`. A new holder begins a new term (so
        does a holder whose lease ran out meanwhile). Return the lease as it is now
        (someone else's while theirs is live)."""
        now = self.db.clock_ms()
        until = now + int(lease.total_seconds() * 1000)
        held = _lease(self.db, now)
        if held is None:
            self.db.run(
                "INSERT INTO leader (id, holder, term, since, expires_at) VALUES (1, ?, 1, ?, ?)",
                (holder, now, until),
            )
        elif held.live and held.holder == holder:
            self.db.run("UPDATE leader SET expires_at = ? WHERE id = 1", (until,))
        elif not held.live:
            self.db.run(
                "UPDATE leader SET holder = ?, term = term + 1, since = ?, expires_at = ? "
                "WHERE id = 1",
                (holder, now, until),
            )
        found = _lease(self.db, now)
        assert found is not None
        return found

    def clock_ms(self) -> int:
        """The database's clock (milliseconds since the epoch)."""
        return self.db.clock_ms()

    def read_lease(self) -> Lease | None:
        """The lease as it is (None: nobody ever led)."""
        return _lease(self.db, self.db.clock_ms())

    def release_lease(self, holder: str, term: int) -> bool:
        """End `holder`'s lease of `term` now (a leader stepping down), so another instance
        takes over at its next attempt instead of waiting for the lease to run out."""
        return (
            self.db.run(
                "UPDATE leader SET expires_at = ? WHERE id = 1 AND holder = ? AND term = ?",
                (self.db.clock_ms(), holder, term),
            )
            > 0
        )

    # -- reservations ----------------------------------------------------------------

    def holds(self, now: datetime) -> list[StoredHold]:
        """The reservations running at `now` (by the database's clock on PostgreSQL, see
        expire_holds), inside this unit (so a check and the hold it allows are one
        transaction: units are serialised)."""
        clock = self.db.clock_ms() if self.db.engine != "sqlite" else _ms(now)
        rows = self.db.all("SELECT * FROM holds WHERE until > ? ORDER BY until, id", (clock,))
        return [_stored_hold(r) for r in rows]

    def add_hold(self, hold: StoredHold) -> None:
        self.db.run(
            "INSERT INTO holds (id, amount, until, label, key_hash, made_by) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (hold.id, hold.amount, _ms(hold.until), hold.label, hold.key, hold.made_by),
        )

    def release_hold(self, hold_id: str) -> bool:
        return self.db.run("DELETE FROM holds WHERE id = ?", (hold_id,)) > 0

    def expire_holds(self, now: datetime) -> int:
        """Remove the holds that ran out, by the database's clock (one clock for every
        host: a host whose clock runs ahead must not end others' holds early); `now` is
        the caller's, used only on SQLite's one host."""
        clock = self.db.clock_ms() if self.db.engine != "sqlite" else _ms(now)
        return self.db.run("DELETE FROM holds WHERE until <= ?", (clock,))

    # -- samples ---------------------------------------------------------------------

    def add_samples(self, samples: Sequence[Sample]) -> None:
        """Keep polls' samples. A sample at an existing timestamp replaces it."""
        self.db.run_many(
            _SAMPLE_UPSERT,
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
        # The bucket is cast so that both engines divide integers (and drop the rest).
        removed = self.db.run(
            """
            DELETE FROM samples WHERE ts < ? AND ts NOT IN (
                SELECT MIN(ts) FROM samples WHERE ts < ? GROUP BY ts / CAST(? AS INTEGER)
            )
            """,
            (cutoff, cutoff, THIN_BUCKET_MS),
        )
        return removed + self.db.run(
            """
            DELETE FROM key_samples WHERE ts < ? AND (hash, ts) NOT IN (
                SELECT hash, MIN(ts) FROM key_samples WHERE ts < ?
                GROUP BY hash, ts / CAST(? AS INTEGER)
            )
            """,
            (cutoff, cutoff, THIN_BUCKET_MS),
        )

    # -- keys ------------------------------------------------------------------------

    def add_key_samples(self, samples: Sequence[KeySample]) -> None:
        """Keep keys' samples. A sample at an existing (hash, timestamp) replaces it."""
        self.db.run_many(
            _KEY_SAMPLE_UPSERT,
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
        self.db.run_many(
            _KEY_UPSERT,
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
        self.db.run(
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
        self.db.run(_META_UPSERT, (key, json.dumps(value)))

    def save_permit(
        self,
        state: PermitState,
        watched: WatchedKey,
        at: datetime | None = None,
        causes: Sequence[str] = (),
        seen_arm: datetime | None = None,
    ) -> None:
        """The permit's state as decided at `at` (the deciding tick's time), the rules
        that caused a revocation ("manual" for a trip, "latch" for a latch), and the
        operator's last `arm` that decision took into account."""
        self._set_meta(
            "permit",
            {
                "decided_at": at.isoformat() if at else None,
                "causes": list(causes),
                "seen_arm": seen_arm.isoformat() if seen_arm else None,
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
        self.db.run("DELETE FROM alerts")
        self.db.run_many(
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
        self.db.run(
            _SILENCE_UPSERT,
            (silence.rule, _ms(silence.until), silence.reason, _ms(silence.created_at or now)),
        )

    def remove_silence(self, rule: str) -> bool:
        return self.db.run("DELETE FROM silences WHERE rule = ?", (rule,)) > 0

    # -- permit ----------------------------------------------------------------------

    def audit(self, change: PermitChange) -> None:
        """Record a permit transition."""
        self.db.run(
            "INSERT INTO permit_audit (at, state, actor, reason) VALUES (?,?,?,?)",
            (_ms(change.at), change.state, change.by, change.reason),
        )

    def record_disabled(self, key_hash: str, name: str, at: datetime, reason: str) -> None:
        self.db.run(
            _DISABLED_UPSERT,
            (key_hash, name, _ms(at), reason),
        )

    def forget_disabled(self, key_hash: str) -> None:
        self.db.run("DELETE FROM disabled_keys WHERE hash = ?", (key_hash,))

    # -- prices ----------------------------------------------------------------------

    def save_prices(self, prices: Sequence[ModelPrices]) -> None:
        """Replace the cached prices of these models (their listed price and endpoints)."""
        for model in prices:
            self.db.run("DELETE FROM prices WHERE model = ?", (model.model,))
            rows = [("", "", model.listed)] + [
                (e.tag, e.provider, e.price) for e in model.endpoints
            ]
            seen: set[str] = set()
            for endpoint, provider, price in rows:
                tag = endpoint if endpoint or provider == "" else provider
                if tag in seen:
                    continue  # one row per endpoint: the first listed
                seen.add(tag)
                self.db.run(
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
        self.db.run_many(
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

    def release_claims(self, prefix: str | None) -> int:
        """End the claims of instances whose name starts with `prefix` (None: every
        claim; one host on SQLite): at start, a message this host was sending when it
        stopped is sent again (at least once), now rather than when the claim runs out."""
        sql = (
            "UPDATE outbox SET state = 'pending', claimed_by = NULL, claimed_until = NULL "
            "WHERE state = 'sending'"
        )
        if prefix is None:
            return self.db.run(sql)
        return self.db.run(sql + " AND substr(claimed_by, 1, ?) = ?", (len(prefix), prefix))

    def retry_pending_now(self, now: datetime) -> int:
        """Make every pending message due now (at start: the restart may be the fix)."""
        return self.db.run(
            "UPDATE outbox SET next_attempt_at = ? WHERE state = 'pending' AND next_attempt_at > ?",
            (_ms(now), _ms(now)),
        )

    def mark_sent(self, message_id: int, target: str, now: datetime) -> None:
        self.db.run(
            "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1, "
            "claimed_until = NULL WHERE id = ?",
            (_ms(now), message_id),
        )
        self.db.run(
            "INSERT INTO target_health (target, sent, last_ok) VALUES (?, 1, ?) "
            "ON CONFLICT (target) DO UPDATE SET sent = target_health.sent + 1, "
            "last_ok = excluded.last_ok",
            (target, _ms(now)),
        )

    def mark_failed(
        self, message_id: int, target: str, now: datetime, error: str, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt; `retry_at` None gives the message up for good. A claim
        on the message ends (it is pending again, for whoever claims it when it is due)."""
        self.db.run(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
            "state = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ?",
            (error, _ms(retry_at or now), "pending" if retry_at else "failed", message_id),
        )
        self.db.run(
            "INSERT INTO target_health (target, failed, last_error, last_error_at) "
            "VALUES (?, 1, ?, ?) ON CONFLICT (target) DO UPDATE SET "
            "failed = target_health.failed + 1, "
            "last_error = excluded.last_error, last_error_at = excluded.last_error_at",
            (target, error, _ms(now)),
        )


def _stored_hold(r: Row) -> StoredHold:
    return StoredHold(
        r["id"], float(r["amount"]), _dt(r["until"]), r["label"], r["key_hash"], r["made_by"]
    )


def _message(r: Row) -> OutboxMessage:
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
        claimed_by=r["claimed_by"],
        claimed_until=_dt_or_none(r["claimed_until"]),
    )


def _price(r: Row) -> Price | None:
    if r["prompt"] is None or r["completion"] is None:
        return None
    return Price(r["prompt"], r["completion"], r["cache_read"])


def _seen(at: datetime | None) -> datetime:
    if at is None:
        raise ValueError("a key is saved with the time it was seen")
    return at


def _known_key(r: Row) -> KnownKey:
    return KnownKey(
        hash=r["hash"],
        name=r["name"],
        label=r["label"],
        workspace_id=r["workspace_id"],
        first_seen=_dt(r["first_seen"]),
        last_seen=_dt(r["last_seen"]),
        deleted_at=_dt_or_none(r["deleted_at"]),
    )


def _by_key(rows: Sequence[Row]) -> dict[str, list[KeySample]]:
    """Key sample rows (ordered by hash, then time) by key."""
    found: dict[str, list[KeySample]] = {}
    for row in rows:
        found.setdefault(row["hash"], []).append(_key_sample(row))
    return found


def _key_sample(r: Row) -> KeySample:
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


def _sample(r: Row) -> Sample:
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


def _lease(db: Database, now: int) -> Lease | None:
    row = db.one("SELECT holder, term, since, expires_at FROM leader WHERE id = 1")
    if row is None:
        return None
    return Lease(row["holder"], row["term"], _dt(row["since"]), _dt(row["expires_at"]), _dt(now))


def _upsert(table: str, key: tuple[str, ...], columns: tuple[str, ...]) -> str:
    """INSERT … ON CONFLICT (key) DO UPDATE, setting every column: what SQLite's INSERT OR
    REPLACE did here, in the words both engines speak."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "  # noqa: S608 - our own names
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


_SAMPLE_UPSERT = _upsert(
    "samples",
    ("ts",),
    (
        "ts", "usage", "usage_daily", "usage_weekly", "usage_monthly", "balance",
        "total_credits", "key_limit", "key_limit_remaining", "byok_usage", "byok_usage_daily",
        "byok_usage_monthly", "byok_counted",
    ),
)  # fmt: skip
_KEY_SAMPLE_UPSERT = _upsert(
    "key_samples",
    ("hash", "ts"),
    (
        "hash", "ts", "usage", "usage_daily", "usage_weekly", "usage_monthly", "key_limit",
        "key_limit_remaining", "limit_reset", "disabled",
    ),
)  # fmt: skip
_KEY_UPSERT = _upsert(
    "keys",
    ("hash",),
    ("hash", "name", "label", "workspace_id", "first_seen", "last_seen", "deleted_at"),
)
_META_UPSERT = _upsert("meta", ("key",), ("key", "value"))
_SILENCE_UPSERT = _upsert("silences", ("rule",), ("rule", "until", "reason", "created_at"))
_DISABLED_UPSERT = _upsert("disabled_keys", ("hash",), ("hash", "name", "disabled_at", "reason"))
