"""The real daemon process against a fake OpenRouter on 127.0.0.1."""

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
    # No key ever reaches a log line, whatever the test did.
    for proc in started:
        output = proc.output()
        assert API_KEY not in output and MANAGEMENT_KEY not in output


def base_config(
    fake: FakeOpenRouter,
    tmp_path: Path,
    *,
    management: bool = False,
    extra: str = "",
    port: int = 0,
) -> str:
    mgmt = f'management_key = "{MANAGEMENT_KEY}"\n' if management else ""
    return (
        f'[provider]\nbase_url = "{fake.base_url}"\napi_key = "{API_KEY}"\n{mgmt}'
        'poll_interval = "1s"\ntimeout = "2s"\n'
        f'[state]\npath = "{tmp_path}/state/state.db"\n'
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
