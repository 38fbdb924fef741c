"""Fail closed, through the real daemon process and the real `gate`: when the watchdog
does not know, the answer is no-go, said with the reason."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import DaemonProcess, base_config, gate, get, open_state, wait_for
from tests.fake_openrouter import FakeOpenRouter, Fault
from tests.servers import free_port


def test_no_successful_poll_yet_is_no_go_everywhere(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """The provider fails from the start (500s): no permit, gate no-go, /status unknown,
    /preflight 409 — and all of it agrees, long before stale_after."""
    fake.fault(Fault(status=500))
    port = free_port()
    proc = daemon(base_config(fake, tmp_path, port=port)).start()
    wait_for(lambda: len(proc.events("poll_failed")) >= 3, timeout=20, what="failed polls")
    permit = tmp_path / "run" / "permit"
    assert not permit.exists()
    verdict = gate(permit, "--cost", "10000")
    assert verdict.returncode == 1 and "no permit" in verdict.stderr
    status = get(port, "/status")
    assert status is not None
    body = status.json()
    assert body["state"] == "unknown" and body["permit"] == "revoked"
    assert "no successful poll" in body["permit_reason"]
    assert body["last_error"] and "500" in body["last_error"]
    preflight = get(port, "/preflight?cost=1")
    assert preflight is not None and preflight.status_code == 409
    fake.clear_faults()  # the provider recovers: go, everywhere
    wait_for(permit.exists, timeout=20, what="the permit after recovery")
    assert gate(permit, "--cost", "1").returncode == 0
    assert wait_for(lambda: (r := get(port, "/status")) and r.json()["state"] == "ok")


def test_after_a_restart_the_permit_waits_for_fresh_data(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    port = free_port()
    config = base_config(fake, tmp_path, port=port)
    first = daemon(config).start()
    permit = tmp_path / "run" / "permit"
    wait_for(permit.exists, timeout=20, what="the first permit")
    first.stop()  # SIGKILL: the permit stays behind, as after a crash
    assert permit.exists()
    fake.fault(Fault(status=503))
    second = daemon(config).start()
    wait_for(lambda: second.events("poll_failed"), timeout=20, what="a failed poll")
    assert not permit.exists()  # stale confidence from before the restart is not reused
    assert gate(permit).returncode == 1


def test_a_permit_path_that_cannot_be_written_is_a_start_up_error(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the permit's directory should be")
    config = base_config(fake, tmp_path).replace(
        f'path = "{tmp_path}/run/permit"', f'path = "{blocker}/permit"'
    )
    proc = daemon(config).start()
    assert proc.wait(timeout=20) == 2
    err = proc.stderr_path.read_text()
    assert "killswitch.path" in err and f"{blocker}/permit" in err
    assert "Traceback" not in proc.output()
    assert len(err.strip().splitlines()) == 1


def test_a_permit_that_cannot_be_written_later_is_critical_and_no_go(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    port = free_port()
    proc = daemon(base_config(fake, tmp_path, port=port)).start()
    permit = tmp_path / "run" / "permit"
    wait_for(permit.exists, timeout=20, what="the permit")
    # The permit's directory becomes unusable (as a full disk or a bad chown would make it).
    permit.unlink()
    permit.parent.rmdir()
    permit.parent.write_text("now a file")
    status = wait_for(
        lambda: (
            (r := get(port, "/status"))
            and any(f["rule"] == "permit_write" for f in r.json()["findings"])
            and r.json()
        ),
        timeout=20,
        what="a permit_write finding",
    )
    assert status["permit"] == "revoked" and status["state"] == "critical"
    preflight = get(port, "/preflight?cost=1")
    assert preflight is not None and preflight.status_code == 409
    assert proc.events("permit_write_failed")


# -- money never reads low ---------------------------------------------------------------------


def status_of(port: int) -> dict[str, Any] | None:
    r = get(port, "/status")
    return r.json() if r is not None and r.status_code == 200 else None


def test_a_replaced_key_does_not_give_back_todays_spend(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    fake.account.usage_daily = 14.0
    port = free_port()
    daemon(base_config(fake, tmp_path, extra="[budget]\ndaily_limit = 20.0\n", port=port)).start()
    first = wait_for(lambda: (s := status_of(port)) and s["spent_today"] and s, timeout=20)
    assert first["spent_today"] == 14.0
    with fake.lock:  # the key is replaced: every counter starts again near zero
        a = fake.account
        a.usage, a.usage_daily, a.usage_weekly, a.usage_monthly = 0.25, 0.25, 0.25, 0.25
    wait_for(
        lambda: (s := status_of(port)) and s["spent_today"] >= 14.25 - 1e-9,
        timeout=20,
        what="spend today to keep what the old key showed, plus the new key's",
    )
    preflight = get(port, "/preflight?cost=6")
    assert preflight is not None and preflight.status_code == 409  # $14.25 + $6 > $20


def test_east_of_utc_the_providers_day_counts_from_the_first_poll(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """In Pacific/Auckland the provider's UTC day is either inside the local day (a lower
    bound) or overlaps its start (an upper bound, the conservative end while our samples
    do not cover the local day): either way $18 counts from the first poll."""
    fake.account.usage_daily = 18.0
    port = free_port()
    extra = '[budget]\ntimezone = "Pacific/Auckland"\ndaily_limit = 15.0\n'
    proc = daemon(base_config(fake, tmp_path, extra=extra, port=port)).start()
    status = wait_for(lambda: (s := status_of(port)) and s["spent_today"] is not None and s)
    assert status["spent_today"] >= 18.0
    wait_for(lambda: proc.events("poll"), what="a poll")
    findings = wait_for(lambda: (s := status_of(port)) and s["findings"])
    daily = [f for f in findings if f["rule"] == "daily_limit"]
    assert daily and daily[0]["severity"] == "critical" and "usage_daily" in daily[0]["basis"]
    assert not (tmp_path / "run" / "permit").exists()


def test_data_from_the_future_is_kept_and_launches_wait_for_the_clock(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """A restored VM or an NTP step: the state holds samples newer than now. New samples
    are not dropped, the spend keeps counting, and it is no-go until the clock catches up."""
    from datetime import UTC, datetime, timedelta

    from watchdog.core.model import Sample

    future = datetime.now(UTC) + timedelta(hours=1)
    with open_state(tmp_path) as store, store.unit() as unit:
        unit.add_samples([Sample(future, 100.0, usage_daily=2.0)])
    fake.account.usage, fake.account.usage_daily = 103.0, 5.0
    port = free_port()
    proc = daemon(base_config(fake, tmp_path, port=port)).start()
    status = wait_for(
        lambda: (s := status_of(port)) and any(f["rule"] == "clock" for f in s["findings"]) and s,
        timeout=20,
        what="a clock finding",
    )
    assert status["permit"] == "revoked" and status["state"] == "critical"
    assert status["spent_today"] >= 5.0  # the new sample counted
    assert not (tmp_path / "run" / "permit").exists()
    assert proc.events("clock_behind_data")
    with open_state(tmp_path) as store:
        assert len(store.history(future - timedelta(days=1))) >= 2  # nothing dropped


def test_reservations_survive_a_restart_and_leave_the_permits_headroom(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    import json
    import signal

    fake.account.usage_daily = 2.0
    port = free_port()
    config = base_config(fake, tmp_path, extra="[budget]\ndaily_limit = 20.0\n", port=port)
    first = daemon(config).start()
    permit = tmp_path / "run" / "permit"
    wait_for(permit.exists, timeout=20, what="the permit")
    held = httpx.post(f"http://127.0.0.1:{port}/preflight?cost=15&hold=1h", timeout=5)
    assert held.status_code == 200
    wait_for(
        lambda: json.loads(permit.read_text())["headroom_usd"] <= 3.0 + 1e-6,
        timeout=20,
        what="the permit's headroom to leave the $15 out",
    )
    assert gate(permit, "--cost", "10").returncode == 1  # the file agrees with the daemon
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    second = daemon(config).start()
    status = wait_for(lambda: status_of(port), timeout=20, what="the restarted daemon")
    assert status["reserved_usd"] == 15.0 and status["reservations_count"] == 1
    wait_for(lambda: status_of(port)["permit"] == "armed", timeout=20)  # type: ignore[index]
    again = httpx.post(f"http://127.0.0.1:{port}/preflight?cost=15&hold=1h", timeout=5)
    assert again.status_code == 409  # the same $15 is not granted twice
    assert second.proc is not None


# -- a full disk, a second daemon, a hung provider -------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for the state: a disk that really fills up (mount needs root)."""
    mount = tmp_path / "state"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of `directory` to the last byte. Unbuffered: a buffered file
    kept what did not fit and raised it again when closed (as the free space happened not
    to be a multiple of the chunk)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError:
                pass
    return filler


