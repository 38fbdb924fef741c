"""The two database engines under the store, behind one small interface: SQLite (embedded,
one host, the default) and PostgreSQL (shared by several instances, through psycopg 3).

The store writes its SQL once, in what both engines speak: `?` placeholders, upserts as
INSERT … ON CONFLICT … DO UPDATE, every time as integer milliseconds. What differs lives
here, each in one place:

- placeholders: `?` is `%s` for psycopg;
- column types in migrations: SQLite's INTEGER (64-bit there) is BIGINT, its REAL (a
  double) is DOUBLE PRECISION, and `INTEGER PRIMARY KEY AUTOINCREMENT` an identity column;
  a `WITHOUT ROWID` table is a plain one (its primary key's index orders it);
- where the schema version is kept: `PRAGMA user_version`, or a `schema_version` table;
- how a unit of work begins. SQLite: BEGIN IMMEDIATE, which takes the file's one writer
  lock. PostgreSQL: BEGIN, then `pg_advisory_xact_lock(UNIT_LOCK)`, the same lock for
  every instance on the database, released by COMMIT or ROLLBACK (or the session's end).
  Units are serialised exactly as on SQLite, and reads never wait for them (MVCC).
  SERIALIZABLE with retries was the alternative: a unit's body is the caller's code, which
  the store cannot re-run, and units are a few milliseconds long, so the lock it is;
- the clock a leader's lease is judged by: the PostgreSQL server's, one clock for all
  instances however far apart their own clocks are;
- which exceptions are the engine's, and how they read without a password.

A PostgreSQL session is set up to fail rather than hang: a connection attempt gives up
after CONNECT_TIMEOUT_S, a statement waiting for a lock after LOCK_TIMEOUT, a session left
idle inside a transaction (a hung process) is ended by the server after IDLE_IN_TRANSACTION
(its locks with it), and TCP keepalives on both sides find a peer that vanished (a network
cut) within about twenty seconds. Any of these can be changed in the URL (libpq's
parameters, or `options=-c …`).
"""

from __future__ import annotations

import re
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import DictRow

# The advisory lock every unit of work takes on PostgreSQL (an arbitrary number, ours:
# "bwdg" in ASCII). Advisory locks are per database, so deployments in other databases
# of the same server do not meet it.
UNIT_LOCK = 0x62776467
CONNECT_TIMEOUT_S = 5
# A unit waits for the units' lock as long as SQLite waits for its file (busy timeout):
# longer than the server lets a hung holder idle inside its transaction, so that a unit
# queued behind a hung process gets through once the server has ended that session.
LOCK_TIMEOUT = "10s"
IDLE_IN_TRANSACTION = "5s"  # our units take milliseconds between their statements
# libpq's side of a vanished server: probes after 10 s idle, every 3 s, 3 misses; unacked
# data for 20 s ends the connection.
CLIENT_DEFAULTS: dict[str, str] = {
    "connect_timeout": str(CONNECT_TIMEOUT_S),
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "3",
    "keepalives_count": "3",
    "tcp_user_timeout": "20000",
    "application_name": "budget-watchdog",
}
# The server's side: a vanished client, a hung one inside a transaction.
SESSION_OPTIONS = (
    f"-c lock_timeout={LOCK_TIMEOUT} "
    f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION} "
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=3 -c tcp_keepalives_count=3"
)
MASK = "***"


class Row(Protocol):
    """A row read by column name (sqlite3.Row, or psycopg's dict row)."""

    def __getitem__(self, key: str, /) -> Any: ...


class Unreachable(Exception):
    """The database cannot be opened; the message says why, without any password."""


