"""A throwaway PostgreSQL server for tests: a real server, never a mock of one.

`initdb` into a temporary directory and `pg_ctl start` on a free 127.0.0.1 port, once per
test session, the first time a test asks for it, with one database owned by a role with a
password (so URLs look like real ones and their masking can be checked). Every test gets a
schema of its own in it, named in its URL's search_path: a new schema takes milliseconds
where `CREATE DATABASE` takes a few hundred on a busy machine (`create_database` is there
for a test that needs a whole database). Advisory locks are per database, which is fine:
tests run one at a time. The server
runs with fsync off: a crash of the machine may lose it, and that is all right here.

The binaries are looked for on PATH, then in /usr/lib/postgresql/<version>/bin, where
Debian's `postgresql` package puts them (`.ci/run` installs it). Without them every test
that asks for a server is skipped, with the reason. initdb refuses to run as root: as root,
the server runs as the `postgres` user (Debian's package creates it), or `nobody`.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROLE = "watchdog"
PASSWORD = "pg-s3cret-Zq7"  # so tests can check it never appears in any message
SUPERUSER = "postgres"
_TOOLS = ("initdb", "pg_ctl")


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: PATH first, then Debian's versioned
    directories, newest first; None when there is none."""
    found = [shutil.which(tool) for tool in _TOOLS]
    if all(found):
        dirs = {Path(str(path)).resolve().parent for path in found}
        if len(dirs) == 1:
            return dirs.pop()
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in _TOOLS):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _server_user() -> str | None:
    """Who runs the server: ourselves, or (as root, which initdb refuses) `postgres` or
    `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, and neither a postgres nor a nobody user exists")


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in `root`, listening on 127.0.0.1:`port` and on a unix
    socket in `root` (the superuser's way in, with trust; every TCP login needs a
    password)."""

    bindir: Path
    root: Path
    port: int = 0
    user: str | None = None
    running: bool = False
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
            if runuser is None:
                raise RuntimeError(
                    "running as root, and no runuser to run PostgreSQL as another user"
                )
            command = [runuser, "-u", self.user, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}\n{log}"
            )
        return done

    def init(self) -> None:
        self.user = _server_user()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)
        self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        """Start the server (again, on the same port after `stop`)."""
        if self.running:
            return
        if not self.port:
            self.port = _free_port()
        options = " ".join(
            (
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=60",
                "-c shared_buffers=32MB",
            )
        )
        self._run(
            "pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
            "-o", options,
        )  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`immediate`: as if it crashed). Clients see their
        connections closed; new ones are refused until `start`."""
        if not self.running:
            return
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30")
        self.running = False

    def admin(self, dbname: str = "postgres") -> str:
        """A conninfo string for the superuser, through the unix socket."""
        return f"host={self.root} port={self.port} user={SUPERUSER} dbname={dbname}"

    def url(self, dbname: str = ROLE, password: str = PASSWORD, schema: str = "") -> str:
        """The test role's URL for `dbname` (with `schema` first on its search_path)."""
        url = f"postgresql://{ROLE}:{password}@127.0.0.1:{self.port}/{dbname}"
        return f"{url}?options=-csearch_path%3D{schema}" if schema else url

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.admin(dbname), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self) -> str:
        """A fresh, empty database owned by the test role; its name."""
        name = f"test_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name} OWNER {ROLE} TEMPLATE template0")
        return name

    def create_schema(self) -> str:
        """A fresh, empty schema owned by the test role, in its database; its name."""
        name = f"test_{next(self._names)}"
        self.execute(f"CREATE SCHEMA {name} AUTHORIZATION {ROLE}", ROLE)
        return name

    def drop_database(self, name: str) -> None:
        if self.running:
            self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    """A new cluster, started, with the test role; the caller removes it."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) are not on PATH nor in "
            "/usr/lib/postgresql/*/bin: install Debian's postgresql package (.ci/run does)"
        )
    # Not under pytest's tmp_path: its parents are private to us, and the server may run
    # as another user.
    server = PostgresServer(bindir, Path(tempfile.mkdtemp(prefix="watchdog-pg-")))
    try:
        server.init()
        for attempt in range(3):  # a free port can be taken between the probe and the bind
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                server.port = 0
        server.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        server.execute(f"CREATE DATABASE {ROLE} OWNER {ROLE} TEMPLATE template0")
    except BaseException:
        server.remove()
        raise
    return server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use, removed at the end)."""
    server = start_server()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL (with the role's password) of a fresh, empty schema of this test's own. A
    test that stopped the server gets it started again afterwards."""
    pg_server.start()
    try:
        yield pg_server.url(schema=pg_server.create_schema())
    finally:
        pg_server.start()


def wait_until(predicate: object, timeout: float, every: float = 0.05) -> float:
    """Poll `predicate` (a callable) until it is true; the seconds it took. Fails the
    test at `timeout`."""
    assert callable(predicate)
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not true within {timeout} s")
        time.sleep(every)
    return time.monotonic() - started
