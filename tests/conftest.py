"""Shared fixtures: a clean environment and logging for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's keys, config or systemd variables."""
    for name in list(os.environ):
        if name.startswith(("WATCHDOG_", "OPENROUTER_")) or name in (
            "CREDENTIALS_DIRECTORY",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
        ):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    from watchdog import log

    yield
    log.set_secrets([])
    log.reset()


@pytest.fixture(autouse=True, scope="session")
def nothing_written_to_system_paths() -> Iterator[None]:
    """Tests keep their state and permits in temporary directories, never in the paths a
    real installation uses (a test that forgot an override would write there as root)."""
    from pathlib import Path

    guarded = [Path("/run/budget-watchdog"), Path("/var/lib/budget-watchdog")]
    before = {p: p.exists() for p in guarded}
    yield
    for path, existed in before.items():
        assert existed or not path.exists(), f"a test wrote to {path}"


# The throwaway PostgreSQL server (pg_server, pg_url) for the store tests on both engines.
pytest_plugins = ["tests.pg"]
