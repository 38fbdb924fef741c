"""The status server inside the real daemon: up before the first poll, status, control."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import ON_POSTGRES, DaemonProcess, base_config, cli, get, wait_for
from tests.fake_openrouter import API_KEY, FakeOpenRouter, Fault
from tests.servers import free_port


def test_the_server_answers_while_the_provider_hangs(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    fake.fault(Fault(status=200, delay=6, count=1))  # the first poll hangs past the timeout
    port = free_port()
    proc = daemon(base_config(fake, tmp_path, port=port)).start()
    health = wait_for(lambda: get(port, "/healthz"), what="the server")
    assert health.status_code == 503
    assert health.json()["reason"] == "no successful poll yet"
    assert not proc.events("poll")  # answered before any poll finished
    status = get(port, "/status")
    assert status is not None and status.json()["permit"] == "revoked"
    wait_for(lambda: proc.events("poll"), timeout=20, what="a poll after the hang")
    assert wait_for(lambda: (r := get(port, "/healthz")) is not None and r.status_code == 200)


def test_status_command_reads_the_running_daemon_then_the_state_file(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    port = free_port()
    proc = daemon(
        base_config(fake, tmp_path, extra="[budget]\ndaily_limit = 20.0\n", port=port)
    ).start()
    wait_for(lambda: proc.events("poll"), what="a poll")
    live = cli(proc.config, "status")
    assert live.returncode == 0
    assert f"running daemon at http://127.0.0.1:{port}" in live.stdout
    assert "Spent today:  $2.00 of $20.00 (10%)" in live.stdout
    body = json.loads(cli(proc.config, "status", "--json").stdout)
    assert body["spent_today"] == 2.0 and body["permit"] == "armed"
    tripped = cli(proc.config, "trip", "--reason", "testing")
    assert "the running daemon applied it now" in tripped.stdout
    assert json.loads(cli(proc.config, "status", "--json").stdout)["permit"] == "revoked"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    offline = cli(proc.config, "status")
    assert offline.returncode == 3  # not running: the state file's picture, with its age
    source = "from the shared state" if ON_POSTGRES else "from the state file"
    assert "does not answer" in offline.stdout and source in offline.stdout
    assert "its last poll" in offline.stdout and " ago)" in offline.stdout
    assert "Permit: REVOKED" in offline.stdout
    # one coherent picture: the state agrees with the numbers it shows
    body = json.loads(cli(proc.config, "status", "--json").stdout)
    assert body["spent_today"] == 2.0 and body["state"] in ("ok", "warning")
    assert all(f["rule"] != "daily_limit" for f in body["findings"])
    # judged with the config at hand, not the daemon's stored alerts: numbers and state agree
    tighter = proc.config.with_name("tighter.toml")
    tighter.write_text(proc.config.read_text().replace("daily_limit = 20.0", "daily_limit = 1.5"))
    tighter.chmod(0o600)
    judged = json.loads(cli(tighter, "status", "--json").stdout)
    assert judged["state"] == "critical"
    assert [f["severity"] for f in judged["findings"] if f["rule"] == "daily_limit"] == ["critical"]
    assert API_KEY not in live.stdout + offline.stdout


def test_off_loopback_without_a_token_refuses_to_start(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    proc = daemon(base_config(fake, tmp_path).replace("127.0.0.1:0", "0.0.0.0:0")).start()
    assert proc.wait() == 2
    assert "At 'server.token': required when server.listen (0.0.0.0:0)" in proc.output()
    assert "Traceback" not in proc.output()


def test_a_busy_port_is_a_clear_error(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    port = free_port()
    first = daemon(base_config(fake, tmp_path, port=port)).start()
    wait_for(lambda: get(port, "/healthz"), what="the first server")
    (tmp_path / "b").mkdir()
    second = DaemonProcess(
        tmp_path / "b", base_config(fake, tmp_path / "b", port=port), name="b"
    ).start()
    assert second.wait() == 1
    assert f"cannot listen on 127.0.0.1:{port}" in second.output()
    assert "Traceback" not in second.output()
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
