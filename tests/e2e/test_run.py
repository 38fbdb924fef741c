"""`budget-watchdog run` as a process: it polls, stores, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.e2e.conftest import DaemonProcess, base_config, open_state, wait_for
from tests.fake_openrouter import API_KEY, MANAGEMENT_KEY, FakeOpenRouter


def test_run_polls_stores_and_exits_0_on_sigterm(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    proc = daemon(base_config(fake, tmp_path, management=True)).start()
    wait_for(lambda: len(proc.events("poll")) >= 3, what="three polls")
    fake.spend(1.25)
    wait_for(lambda: any(p["usage"] == 101.25 for p in proc.events("poll")), what="new spend")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert proc.events("stopped")
    with open_state(tmp_path) as store:
        samples = store.history(datetime(2000, 1, 1, tzinfo=UTC))
    assert len(samples) >= 4
    assert samples[-1].usage == 101.25
    assert samples[-1].balance == 300 - 101.25
    paths = {path for _, path, _ in fake.requests}
    assert {"/api/v1/key", "/api/v1/credits", "/api/v1/keys"} <= paths
    assert API_KEY not in proc.output() and MANAGEMENT_KEY not in proc.output()


def test_run_keeps_going_through_provider_errors(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    from tests.fake_openrouter import Fault

    fake.fault(Fault(status=503, count=6))
    proc = daemon(base_config(fake, tmp_path)).start()
    wait_for(lambda: proc.events("poll_failed"), what="a failed poll")
    wait_for(lambda: proc.events("poll"), timeout=15, what="recovery")
    assert "Traceback" not in proc.output()
    proc.signal(signal.SIGINT)
    assert proc.wait() == 0


def test_a_second_daemon_on_the_same_state_refuses_to_start(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    first = daemon(base_config(fake, tmp_path)).start()
    wait_for(lambda: first.events("poll"), what="first daemon polling")
    (tmp_path / "second").mkdir()
    second = DaemonProcess(tmp_path / "second", first.config.read_text()).start()
    assert second.wait() == 1
    assert "another budget-watchdog" in second.output()
    assert "Traceback" not in second.output()


def test_an_invalid_notification_url_stops_run_with_a_masked_config_error(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    extra = '[[notify.targets]]\nurl = "nosuchservice://user:hunter2-secret@example.com/x"\n'
    proc = daemon(base_config(fake, tmp_path, extra=extra)).start()
    assert proc.wait() == 2
    out = proc.output()
    assert "At 'notify.targets[0].url'" in out
    assert "hunter2-secret" not in out
    assert "Traceback" not in out
