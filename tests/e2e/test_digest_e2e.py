"""The digest through the real daemon: due on its schedule, sent once through the outbox to
the targets that take it, never again after a restart; and `digest` by hand."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.conftest import DaemonProcess, base_config, cli, open_state, wait_for
from tests.fake_openrouter import FakeOpenRouter
from tests.servers import WebhookSink


def config(fake: FakeOpenRouter, tmp_path: Path, sink: WebhookSink) -> str:
    # Weekly, on today's weekday at 00:00 UTC: the latest slot is always behind us, so it
    # is due at once when the schedule has been kept since before it.
    today = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[datetime.now(UTC).weekday()]
    return base_config(
        fake,
        tmp_path,
        management=True,
        extra=(
            f'[digest]\nschedule = "weekly"\nday = "{today}"\nat = "00:00"\n'
            "[budget]\ndaily_limit = 50.0\nmonthly_limit = 900.0\n"
            f'[[notify.targets]]\nurl = "{sink.url}"\nseverities = ["digest"]\n'
        ),
    )


def test_a_due_digest_arrives_once_across_a_restart(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    fake.audit_account()
    with open_state(tmp_path) as store, store.unit() as unit:  # the schedule kept for days
        unit.save_digest_state(None, datetime.now(UTC) - timedelta(days=3))
    sink = WebhookSink().start()
    try:
        text = config(fake, tmp_path, sink)
        first = daemon(text).start()
        wait_for(lambda: sink.received, timeout=30, what="the digest at the webhook")
        (message,) = sink.received
        assert str(message["title"]).startswith("[DIGEST] budget-watchdog")
        body = str(message["message"])
        assert "This month:" in body and "of $900.00" in body
        assert "Where the money went" in body and "Top savings found" in body
        first.signal(signal.SIGTERM)
        assert first.wait() == 0
        second = daemon(text).start()
        wait_for(lambda: len(second.events("poll")) >= 3, timeout=30, what="ticks")
        assert len(sink.received) == 1  # not again: the slot was recorded with the message
    finally:
        sink.stop()


def test_the_digest_command_prints_it(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    fake.audit_account()
    sink = WebhookSink().start()
    try:
        proc = daemon(config(fake, tmp_path, sink)).start()
        wait_for(lambda: proc.events("poll"), timeout=20, what="a poll")
        printed = cli(proc.config, "digest")
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout.startswith("[DIGEST]") and "Balance:" in printed.stdout
    finally:
        sink.stop()
