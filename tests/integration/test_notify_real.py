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


def test_the_email_plain_text_part_reads_like_the_markdown_without_markup(
    tmp_path: Path, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bullets "- x" one per line, inline code inline; the HTML part keeps its markup."""
    from apprise.plugins.email.base import NotifyEmail

    monkeypatch.setattr(NotifyEmail, "request_rate_per_sec", 0)
    clock = Clock(T0)
    snap = Snapshot(T0, key=KeyUsage(usage=100, usage_daily=25.0, label="batch"))
    tick, outbox = make(tmp_path, [(smtp.url, ["critical"])], clock, [snap])
    tick.run()
    outbox.deliver()
    parsed = email.message_from_string(smtp.messages[0][2])
    parts = {}
    for part in parsed.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            parts[part.get_content_type()] = payload.decode()
    plain, html = parts["text/plain"], parts["text/html"]
    lines = plain.splitlines()
    bullets = [i for i, line in enumerate(lines) if line.startswith("- ")]
    assert len(bullets) >= 6
    assert bullets == list(range(bullets[0], bullets[0] + len(bullets)))  # no blank between
    assert lines[bullets[0]] == "- When: 2026-11-27 09:00 UTC"
    assert (
        "What to do: Find the job that is spending (budget-watchdog report shows which "
        "models), stop it, or raise budget.daily_limit." in lines
    )
    assert lines[0] == "$25.00 spent today, 125% of the $20.00 daily limit; the limit is reached."
    assert lines[-1] == "Event time: 2026-11-27T09:00:00+00:00"
    assert "**" not in plain and "`" not in plain
    assert "<li>Spent today: $25.00 of $20.00 (125%)</li>" in html
    assert "<code>budget-watchdog report</code>" in html


def test_a_json_payload_carries_the_event_time(tmp_path: Path, webhook: WebhookSink) -> None:
    clock = Clock(T0)
    snap = Snapshot(T0, key=KeyUsage(usage=100, usage_daily=17.0, label="batch"))
    tick, outbox = make(tmp_path, [(webhook.url, ["warning"])], clock, [snap])
    tick.run()
    clock.advance(seconds=20)  # delivered 20 s after the event: on time, no note
    outbox.deliver()
    payload = webhook.received[0]
    assert payload["message"].splitlines()[-1] == "Event time: 2026-11-27T09:00:00+00:00"
    assert "- When: 2026-11-27 09:00 UTC\n" in payload["message"]
    assert "late" not in payload["message"]


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
    """Messages held by an hour's outage arrive in order, each saying when its event
    happened and how late it is: the critical visibly ended before it was read."""
    port = free_port()
    sink = WebhookSink(port)  # not started: the target is down
    clock = Clock(T0)
    # The balance falls near, then under, the $10 minimum; a top-up brings it back part
    # way, then fully: warning, critical, de-escalate, resolve, quiet.
    balances = [12.0, 9.0, 11.0, 30.0, 31.0]
    snaps = [
        Snapshot(
            T0 + timedelta(minutes=i),
            key=KeyUsage(usage=100 + i * 0.001, usage_daily=1.0 + i * 0.001, label="batch"),
            credits=Credits(total_credits=100 + i * 0.001 + b, total_usage=100 + i * 0.001),
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
        bodies = [m["message"] for m in sink.received]
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
    event_times = [line for b in bodies for line in b.splitlines() if line.startswith("Event")]
    assert event_times == [
        "Event time: 2026-11-27T09:00:00+00:00",
        "Event time: 2026-11-27T09:01:00+00:00",
        "Event time: 2026-11-27T09:01:00+00:00",
        "Event time: 2026-11-27T09:02:00+00:00",
        "Event time: 2026-11-27T09:02:00+00:00",
        "Event time: 2026-11-27T09:03:00+00:00",
    ]
    assert (
        "- When: 2026-11-27 09:01 UTC; firing since 09:00 UTC; delivered 1 h 4 min late"
        in bodies[1]
    )
    assert "- When: 2026-11-27 09:03 UTC; delivered 1 h 2 min late" in bodies[5]


def test_a_refused_delivery_raises_with_apprises_reason() -> None:
    target = make_target(f"json://127.0.0.1:{free_port()}/x", ["warning", "critical"])
    with pytest.raises(DeliveryError, match="Connection error"):
        AppriseTransport(timeout=2).send(target, "t", "b", "warning", False)


# Real-looking Apprise URLs and the credentials in each (every one at least 6 characters).
MASKING = [
    ("json://127.0.0.1:8080/hook?+Authorization=Bearer%20sk-live-7f3a9c2e1b", ["7f3a9c2e1b"]),
    (
        "jsons://hooks.example.com/services/T024BE7LD/B08N2K9QW/xZ7pQ4rT9mW2vL8kJ3nB6cY1",
        ["T024BE7LD", "B08N2K9QW", "xZ7pQ4rT9mW2vL8kJ3nB6cY1"],
    ),
    (
        "jsons://webhooker:hunter2pass@hooks.example.com/in?+X-Token=tok-abcdef123456",
        ["hunter2pass", "tok-abcdef123456", "abcdef123456"],
    ),
    (
        "json://localhost/hook?-apikey=payloadsecret1&:sig=paramsecret2",
        ["payloadsecret1", "paramsecret2"],
    ),
    ("xml://example.com/hook?+Authorization=Basic%20dXNlcjpwYXNzd29yZA", ["dXNlcjpwYXNzd29yZA"]),
    ("form://example.com/a?token=qwerty987654&to=ops", ["qwerty987654"]),
    (
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general",
        ["T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ"],
    ),
    (
        "slack://xoxb-1234-1234-4ddbc191d40ee098cbaae6f3523ada2d/#ops",
        ["4ddbc191d40ee098cbaae6f3523ada2d", "xoxb-1234-1234"],
    ),
    (
        "discord://1121212121212121212/aBcD-EfGhIjKlMnOpQrStUvWxYz_0123456789abcdefghij",
        ["1121212121212121212", "aBcD-EfGhIjKlMnOpQrStUvWxYz_0123456789abcdefghij"],
    ),
    (
        "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/987654321",
        ["123456789", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "987654321"],
    ),
    ("mailtos://alerts:mailpass123@smtp.example.com?to=ops@example.com", ["mailpass123"]),
    ("ntfys://ntfy.sh/wd-7Hq2Zp9x?token=tk_abcdefghijklmn", ["7Hq2Zp9x", "tk_abcdefghijklmn"]),
    (
        "msteams://b2f1c3d4e5/f6a7b8c9d0e1/a1b2c3d4e5f6/x9y8z7w6v5",
        ["b2f1c3d4e5", "f6a7b8c9d0e1", "a1b2c3d4e5f6", "x9y8z7w6v5"],
    ),
    (
        "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
        ["uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "azGDORePK8gMaC0QOYAMyEEuzJnyUi"],
    ),
    ("gotify://gotify.example.com/AQZ3c8pT1x", ["AQZ3c8pT1x"]),
    ("https://example.com/webhook?apikey=abcdef123456", ["abcdef123456"]),
    ("apprise://apprise.example.com/abcdef0123456789abcdef", ["abcdef0123456789abcdef"]),
    (
        "mattermost://mm.example.com/3ccdd113474722377935511fc85d3dd4",
        ["3ccdd113474722377935511fc85d3dd4"],
    ),
    ("pagerduty://integrationkey123@apikey456789", ["integrationkey123", "apikey456789"]),
    ("opsgenie://apikey-abcdef-123456", ["apikey-abcdef-123456", "abcdef-123456"]),
    ("matrix://bot:mxP4ss-w0rd@matrix.example.com/#room", ["mxP4ss-w0rd"]),
    ("signal://signal.example.com:8080/+12345678901/+10987654321", ["12345678901", "10987654321"]),
    (
        "twilio://AC735c307c62944b5a:e29dfbcebf390dee9@12345678901/19876543210",
        ["AC735c307c62944b5a", "e29dfbcebf390dee9", "12345678901"],
    ),
    ("json://10.0.0.5:9000/hooks/k3y-9f8e7d6c5b4a", ["k3y-9f8e7d6c5b4a", "9f8e7d6c5b4a"]),
]


@pytest.mark.parametrize(
    ("url", "secrets"), MASKING, ids=[u.split(":")[0] + str(i) for i, (u, _) in enumerate(MASKING)]
)
def test_no_credential_survives_in_the_shown_form_of_a_target(url: str, secrets: list[str]) -> None:
    from urllib.parse import quote

    from watchdog.notify import describe_target

    shown = describe_target(url)
    assert shown.split("://")[0] == url.split("://")[0]  # the scheme stays
    for secret in secrets:
        for i in range(len(secret) - 5):  # no 6 characters of it, as written or encoded
            piece = secret[i : i + 6]
            assert piece not in shown and quote(piece) not in shown, (piece, shown)


def test_the_shown_form_keeps_what_identifies_a_target() -> None:
    from watchdog.notify import describe_target

    assert describe_target("json://user:pw123456@127.0.0.1:8080/hook") == (
        "json://user:****@127.0.0.1:8080/hook"
    )
    assert describe_target("mailtos://alerts:secret99@smtp.example.com?to=ops@example.com") == (
        "mailtos://alerts:****@smtp.example.com?to=ops@example.com"
    )
    assert describe_target("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general") == (
        "slack://****/****/****/#general"
    )
    assert describe_target("jsons://hooks.example.com/services/T1/B2/C3") == (
        "jsons://hooks.example.com/services/****/****/****"
    )
    assert describe_target("not a url") == "(not a URL)"
