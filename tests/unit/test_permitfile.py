"""The permit file: atomic, world-readable writes, and revocation as an unlink."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watchdog import permitfile as permit
from watchdog.permit_json import parse_object

NOW = datetime(2026, 11, 27, 14, tzinfo=UTC)


def test_written_permit_is_world_readable_json_in_a_0755_dir(tmp_path: Path) -> None:
    path = tmp_path / "run" / "budget-watchdog" / "permit"
    old = os.umask(0o077)
    try:
        permit.write(path, permit.permit_body(NOW, timedelta(minutes=5), 42.5, 3.25, 10.0))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    body = json.loads(path.read_text())
    assert body == {
        "state": "armed",
        "issued_at": NOW.isoformat(),
        "expires_at": (NOW + timedelta(minutes=5)).isoformat(),
        "balance": 42.5,
        "runway_days": 3.25,
        "headroom_usd": 10.0,
        "keys_epoch": None,
    }
    assert [p.name for p in path.parent.iterdir()] == ["permit"]  # no temp file left


def test_revoke_removes_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "permit"
    assert permit.revoke(path) is False
    permit.write(path, permit.permit_body(NOW, timedelta(minutes=5), None, None))
    assert permit.revoke(path) is True
    assert not path.exists()


def test_a_reader_never_sees_a_partial_permit(tmp_path: Path) -> None:
    """The writer arms, refreshes and revokes as fast as it can; a reader hammering the
    file sees either no file or a whole, valid permit."""
    path = tmp_path / "permit"
    stop = threading.Event()
    seen = {"valid": 0, "missing": 0, "bad": 0}

    def reader() -> None:
        while not stop.is_set():
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                seen["missing"] += 1
                continue
            try:
                body = parse_object(raw.decode())
                assert body["state"] == "armed"
                seen["valid"] += 1
            except (ValueError, AssertionError):
                seen["bad"] += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(600):
        body = permit.permit_body(
            NOW + timedelta(seconds=i), timedelta(minutes=5), 1000.0 - i, i / 7
        )
        permit.write(path, body)
        if i % 5 == 4:
            permit.revoke(path)
    stop.set()
    for t in threads:
        t.join()
    assert seen["bad"] == 0
    assert seen["valid"] > 100 and seen["missing"] > 0


def test_the_issuer_writes_its_keys_epoch_into_the_permit(tmp_path: Path) -> None:
    path = tmp_path / "permit"
    issuer = permit.Issuer(path, lambda: NOW, keys_epoch="0123456789abcdef")
    issuer.arm(timedelta(minutes=5), 80.0, 6.0, 12.0, reserved=2.0)
    body = parse_object(path.read_text())
    assert body["keys_epoch"] == "0123456789abcdef" and body["headroom_usd"] == 10.0
    issuer.keys_epoch = None  # a daemon without per-key permits
    issuer.reissue(reserved=3.0)
    assert parse_object(path.read_text())["keys_epoch"] is None