def test_a_full_disk_at_start_is_one_clear_line(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tiny_disk: Path
) -> None:
    fill(tiny_disk)
    proc = daemon(base_config(fake, tiny_disk.parent)).start()
    assert proc.wait(timeout=20) in (1, 2)
    err = proc.stderr_path.read_text()
    assert "Traceback" not in proc.output()
    assert "state" in err.lower() and len(err.strip().splitlines()) == 1


def test_a_disk_that_fills_mid_run_is_critical_with_its_cause(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tiny_disk: Path
) -> None:
    tmp_path = tiny_disk.parent
    port = free_port()
    proc = daemon(base_config(fake, tmp_path, port=port)).start()
    permit = tmp_path / "run" / "permit"
    wait_for(permit.exists, timeout=20, what="the permit")
    filler = fill(tiny_disk)
    status = wait_for(
        lambda: (s := status_of(port)) and any(f["rule"] == "state" for f in s["findings"]) and s,
        timeout=30,
        what="a state finding",
    )
    assert status["permit"] == "revoked" and status["state"] == "critical"
    assert status["last_error"] and "full" in status["last_error"].lower()
    assert not permit.exists()
    health = get(port, "/healthz")
    assert health is not None and health.status_code == 503
    assert "full" in health.json()["reason"].lower()
    filler.unlink()  # space again: the next tick writes, the permit comes back
    wait_for(permit.exists, timeout=30, what="the permit after space was freed")
    assert proc.events("tick_failed")


