"""Alerts from the real daemon: delivered once across a SIGKILL between write and send."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import ON_POSTGRES, DaemonProcess, base_config, open_state, wait_for
from tests.fake_openrouter import API_KEY, MANAGEMENT_KEY, FakeOpenRouter
from tests.servers import WebhookSink, free_port
from watchdog.store import StoreError


def outbox(tmp_path: Path) -> list[tuple[int, str, str]]:
    """The outbox as the daemon keeps it (SQLite file or PostgreSQL schema); [] before
    the daemon made it."""
    if not ON_POSTGRES and not (tmp_path / "state" / "state.db").exists():
        return []
    try:
        with open_state(tmp_path) as store:
            rows = store._all("SELECT id, title, state FROM outbox ORDER BY id")
    except (StoreError, sqlite3.Error):
        return []
    return [(r["id"], r["title"], r["state"]) for r in rows]


def test_messages_written_before_a_crash_are_delivered_once_after_restart(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    sink = WebhookSink(free_port())  # down until after the crash
    fake.account.usage_daily = 18.0  # 90% of the daily limit: a warning at the first poll
    extra = (
        "[budget]\ndaily_limit = 20.0\n"
        f'[[notify.targets]]\nurl = "{sink.url}"\nseverities = ["warning", "critical"]\n'
    )
    config = base_config(fake, tmp_path, extra=extra)
    first = daemon(config).start()
    wait_for(lambda: len(outbox(tmp_path)) >= 1, what="an alert in the outbox")
    wait_for(lambda: first.events("notify_failed"), what="a failed delivery attempt")
    first.signal(signal.SIGKILL)
    first.wait()
    written = outbox(tmp_path)
    assert [state for _, _, state in written] == ["pending"] * len(written)

    sink.start()
    try:
        second = DaemonProcess(tmp_path, config, name="second").start()
        wait_for(
            lambda: all(s == "sent" for _, _, s in outbox(tmp_path)),
            timeout=20,
            what="the outbox delivered",
        )
        wait_for(lambda: second.events("poll"), what="polling again")
        second.signal(signal.SIGTERM)
        assert second.wait() == 0
        titles = sink.titles()
    finally:
        sink.stop()
        second.stop()
    assert titles == [title for _, title, _ in written]  # each exactly once, in order
    bodies = json.dumps(sink.received)
    assert API_KEY not in bodies and MANAGEMENT_KEY not in bodies
    assert titles[0] == "[WARNING] daily_limit on sk-or-v1-e2e...cdef (budget-watchdog)"
    assert not second.events("alert")  # the restart did not fire the same alert again
