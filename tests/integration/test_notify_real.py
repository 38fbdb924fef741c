"""Alerts through real Apprise to real servers on 127.0.0.1: SMTP (aiosmtpd) and a webhook."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import Clock, ScriptedProvider, build_tick
from tests.servers import SmtpSink, WebhookSink, free_port
from watchdog.config import load
from watchdog.core.model import Credits, KeyUsage, Snapshot
from watchdog.log import get_logger
from watchdog.notify import AppriseTransport, DeliveryError, make_target
from watchdog.outbox import Outbox
from watchdog.store import Store
from watchdog.tick import Tick

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    yield sink
    sink.stop()


def make(
    tmp_path: Path, urls: list[tuple[str, list[str]]], clock: Clock, snaps: list[Snapshot]
) -> tuple[Tick, Outbox]:
    settings = load(
        None,
        require_key=False,
        overrides={
            "budget": {
                "daily_limit": 20.0,
                "min_balance": 10.0,
                "buffer_days_warning": 0,
                "buffer_days_critical": 0,
                "timezone": "UTC",
            },
            "state": {"path": str(tmp_path / "state.db")},
            "killswitch": {"path": str(tmp_path / "permit")},
            "notify": {"targets": [{"url": u, "severities": s} for u, s in urls]},
        },
    ).settings
    store = Store(settings.state.path)
    targets = [make_target(t.url.get_secret_value(), t.severities) for t in settings.notify.targets]
    tick = build_tick(settings, ScriptedProvider(clock, snaps), clock, targets=targets)
    return tick, Outbox(store, AppriseTransport(timeout=5), targets, clock, get_logger())


def test_a_critical_alert_arrives_by_email_with_the_numbers(
    tmp_path: Path, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apprise.plugins.email.base import NotifyEmail

    # Apprise spaces e-mails to one server 5.5 s apart; a test need not wait for that.
    monkeypatch.setattr(NotifyEmail, "request_rate_per_sec", 0)
    clock = Clock(T0)
    # $2 at 09:00 then $25 a minute later: over the $20 daily limit.
    snaps = [
        Snapshot(T0, key=KeyUsage(usage=100, usage_daily=2.0, label="batch")),
        Snapshot(
            T0 + timedelta(minutes=1), key=KeyUsage(usage=123, usage_daily=25.0, label="batch")
        ),
    ]
    tick, outbox = make(tmp_path, [(smtp.url, ["critical"])], clock, snaps)
    tick.run()
    clock.advance(minutes=1)
    tick.run()
    assert outbox.deliver() == 2  # the daily_limit alert and the permit revocation
    subjects = [email.message_from_string(m[2])["Subject"] for m in smtp.messages]
    assert subjects == [
        "[CRITICAL] daily_limit on batch (budget-watchdog)",
        "[PERMIT REVOKED] batch launches for batch (budget-watchdog)",
    ]
    text = smtp.messages[0][2]
    assert smtp.messages[0][1] == ["ops@example.com"]
    assert "$25.00 spent today, 125% of the $20.00 daily limit" in text
    assert "REVOKED" in text and "What to do" in text


def test_warnings_go_only_to_targets_that_want_them(
    tmp_path: Path, smtp: SmtpSink, webhook: WebhookSink
) -> None:
    clock = Clock(T0)
    snap = Snapshot(T0, key=KeyUsage(usage=100, usage_daily=17.0, label="batch"))
    tick, outbox = make(
        tmp_path, [(smtp.url, ["critical"]), (webhook.url, ["warning"])], clock, [snap]
    )
    tick.run()
    outbox.deliver()
    assert smtp.messages == []
    assert webhook.titles() == ["[WARNING] daily_limit on batch (budget-watchdog)"]
    assert "85% of the $20.00 daily limit" in webhook.received[0]["message"]
    assert webhook.received[0]["type"] == "warning"


def test_an_outage_delays_alerts_and_delivers_each_once_in_order(tmp_path: Path) -> None:
    port = free_port()
    sink = WebhookSink(port)  # not started: the target is down
    clock = Clock(T0)
    # The balance falls near, then under, the $10 minimum; a top-up brings it back part
    # way, then fully: warning, critical, de-escalate, resolve, quiet.
    balances = [12.0, 9.0, 11.0, 30.0, 31.0]
    snaps = [
        Snapshot(
            T0 + timedelta(minutes=i),
            key=KeyUsage(usage=100 + i * 0.01, usage_daily=1.0 + i * 0.01, label="batch"),
            credits=Credits(total_credits=100 + i * 0.01 + b, total_usage=100 + i * 0.01),
        )
        for i, b in enumerate(balances)
    ]
    tick, outbox = make(tmp_path, [(sink.url, ["warning", "critical"])], clock, snaps)
    for _ in balances:
        tick.run()
        outbox.deliver()
        clock.advance(minutes=1)
    assert sink.received == []
    sink.start()
    try:
        clock.advance(hours=1)  # past every backoff
        outbox.deliver()
        outbox.deliver()
        titles = sink.titles()
    finally:
        sink.stop()
    assert titles == [
        "[WARNING] min_balance on batch (budget-watchdog)",
        "[CRITICAL, escalated] min_balance on batch (budget-watchdog)",
        "[PERMIT REVOKED] batch launches for batch (budget-watchdog)",
        "[WARNING, de-escalated] min_balance on batch (budget-watchdog)",
        "[PERMIT ARMED] batch launches for batch (budget-watchdog)",
        "[RESOLVED] min_balance on batch (budget-watchdog)",
    ]


def test_a_refused_delivery_raises_with_apprises_reason() -> None:
    target = make_target(f"json://127.0.0.1:{free_port()}/x", ["warning", "critical"])
    with pytest.raises(DeliveryError, match="Connection error"):
        AppriseTransport(timeout=2).send(target, "t", "b", "warning", False)
