"""Every key of the account through the real daemon and a loopback fake OpenRouter: one
key running away loses only its own permit (and, with action = "disable", is disabled at
the provider, then re-enabled once its findings clear), keys are followed across renames,
and a deleted key gets one notice."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import DaemonProcess, base_config, gate, get, wait_for
from tests.fake_openrouter import FakeOpenRouter, key_row
from tests.servers import free_port

BATCH = "b" * 64
SUMMARISER = "5" * 64
KEYS = """
[[budget.keys]]
match = "batch-*"
daily_limit = {limit}
action = "{action}"
"""


def start(
    fake: FakeOpenRouter,
    daemon: Callable[..., DaemonProcess],
    tmp_path: Path,
    *,
    action: str = "revoke",
    limit: float = 5.0,
) -> tuple[DaemonProcess, int]:
    if not fake.other_keys:
        fake.other_keys += [key_row(BATCH, "batch-pipeline"), key_row(SUMMARISER, "summariser")]
    extra = KEYS.format(limit=limit, action=action)
    port = free_port()
    proc = daemon(base_config(fake, tmp_path, management=True, extra=extra, port=port)).start()
    return proc, port


def key_status(port: int, name: str) -> dict[str, object] | None:
    r = get(port, "/status")
    if r is None or r.status_code != 200:
        return None
    return next((k for k in r.json().get("keys", []) if k["name"] == name), None)


def test_one_runaway_key_stops_only_its_own_jobs(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    permit = tmp_path / "run" / "permit"
    proc, port = start(fake, daemon, tmp_path)
    wait_for(lambda: gate(permit, "--key", "batch-pipeline").returncode == 0, what="key go")
    assert gate(permit, "--key", "summariser").returncode == 0
    unknown = gate(permit, "--key", "nobody-has-this")
    assert unknown.returncode == 1 and "keeps no permit for it" in unknown.stderr

    fake.spend_key(BATCH, 6.0)  # over its $5 daily limit
    fake.spend_key(SUMMARISER, 1.0)
    stopped = wait_for(
        lambda: (r := gate(permit, "--key", "batch-pipeline")).returncode == 1 and r,
        what="the runaway key's no-go",
    )
    assert "key 'batch-pipeline'" in stopped.stderr and "daily limit" in stopped.stderr
    assert gate(permit, "--key", "summariser").returncode == 0  # other jobs still go
    assert gate(permit).returncode == 0  # and the account's permit stands

    batch = key_status(port, "batch-pipeline")
    assert batch is not None and batch["permit"] == "revoked"
    assert batch["spent_today"] == 6.0 and batch["findings"]
    summariser = key_status(port, "summariser")
    assert summariser is not None and summariser["permit"] == "armed"
    no = get(port, "/preflight?key=batch-pipeline&cost=1")
    assert no is not None and no.status_code == 409
    assert any("batch-pipeline" in r for r in no.json()["reasons"])
    ok = get(port, "/preflight?key=summariser&cost=1")
    assert ok is not None and ok.status_code == 200
    metrics = get(port, "/metrics")
    assert metrics is not None
    assert 'budget_watchdog_key_permit_armed{key="batch-pipeline"} 0.0' in metrics.text
    assert 'budget_watchdog_key_permit_armed{key="summariser"} 1.0' in metrics.text
    # The alert names the key, once.
    alerts = [a for a in proc.events("alert") if a.get("rule") == "daily_limit"]
    assert len(alerts) == 1 and "Key batch-pipeline" in alerts[0]["message"]


def test_action_disable_disables_the_key_and_re_enables_it_when_cleared(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    permit = tmp_path / "run" / "permit"
    proc, _ = start(fake, daemon, tmp_path, action="disable")
    wait_for(lambda: gate(permit, "--key", "batch-pipeline").returncode == 0, what="key go")
    fake.spend_key(BATCH, 6.0)
    wait_for(lambda: (BATCH, {"disabled": True}) in fake.patches, what="the key disabled")
    assert not any(h == SUMMARISER for h, _ in fake.patches)  # only that key
    assert gate(permit, "--key", "batch-pipeline").returncode == 1
    # The operator raises the key's limit and restarts: its findings clear, and the key
    # the watchdog disabled (remembered across the restart) is re-enabled.
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    again, _ = start(fake, daemon, tmp_path, action="disable", limit=20.0)
    wait_for(lambda: (BATCH, {"disabled": False}) in fake.patches, what="the key re-enabled")
    wait_for(lambda: gate(permit, "--key", "batch-pipeline").returncode == 0, what="key go")
    assert [p for p in fake.patches if p[0] == BATCH] == [
        (BATCH, {"disabled": True}),
        (BATCH, {"disabled": False}),
    ]
    assert again.events("key_enabled")


def test_keys_are_followed_across_a_rename_and_a_deletion(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    permit = tmp_path / "run" / "permit"
    proc, port = start(fake, daemon, tmp_path)
    fake.spend_key(BATCH, 6.0)
    wait_for(lambda: gate(permit, "--key", "batch-pipeline").returncode == 1, what="no-go")
    fake.rename_key(BATCH, "batch-nightly")
    renamed = wait_for(lambda: key_status(port, "batch-nightly"), what="the new name")
    # Its history came along (spend today is still $6) and its permit with it.
    assert renamed["spent_today"] == 6.0 and renamed["permit"] == "revoked"
    assert key_status(port, "batch-pipeline") is None
    assert gate(permit, "--key", "batch-nightly").returncode == 1
    assert gate(permit, "--key", "batch-pipeline").returncode == 1  # its file is gone
    fake.delete_key(BATCH)
    wait_for(lambda: key_status(port, "summariser") and not key_status(port, "batch-nightly"))
    wait_for(lambda: proc.events("key_deleted"), what="the deletion")
    ticks = len(proc.events("poll"))
    wait_for(lambda: len(proc.events("poll")) >= ticks + 3, what="three more polls")
    kinds = [(a["kind"], a["rule"]) for a in proc.events("alert")]
    # One firing and one notice; no resolution, no re-firing under the new name.
    assert kinds.count(("firing", "daily_limit")) == 1, kinds
    assert kinds.count(("notice", "key_deleted")) == 1, kinds
    assert ("resolved", "daily_limit") not in kinds
    files = sorted(p.name for p in (tmp_path / "run" / "permit.keys").iterdir())
    assert "batch-nightly" not in files and "summariser" in files
    body = json.loads((tmp_path / "run" / "permit.keys" / "summariser").read_text())
    assert body["state"] == "armed" and re.fullmatch(r"[0-9a-f]{16}", body["epoch"])