def test_a_second_daemon_on_a_symlink_to_the_state_is_refused(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    first = daemon(base_config(fake, tmp_path)).start()
    permit = tmp_path / "run" / "permit"
    wait_for(permit.exists, timeout=20, what="the first daemon's permit")
    alias = tmp_path / "alias"
    alias.mkdir()
    (alias / "state.db").symlink_to(tmp_path / "state" / "state.db")
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    config = base_config(fake, tmp_path).replace(
        f'path = "{tmp_path}/state/state.db"', f'path = "{alias}/state.db"'
    )
    second = DaemonProcess(second_dir, config, name="second").start()
    try:
        assert second.wait(timeout=20) == 1
    finally:
        second.stop()
    assert "another budget-watchdog" in second.stderr_path.read_text()
    assert permit.exists()  # the first one's permit is untouched
    assert first.proc is not None and first.proc.poll() is None


def test_while_the_provider_hangs_staleness_follows_the_clock(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    port = free_port()
    extra = '[budget]\nstale_after = "3s"\n'
    config = base_config(fake, tmp_path, extra=extra, port=port).replace(
        'timeout = "2s"', 'timeout = "20s"'
    )
    daemon(config).start()
    permit = tmp_path / "run" / "permit"
    wait_for(permit.exists, timeout=20, what="the permit")
    fake.fault(Fault(status=200, delay=25))  # every poll now hangs for 25 s
    status = wait_for(lambda: (s := status_of(port)) and s["permit"] == "revoked" and s, timeout=12)
    assert status["stale"] is True
    assert any(f["rule"] == "stale" for f in status["findings"])
    assert gate(permit).returncode == 1  # the lease ended with the data's freshness
    fake.clear_faults()


def test_a_crashed_daemons_permit_is_removed_at_boot_before_any_poll(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    port = free_port()
    config = base_config(fake, tmp_path, port=port).replace('timeout = "2s"', 'timeout = "20s"')
    first = daemon(config).start()
    permit = tmp_path / "run" / "permit"
    wait_for(permit.exists, timeout=20, what="the first permit")
    first.stop()  # SIGKILL: its permit stays behind, still within its lease
    assert permit.exists() and gate(permit).returncode == 0
    fake.fault(Fault(status=200, delay=15))  # the restarted daemon's first poll hangs
    daemon(config).start()
    health = wait_for(lambda: get(port, "/healthz"), timeout=20, what="the server")
    assert not permit.exists()  # removed before the server answered, before any poll
    assert gate(permit).returncode == 1
    assert health.status_code == 503 and "starting" in health.json()["reason"]
    fake.clear_faults()


def test_corrupt_saved_reservations_stop_the_start_with_one_line(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    (tmp_path / "state").mkdir()
    holds = tmp_path / "state" / "state.db.holds.json"
    holds.write_text('{"holds": [{"id": "x", "amount": 15.0, "until": "2099-01-01T00:00:00+00:00"')
    proc = daemon(base_config(fake, tmp_path)).start()
    assert proc.wait(timeout=20) == 2
    err = proc.stderr_path.read_text()
    assert str(holds) in err and "grant the same money twice" in err
    assert "Traceback" not in proc.output() and len(err.strip().splitlines()) == 1


def test_a_hold_changes_the_permits_headroom_at_once(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """No tick needed between the hold and the file: gate --cost agrees with --url."""
    import json

    port = free_port()
    extra = "[budget]\ndaily_limit = 20.0\n"
    config = (
        base_config(fake, tmp_path, extra=extra, port=port)
        .replace('poll_interval = "1s"', 'poll_interval = "30s"')
        .replace("[killswitch]\n", '[killswitch]\nttl = "2m"\n')
    )
    config = config.replace("[budget]\n", '[budget]\nstale_after = "5m"\n')
    daemon(config).start()
    permit = tmp_path / "run" / "permit"
    wait_for(permit.exists, timeout=20, what="the permit")
    assert json.loads(permit.read_text())["headroom_usd"] == 18.0
    held = httpx.post(f"http://127.0.0.1:{port}/preflight?cost=15&hold=1h", timeout=5)
    assert held.status_code == 200
    assert json.loads(permit.read_text())["headroom_usd"] == 3.0  # at once, not next tick
    assert gate(permit, "--cost", "5").returncode == 1
    released = httpx.delete(
        f"http://127.0.0.1:{port}/preflight/{held.json()['reservation']['id']}", timeout=5
    )
    assert released.status_code == 200
    assert json.loads(permit.read_text())["headroom_usd"] == 18.0


def test_a_permit_path_turned_directory_still_stops_cleanly(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    import signal

    proc = daemon(base_config(fake, tmp_path)).start()
    permit = tmp_path / "run" / "permit"
    wait_for(permit.exists, timeout=20, what="the permit")
    permit.unlink()
    permit.mkdir()
    wait_for(lambda: proc.events("permit_write_failed"), timeout=20)
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert "Traceback" not in proc.output()
    assert proc.events("stopped")
