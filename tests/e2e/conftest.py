"""The real daemon process against a fake OpenRouter on 127.0.0.1.

The state is SQLite by default. With `WATCHDOG_TEST_STATE=postgresql` in the environment
(`make test-pg`), `base_config` puts the state in PostgreSQL instead: a fresh schema of the
session's throwaway server (tests/pg.py) for each test, the same one for every config a test
builds (a restart finds its state). Tests that read the SQLite file itself skip there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_openrouter import API_KEY, MANAGEMENT_KEY, FakeOpenRouter
from tests.pg import PASSWORD, PostgresServer
from watchdog.store import Store

# Read when the tests are collected: the autouse clean_environment fixture removes every
# WATCHDOG_* variable before a test runs (and DaemonProcess keeps them from the daemon).
STATE_BACKEND = os.environ.get("WATCHDOG_TEST_STATE", "sqlite").strip().lower() or "sqlite"
if STATE_BACKEND not in ("sqlite", "postgresql"):
    raise ValueError(f"WATCHDOG_TEST_STATE={STATE_BACKEND!r}: say sqlite or postgresql")
ON_POSTGRES = STATE_BACKEND == "postgresql"
# Tests about the SQLite file itself, skipped on PostgreSQL with their reason.
SQLITE_ONLY: dict[str, str] = {
    "test_crash.py::test_a_few_random_kills": "it checks the SQLite file's integrity",
    "test_crash.py::test_a_hundred_random_kills": "it checks the SQLite file's integrity",
    "test_fail_closed.py::test_a_full_disk_at_start_is_one_clear_line": "a full disk under the "
    "SQLite file",
    "test_fail_closed.py::test_a_disk_that_fills_mid_run_is_critical_with_its_cause": "a full "
    "disk under the SQLite file",
    "test_fail_closed.py::test_a_second_daemon_on_a_symlink_to_the_state_is_refused": "the "
    "SQLite file's lock (on PostgreSQL a second instance is welcome: it follows)",
    "test_run.py::test_a_second_daemon_on_the_same_state_refuses_to_start": "the SQLite file's "
    "lock (on PostgreSQL a second instance is welcome: it follows)",
    "test_fail_closed.py::test_corrupt_saved_reservations_stop_the_start_with_one_line": "the "
    "reservations file beside the SQLite state (on PostgreSQL they are in the database)",
}
_shared: dict[str, Any] = {}  # this test's server and {tmp_path: schema URL}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not ON_POSTGRES:
        return
    for item in items:
        where, _, name = item.nodeid.partition("tests/e2e/")[2].partition("::")
        reason = SQLITE_ONLY.get(f"{where}::{name.partition('[')[0]}")
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


@pytest.fixture(autouse=True)
def state_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    """On PostgreSQL: the session's server, running, for base_config to make schemas in."""
    if not ON_POSTGRES:
        yield
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    server.start()
    _shared.update(server=server, urls={})
    try:
        yield
    finally:
        _shared.clear()
        server.start()  # a test that stopped it leaves it running for the next


def state_url(tmp_path: Path) -> str:
    """The PostgreSQL URL (with its password) of this test's schema (made on first use)."""
    server: PostgresServer | None = _shared.get("server")
    if server is None:
        raise RuntimeError("no PostgreSQL server: WATCHDOG_TEST_STATE is not postgresql")
    urls: dict[Path, str] = _shared["urls"]
    if tmp_path not in urls:
        urls[tmp_path] = server.url(schema=server.create_schema())
    return urls[tmp_path]


def open_state(tmp_path: Path) -> Store:
    """The state base_config gives the daemon, opened as the daemon opens it: the SQLite
    file, or this test's PostgreSQL schema."""
    target = state_url(tmp_path) if ON_POSTGRES else tmp_path / "state" / "state.db"
    return Store.open(target)


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    server = FakeOpenRouter().start()
    yield server
    server.stop()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A budget-watchdog command against `config`, as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "watchdog", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


class DaemonProcess:
    """`budget-watchdog run` as a child process, its stdout collected as JSON lines."""

    def __init__(
        self,
        workdir: Path,
        config_text: str,
        env: dict[str, str] | None = None,
        name: str = "daemon",
    ) -> None:
        self.workdir = workdir
        self.config = workdir / "watchdog.toml"
        self.config.write_text(config_text)
        self.config.chmod(0o600)
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("WATCHDOG_", "OPENROUTER_", "NOTIFY_SOCKET"))
        }
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> DaemonProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "run", "--config", str(self.config), *extra],
            stdout=self.stdout_path.open("ab"),
            stderr=self.stderr_path.open("ab"),
            env=self.env,
            cwd=self.workdir,
        )
        return self

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.stdout_path.read_text().splitlines() if self.stdout_path.exists() else []:
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"event": "<not json>", "raw": raw})
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]

    def output(self) -> str:
        text = self.stdout_path.read_text() if self.stdout_path.exists() else ""
        return text + (self.stderr_path.read_text() if self.stderr_path.exists() else "")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def make(config_text: str, env: dict[str, str] | None = None) -> DaemonProcess:
        proc = DaemonProcess(tmp_path, config_text, env)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()
    # No key (nor the database's password) ever reaches a log line, whatever the test did.
    for proc in started:
        output = proc.output()
        assert API_KEY not in output and MANAGEMENT_KEY not in output
        assert PASSWORD not in output


def base_config(
    fake: FakeOpenRouter,
    tmp_path: Path,
    *,
    management: bool = False,
    extra: str = "",
    port: int = 0,
    url: str | None = None,
) -> str:
    """A config for the daemon against `fake`, its permit under `tmp_path`. The state: the
    PostgreSQL database at `url` when given, else this test's schema when the suite runs
    on PostgreSQL (WATCHDOG_TEST_STATE), else SQLite under `tmp_path`."""
    mgmt = f'management_key = "{MANAGEMENT_KEY}"\n' if management else ""
    if url is None and ON_POSTGRES:
        url = state_url(tmp_path)
    state = f'url = "{url}"' if url is not None else f'path = "{tmp_path}/state/state.db"'
    return (
        f'[provider]\nbase_url = "{fake.base_url}"\napi_key = "{API_KEY}"\n{mgmt}'
        'poll_interval = "1s"\ntimeout = "2s"\n'
        f"[state]\n{state}\n"
        f'[killswitch]\npath = "{tmp_path}/run/permit"\n'
        f'[server]\nlisten = "127.0.0.1:{port}"\n' + extra
    )


def get(port: int, path: str) -> httpx.Response | None:
    """GET the daemon's `path` on 127.0.0.1:`port`; None when nothing answers."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    except httpx.HTTPError:
        return None


def gate(permit: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`budget-watchdog gate --permit PERMIT …` as a job runs it, as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "gate", "--permit", str(permit), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