def is_postgres_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def url_problem(url: str) -> str | None:
    """Why libpq would not use `url` (a postgresql:// URL), in words without its password;
    None when it reads it. Checked when the config loads, so a URL libpq refuses is a
    config error (exit 2), not a failure of the daemon's start."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(url)
    except Error as exc:
        first = (str(exc).splitlines() or ["not a URL libpq reads"])[0]
        for secret in [*url_secrets(url), url]:
            first = first.replace(secret, MASK)
        return f"libpq cannot read it: {first}"
    port = str(given.get("port") or "")
    if port and not all(p.isdigit() and 0 < int(p) < 65536 for p in port.split(",")):
        return f"port {port} is not a port (1-65535)"
    mode = given.get("sslmode")
    if mode is not None and mode not in SSL_MODES:
        return f"sslmode {mode!r} is not one of {', '.join(SSL_MODES)}"
    return None


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """(scheme://, user part, rest) of a URL with a user part, else None. The user part
    runs to the LAST "@" of the URL: libpq reads a password holding an unencoded ?, # or
    @ (urlsplit would cut it there and show the rest), so every character up to the last
    "@" is taken as possibly the password's — masking too much is harmless, too little
    is not."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return None
    userinfo, _, hosts = rest.rpartition("@")
    return scheme + sep, userinfo, hosts


def mask_url(url: str) -> str:
    """`url` with its password (in the user part or a `password=` parameter) replaced by
    ***, for messages, logs and check-config."""
    split = _split_userinfo(url)
    if split is not None:
        head, userinfo, rest = split
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        url = f"{head}{userinfo}@{rest}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def url_secrets(url: str) -> list[str]:
    """Every form of the password in `url` (as written and decoded), longest first."""
    found: set[str] = set()
    split = _split_userinfo(url)
    if split is not None and ":" in split[1]:
        found.add(split[1].split(":", 1)[1])
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "password":
            found.add(value)
            found.add(quote(value, safe=""))
    found |= {unquote(s) for s in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return " ".join(text.split())


def _statements(script: str) -> list[str]:
    # Migrations are ours and simple: statements never contain a ';' inside a literal.
    return [s.strip() for s in script.split(";") if s.strip() and not _only_comments(s)]


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())


class Database(ABC):
    """One connection to one engine. Not thread-safe by itself: the store serialises it."""

    engine: str
    shown: str  # where the state is, for messages: the path, or the URL without password
    errors: tuple[type[Exception], ...]

    @abstractmethod
    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Execute one statement; the engine's own cursor (tests tune the session with it)."""

    @abstractmethod
    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None: ...

    @abstractmethod
    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Execute a statement that changes rows; how many it changed."""

    @abstractmethod
    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    def transaction(self) -> Any:
        """A context manager: one transaction, the engine's single-writer lock taken;
        COMMIT at the end, ROLLBACK on any exception."""

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def set_schema_version(self, version: int) -> None:
        """Record the schema version (inside the migration's transaction)."""

    @abstractmethod
    def migration(self, script: str) -> list[str]:
        """A migration script (written for SQLite) as this engine's statements."""

    @abstractmethod
    def clock_ms(self) -> int:
        """The database's clock, in milliseconds since the epoch."""

    @abstractmethod
    def unavailable(self, exc: BaseException) -> bool:
        """Whether `exc` means the database cannot be reached (rather than refused a
        statement)."""

    @abstractmethod
    def describe(self, exc: BaseException) -> str:
        """The error as one line, without any secret."""

    @abstractmethod
    def close(self) -> None: ...


class SQLite(Database):
    """The state file: WAL, synchronous=FULL, one writer at a time (BEGIN IMMEDIATE)."""

    engine = "sqlite"
    errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown = str(path)
        self._db = sqlite3.connect(
            str(path), timeout=10.0, isolation_level=None, check_same_thread=False
        )
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed outbox row or alert state survives a crash at any moment.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error:
            self._db.close()
            raise

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, args)

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
        return row

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return list(self._db.execute(sql, args).fetchall())

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, args).rowcount

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back already (a full disk)
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def schema_version(self) -> int:
        row = self._db.execute("PRAGMA user_version").fetchone()
        return int(row[0]) if row else 0

    def set_schema_version(self, version: int) -> None:
        self._db.execute(f"PRAGMA user_version = {int(version)}")

    def migration(self, script: str) -> list[str]:
        return _statements(script)

    def clock_ms(self) -> int:
        return int(time.time() * 1000)

    def unavailable(self, exc: BaseException) -> bool:
        return False  # a file is there or not: the store says so when it opens it

    def describe(self, exc: BaseException) -> str:
        return str(exc)

    def close(self) -> None:
        self._db.close()


