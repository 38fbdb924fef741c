"""notify-test, silence and unsilence from the command line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.servers import WebhookSink, free_port
from watchdog.cli import main
from watchdog.store import Store, Unit

SECRET = "hunter2-webhook-password"


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    yield sink
    sink.stop()


def config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "watchdog.toml"
    path.write_text(f'[state]\npath = "{tmp_path}/state.db"\n' + body)
    path.chmod(0o600)
    return str(path)


def test_notify_test_reports_each_target_and_fails_if_any_fails(
    tmp_path: Path, webhook: WebhookSink, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"json://user:{SECRET}@127.0.0.1:{free_port()}/hook"
    path = config(
        tmp_path, f'[[notify.targets]]\nurl = "{webhook.url}"\n[[notify.targets]]\nurl = "{dead}"\n'
    )
    assert main(["notify-test", "--config", path]) == 1
    out = capsys.readouterr().out
    assert f"delivered  json://127.0.0.1:{webhook.port}/hook" in out
    assert "FAILED     json://user:****@127.0.0.1" in out
    assert "1 of 2 targets delivered" in out
    assert SECRET not in out
    assert webhook.titles() == ["[TEST] budget-watchdog notification"]


def test_notify_test_exits_0_when_all_deliver(
    tmp_path: Path, webhook: WebhookSink, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, f'[[notify.targets]]\nurl = "{webhook.url}"\n')
    assert main(["notify-test", "--config", path]) == 0


def test_notify_test_without_targets_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["notify-test", "--config", config(tmp_path, "")]) == 1
    assert "no [[notify.targets]] configured" in capsys.readouterr().err


def test_silence_is_stored_and_unsilence_ends_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "")
    assert (
        main(["silence", "spike", "--for", "2h", "--reason", "known backfill", "--config", path])
        == 0
    )
    assert "silenced spike until" in capsys.readouterr().out
    with Store(tmp_path / "state.db") as store:
        silence = store.silences(datetime.now(UTC))["spike"]
    assert silence.reason == "known backfill"
    assert 7190 < (silence.until - datetime.now(UTC)).total_seconds() <= 7200
    assert main(["unsilence", "spike", "--config", path]) == 0
    with Store(tmp_path / "state.db") as store:
        assert store.silences(datetime.now(UTC)) == {}


def test_silence_rejects_unknown_rules_and_durations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "")
    assert main(["silence", "spikes", "--for", "2h", "--config", path]) == 2
    assert "unknown rule 'spikes'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["silence", "spike", "--for", "soon", "--config", path])
    assert exc.value.code == 2


def test_a_state_file_the_user_may_not_write_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    def refuse(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(Unit, "set_override", refuse)
    monkeypatch.setattr(Unit, "set_silence", refuse)
    path = config(tmp_path, "")
    for command in (["trip", "--reason", "x"], ["arm"], ["silence", "spike", "--for", "1h"]):
        assert main([*command, "--config", path]) == 1
        err = capsys.readouterr().err
        assert "cannot change the state file" in err and "readonly database" in err
        assert "Traceback" not in err


# Credentials in query headers, payload fields and paths: Apprise's own privacy form
# showed all of these.
HEADER_TOKEN = "hdr-7f3a9c2e1b5d"
PAYLOAD_SECRET = "payload-9b8c7d6e5f"
PATH_TOKEN = "B08N2K9QWxZ7pQ4rT9mW"


def secret_urls(port: int) -> list[str]:
    return [
        f"json://127.0.0.1:{port}/hook?+Authorization=Bearer%20{HEADER_TOKEN}",
        f"jsons://127.0.0.1:{port}/services/{PATH_TOKEN}?-apikey={PAYLOAD_SECRET}",
        f"json://user:{SECRET}@127.0.0.1:{port}/hook?+X-Token={HEADER_TOKEN}",
    ]


def no_secret_in(text: str) -> None:
    for secret in (HEADER_TOKEN, PAYLOAD_SECRET, PATH_TOKEN, SECRET):
        for i in range(len(secret) - 5):
            assert secret[i : i + 6] not in text, secret


def test_check_config_and_notify_test_show_no_credential_of_any_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nobody listens: notify-test fails, and says so masked
    targets = "".join(f'[[notify.targets]]\nurl = "{u}"\n' for u in secret_urls(port))
    path = config(tmp_path, '[provider]\napi_key = "sk-or-v1-0123456789abcdef"\n' + targets)
    assert main(["check-config", "--config", path]) == 0
    shown = capsys.readouterr().out
    assert f'url = "json://127.0.0.1:{port}/hook?+Authorization=****"' in shown
    assert f'url = "jsons://127.0.0.1:{port}/services/****?-apikey=****"' in shown
    no_secret_in(shown)
    assert main(["notify-test", "--config", path]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("FAILED") == 3
    no_secret_in(captured.out + captured.err)


def test_a_trip_that_cannot_be_recorded_still_stops_this_hosts_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from watchdog.store import StoreUnavailable

    def unreachable(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("cannot reach postgresql://w:***@db/w: connection refused")

    monkeypatch.setattr(Unit, "set_override", unreachable)
    permit = tmp_path / "permit"
    permit.write_text('{"state": "armed"}')
    path = config(tmp_path, f'[killswitch]\npath = "{permit}"\n')
    assert main(["trip", "--reason", "incident", "--config", path]) == 1
    err = capsys.readouterr().err
    assert not permit.exists()  # removed before the state was tried
    assert "connection refused" in err and f"{permit} was removed" in err
    assert "run `trip` again" in err and "Traceback" not in err
