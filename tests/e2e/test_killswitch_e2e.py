"""The permit of the real daemon: a lease that dies with it, trips and arms from the CLI,
and the provider-side key disable against the fake OpenRouter."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import DaemonProcess, base_config, cli, gate, wait_for
from tests.fake_openrouter import FakeOpenRouter


def test_a_stopped_daemon_leaves_no_permit(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    permit = tmp_path / "run" / "permit"
    proc = daemon(base_config(fake, tmp_path)).start()
    wait_for(permit.exists, what="the permit")
    first = json.loads(permit.read_text())
    wait_for(
        lambda: json.loads(permit.read_text())["issued_at"] != first["issued_at"],
        what="a refreshed permit",
    )
    assert gate(permit).returncode == 0
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert not permit.exists()
    result = gate(permit)
    assert result.returncode == 1
    assert "no permit at" in result.stderr


def test_a_killed_daemons_permit_expires(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    permit = tmp_path / "run" / "permit"
    config = base_config(fake, tmp_path).replace("[killswitch]\n", '[killswitch]\nttl = "2s"\n')
    proc = daemon(config).start()
    wait_for(permit.exists, what="the permit")
    proc.signal(signal.SIGKILL)
    proc.wait()
    assert permit.exists()  # nobody removed it...
    time.sleep(2.2)
    result = gate(permit)  # ...but the lease ran out: no-go
    assert result.returncode == 1
    assert "expired" in result.stderr


def test_trip_and_arm_from_the_cli_while_the_daemon_runs(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    permit = tmp_path / "run" / "permit"
    proc = daemon(base_config(fake, tmp_path)).start()
    wait_for(permit.exists, what="the permit")
    tripped = cli(proc.config, "trip", "--reason", "suspicious invoice")
    assert tripped.returncode == 0, tripped.stderr
    assert "permit revoked by" in tripped.stdout
    assert not permit.exists()  # at once, not at the next tick
    polls = len(proc.events("poll"))
    wait_for(lambda: len(proc.events("poll")) >= polls + 2, what="two more ticks")
    assert not permit.exists()
    assert proc.events("poll")[-1]["permit"] == "revoked"
    armed = cli(proc.config, "arm")
    assert armed.returncode == 0, armed.stderr
    wait_for(permit.exists, what="the permit re-armed")
    assert gate(permit).returncode == 0


def test_revoke_disables_the_key_at_the_provider_and_rearm_enables_it(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    permit = tmp_path / "run" / "permit"
    # The balance is $200; under $180 is critical (a top-up brings it back the same day:
    # a daily limit, once crossed, holds until the provider's day ends).
    config = base_config(
        fake, tmp_path, management=True, extra="[budget]\nmin_balance = 180.0\n"
    ).replace("[killswitch]\n", "[killswitch]\ndisable_keys = true\n")
    proc = daemon(config).start()
    wait_for(permit.exists, what="the permit")
    fake.spend(25.0)  # the balance falls to $175
    wait_for(lambda: fake.account.disabled, what="the key disabled at the provider")
    assert not permit.exists()
    wait_for(
        lambda: len(proc.events("poll")) >= 2 and proc.events("poll")[-1]["permit"] == "revoked",
        what="polling through /keys while /key answers 401",
    )
    assert not [e for e in proc.events("poll") if "auth:critical" in e["findings"]]
    with fake.lock:
        fake.account.total_credits += 100.0  # a top-up: $275
    wait_for(lambda: not fake.account.disabled, what="the key enabled again")
    wait_for(permit.exists, what="the permit re-armed")
    patches = [(m, p) for m, p, _ in fake.requests if m == "PATCH"]
    assert len(patches) == 2