# Migrations are written in SQLite's words; these make them PostgreSQL's (whole words,
# upper case: the scripts' comments are lower case).
_PG_TYPES = (
    (
        re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    # A table clustered on its primary key in SQLite; a heap with that key's index here.
    (re.compile(r"\)\s*WITHOUT ROWID\b"), ")"),
)


def postgres_ddl(script: str) -> list[str]:
    """A migration script written for SQLite, as PostgreSQL statements."""
    out = []
    for statement in _statements(script):
        for pattern, replacement in _PG_TYPES:
            statement = pattern.sub(replacement, statement)
        out.append(statement)
    return out


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    # Our statements have no '?' or '%' inside literals.
    return sql.replace("%", "%%").replace("?", "%s")


class PostgreSQL(Database):
    """A session on a PostgreSQL server, opened again after the server went away (the
    statement that met the loss fails; a read is retried once on the new session)."""

    engine = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        self.errors = (psycopg.Error,)
        self.shown = mask_url(url)
        self._secrets = [*url_secrets(url), url]
        self._url = url
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise Unreachable(f"the PostgreSQL URL {self.shown} is not valid: "
                              f"{self.describe(exc)}") from None  # fmt: skip
        self._params: dict[str, Any] = {k: v for k, v in CLIENT_DEFAULTS.items() if k not in given}
        self._params["options"] = f"{SESSION_OPTIONS} {given.get('options') or ''}".strip()
        self._conn: psycopg.Connection[DictRow] | None = None
        self._in_transaction = False
        try:
            self._connection()
        except psycopg.Error as exc:
            raise Unreachable(f"cannot reach PostgreSQL at {self.shown}: "
                              f"{self.describe(exc)}") from None  # fmt: skip

    def _connection(self) -> psycopg.Connection[DictRow]:
        import psycopg
        from psycopg.rows import dict_row

        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if self._in_transaction:
            # Never carry a transaction's remaining statements over to a new session.
            raise psycopg.OperationalError("the connection was lost inside a transaction")
        self._drop()
        self._conn = psycopg.connect(
            self._url, autocommit=True, row_factory=dict_row, **self._params
        )
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(Exception):  # closing a broken session: nothing to say
                self._conn.close()
            self._conn = None

    def _execute(self, sql: str, args: Sequence[Any], *, retry: bool) -> psycopg.Cursor[DictRow]:
        import psycopg

        conn = self._connection()
        try:
            return conn.execute(_pg_sql(sql), args)
        except psycopg.OperationalError:
            if not (conn.closed or conn.broken):
                raise
            self._drop()
            if not retry or self._in_transaction:
                raise
        # The session was gone (the server restarted, or a cut ended it): once more on a
        # new one. Only reads come here: a write may have been applied before the loss.
        return self._connection().execute(_pg_sql(sql), args)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor[DictRow]:
        return self._execute(sql, args, retry=False)

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        return self._execute(sql, args, retry=True).fetchone()

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return list(self._execute(sql, args, retry=True).fetchall())

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._execute(sql, args, retry=False).rowcount

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        # One statement per row, not psycopg's executemany: its pipeline leaves the
        # session so that the server no longer ends it when it idles in a transaction
        # (seen with PostgreSQL 15), and that is what frees the locks of a hung process.
        for row in rows:
            self._execute(sql, row, retry=False)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self._connection()
        self._in_transaction = True
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (UNIT_LOCK,))
            yield
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise
        finally:
            self._in_transaction = False

    def _rollback(self, conn: psycopg.Connection[DictRow]) -> None:
        import psycopg

        if conn.closed or conn.broken:
            self._drop()  # the server rolls back what it had
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            self._drop()

    def schema_version(self) -> int:
        # Read pg_tables in this statement's snapshot, not through to_regclass: a session
        # that waited for another's migration may still hold a cached "no such table".
        found = self.one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = "
            "'schema_version' AND schemaname = current_schema()) AS present"
        )
        if found is None or not found["present"]:
            return 0
        row = self.one("SELECT version FROM schema_version WHERE id = 1")
        return int(row["version"]) if row else 0

    def set_schema_version(self, version: int) -> None:
        self.run(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
        )
        self.run(
            "INSERT INTO schema_version (id, version) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            (version,),
        )

    def migration(self, script: str) -> list[str]:
        return postgres_ddl(script)

    def clock_ms(self) -> int:
        row = self.one("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now")
        assert row is not None
        return int(row["now"])

    def unavailable(self, exc: BaseException) -> bool:
        import psycopg

        if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
            return False  # the server answered: it is busy, not gone
        conn = self._conn
        return isinstance(exc, psycopg.OperationalError) and (
            conn is None or conn.closed or bool(conn.broken)
        )

    def describe(self, exc: BaseException) -> str:
        return _scrub(str(exc), self._secrets)

    def close(self) -> None:
        self._drop()
