"""Silences through the real daemon, the CLI and a webhook on 127.0.0.1: `unsilence` sends a
finding still firing again, and a finding that ends under a silence is resolved when the
silence ends, never dropped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import DaemonProcess, base_config, cli, wait_for
from tests.fake_openrouter import FakeOpenRouter
from tests.servers import WebhookSink

# The account balance is $300 - $100 = $200: a min_balance warning under $225 ($180 / 0.8).
BUDGET = "[budget]\nmin_balance = 180.0\n"


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    server = WebhookSink().start()
    yield server
    server.stop()


def config(fake: FakeOpenRouter, tmp_path: Path, sink: WebhookSink) -> str:
    targets = f'[[notify.targets]]\nurl = "{sink.url}"\nseverities = ["warning", "critical"]\n'
    return base_config(fake, tmp_path, management=True, extra=BUDGET + targets)


def about(sink: WebhookSink, rule: str) -> list[dict[str, str]]:
    """What the sink received about `rule` (other rules may fire with the time of day)."""
    with sink.lock:
        return [m for m in sink.received if f"] {rule} on " in str(m.get("title"))]


def titles(sink: WebhookSink, rule: str) -> list[str]:
    return [m["title"] for m in about(sink, rule)]


def test_unsilence_sends_a_finding_still_firing_again(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path, sink: WebhookSink
) -> None:
    proc = daemon(config(fake, tmp_path, sink)).start()
    wait_for(lambda: titles(sink, "min_balance"), what="the min_balance warning")
    silenced = cli(proc.config, "silence", "min_balance", "--for", "1h", "--reason", "top-up due")
    assert silenced.returncode == 0, silenced.stderr
    polls = len(proc.events("poll"))
    wait_for(lambda: len(proc.events("poll")) > polls, what="a tick under the silence")
    unsilenced = cli(proc.config, "unsilence", "min_balance")
    assert unsilenced.returncode == 0, unsilenced.stderr
    wait_for(lambda: len(titles(sink, "min_balance")) >= 2, what="the finding sent again")
    assert titles(sink, "min_balance") == [
        "[WARNING] min_balance on batch (budget-watchdog)",
        "[WARNING, silence ended] min_balance on batch (budget-watchdog)",
    ]
    assert (
        "Balance is $200.00, close to the $180.00 minimum."
        in about(sink, "min_balance")[1]["message"]
    )


def test_a_finding_that_ends_under_a_silence_is_resolved_when_the_silence_ends(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path, sink: WebhookSink
) -> None:
    proc = daemon(config(fake, tmp_path, sink)).start()
    wait_for(lambda: titles(sink, "min_balance"), what="the min_balance warning")
    silenced = cli(proc.config, "silence", "min_balance", "--for", "1h")
    assert silenced.returncode == 0, silenced.stderr
    with fake.lock:
        fake.account.total_credits = 500.0  # a top-up: the balance is $400, the warning ends
    polls = len(proc.events("poll"))
    wait_for(
        lambda: (
            len(proc.events("poll")) > polls
            and "min_balance:warning" not in proc.events("poll")[-1]["findings"]
        ),
        what="the warning ended under the silence",
    )
    assert titles(sink, "min_balance") == ["[WARNING] min_balance on batch (budget-watchdog)"]
    unsilenced = cli(proc.config, "unsilence", "min_balance")
    assert unsilenced.returncode == 0, unsilenced.stderr
    wait_for(lambda: len(titles(sink, "min_balance")) >= 2, what="the held resolution")
    assert titles(sink, "min_balance") == [
        "[WARNING] min_balance on batch (budget-watchdog)",
        "[RESOLVED] min_balance on batch (budget-watchdog)",
    ]
    resolved = about(sink, "min_balance")[1]["message"]
    assert "held by a silence until" in resolved
    assert resolved.splitlines()[-1].startswith("Event time: ")
