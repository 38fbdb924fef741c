"""The systemd side: the unit passes systemd-analyze, install.sh installs and uninstalls,
and the notify client never raises."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from watchdog.daemon import Daemon, Prepared
from watchdog.log import get_logger
from watchdog.sdnotify import Notifier

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "budget-watchdog.service"
ANALYZE = shutil.which("systemd-analyze")


def unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's command (verify checks it)."""
    command = Path(sys.executable).parent / "budget-watchdog"
    path = tmp_path / "budget-watchdog.service"
    path.write_text(
        UNIT.read_text().replace("/opt/budget-watchdog/bin/budget-watchdog", str(command))
    )
    return path


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_unit_verifies_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        [ANALYZE or "", "verify", str(unit_for_this_machine(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_unit_rates_1_5_or_better(tmp_path: Path) -> None:
    result = subprocess.run(
        [ANALYZE or "", "security", "--offline=yes", str(unit_for_this_machine(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 1.5


def test_the_unit_has_the_contracted_pieces() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=",
        "RuntimeDirectory=budget-watchdog",
        "RuntimeDirectoryMode=0755",
        "ConfigurationDirectory=",
        "LoadCredential=",
    ):
        assert line in text, line


def unit_settings(name: str) -> list[str]:
    """Every value the unit gives `name=` (in order)."""
    return re.findall(rf"^{name}=(.*)$", UNIT.read_text(), re.MULTILINE)


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        (
            "state_url",
            "postgresql://watchdog:pw-0123456789@db.internal/watchdog\n",
            "postgresql://watchdog:***@db.internal/watchdog",
        ),
        ("server_token", "t0ken-0123456789\n", "t0ken-0123456789"),
    ],
)
def test_the_unit_passes_keys_secrets_as_the_credentials_the_config_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, shown: str
) -> None:
    """keys/state_url (install.sh --state-url-file) and keys/server_token become the
    credentials the config looks for; a host without them gets SetCredential='s blank
    default, which the config reads as none (a LoadCredential= of a missing file alone
    would fail every start)."""
    from watchdog import config

    assert name in (config.STATE_URL_CREDENTIAL, config.SERVER_TOKEN_CREDENTIAL)
    assert f"{name}:/etc/budget-watchdog/keys/{name}" in unit_settings("LoadCredential")
    (default,) = [v for v in unit_settings("SetCredential") if v.startswith(f"{name}:")]
    blank = default.partition(":")[2].encode().decode("unicode_escape")  # systemd's C escapes
    assert blank.strip() == "" and blank != ""  # systemd refuses an empty value
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / name).write_text(blank)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = config.load(None, require_key=False).settings
    assert (settings.state.shown, settings.server.token.get_secret_value()) == (
        "/var/lib/budget-watchdog/state.db",
        "",
    )
    (creds / name).write_text(value)
    settings = config.load(None, require_key=False).settings
    token = settings.server.token.get_secret_value()
    assert (settings.state.shown if name == "state_url" else token) == shown


def test_the_unit_lets_the_service_reach_a_postgresql_host() -> None:
    """A shared state is a TCP connection to another host (or this host's socket): the
    address families allow it and nothing denies the database's address."""
    (families,) = unit_settings("RestrictAddressFamilies")
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(families.split())
    for blocking in ("IPAddressDeny", "IPAddressAllow", "PrivateNetwork"):
        assert unit_settings(blocking) == [], blocking


# The install test (tests/integration/test_install.py) installs, runs the unit's command
# as an unprivileged user and uninstalls in `make test`; this older, wider walk through
# the tree stays in `make test-slow`.
@pytest.mark.slow
def test_install_into_a_temporary_root_and_uninstall(tmp_path: Path) -> None:
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if k != "DESTDIR"}
    run = subprocess.run(
        ["sh", str(ROOT / "deploy" / "install.sh"), "--destdir", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert "Put the key whose spend is watched" in run.stdout
    command = root / "opt/budget-watchdog/bin/budget-watchdog"
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("budget-watchdog ")
    config = root / "etc/budget-watchdog/watchdog.toml"
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    assert config.read_text() == (ROOT / "watchdog.example.toml").read_text()
    assert (root / "etc/budget-watchdog/keys").stat().st_mode & 0o777 == 0o700
    unit = (root / "etc/systemd/system/budget-watchdog.service").read_text()
    assert "ExecStart=/opt/budget-watchdog/bin/budget-watchdog run" in unit
    # Again: idempotent, and an edited config is kept.
    config.write_text(config.read_text() + "\n# edited\n")
    again = subprocess.run(
        ["sh", str(ROOT / "deploy" / "install.sh"), "--destdir", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert again.returncode == 0 and "kept the existing" in again.stdout
    assert config.read_text().endswith("# edited\n")
    gone = subprocess.run(
        ["sh", str(ROOT / "deploy" / "install.sh"), "--destdir", str(root), "--uninstall"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert gone.returncode == 0
    assert not (root / "opt/budget-watchdog").exists()
    assert not (root / "etc/systemd/system/budget-watchdog.service").exists()
    assert config.exists()  # config and keys stay unless --purge


def test_notify_is_a_no_op_outside_systemd_and_never_raises(tmp_path: Path) -> None:
    assert Notifier({}).send("READY=1") is False
    nowhere = Notifier({"NOTIFY_SOCKET": str(tmp_path / "no-such-socket")})
    assert nowhere.enabled and nowhere.ready("x") is False
    assert Notifier({"NOTIFY_SOCKET": "@abstract-nobody-listens"}).watchdog() is False


def test_notify_sends_datagrams_and_reads_the_watchdog_interval(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
        assert notifier.watchdog_interval == 30.0
        assert notifier.ready("state ok")
        assert sock.recv(4096) == b"READY=1\nSTATUS=state ok"
    other = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None  # the watchdog is for another process


def test_a_stuck_tick_stops_the_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import watchdog.daemon as daemon_module

    release = threading.Event()
    entered = threading.Event()

    class Stuck:
        def run(self) -> None:
            entered.set()
            release.wait(10)

    monkeypatch.setattr(daemon_module, "STUCK_AFTER_S", 0.1)
    daemon = Daemon(lambda: Prepared(Stuck()), interval=60, log=get_logger())
    daemon.tick = Stuck()  # as if prepared: the scheduler is not needed to run one tick
    assert daemon.alive()
    thread = threading.Thread(target=daemon._run_tick)
    thread.start()
    assert entered.wait(10)
    time.sleep(0.2)
    assert not daemon.alive()  # stuck 0.2 s in a tick allowed 0.1 s: no more WATCHDOG=1
    release.set()
    thread.join()
    assert daemon.alive()


def test_stopping_waits_for_the_running_tick_and_starts_no_other() -> None:
    import threading

    events: list[str] = []
    lock = threading.Lock()

    class SlowTick:
        def run(self) -> None:
            with lock:
                events.append("start")
            time.sleep(0.6)
            with lock:
                events.append("end")

    delivered: list[float] = []
    daemon = Daemon(
        lambda: Prepared(SlowTick(), deliver=lambda: delivered.append(time.monotonic())),
        interval=0.05,
        log=get_logger(),
        run_for=0.3,
    )
    started = time.monotonic()
    assert daemon.run() == 0
    elapsed = time.monotonic() - started
    time.sleep(0.3)  # a tick that slipped past the stop would show up here
    assert events == ["start", "end"]  # the running tick finished; none began after
    assert 0.55 < elapsed < 5
    assert delivered  # the outbox is looked at on its own schedule
