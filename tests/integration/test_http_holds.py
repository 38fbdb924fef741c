"""Reservations kept on disk: a restart does not forget money already promised."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watchdog.server import Reservations

NOW = datetime(2026, 11, 27, 14, tzinfo=UTC)


def test_holds_are_saved_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "state.db.holds.json"
    first = Reservations(path=path)
    kept = first.add(15.0, NOW + timedelta(hours=1), "nightly")
    gone = first.add(3.0, NOW + timedelta(hours=2), "released")
    assert first.release(gone.id)
    again = Reservations(path=path)
    assert again.total(NOW) == 15.0
    assert [h.id for h in again.active(NOW)] == [kept.id]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_expired_holds_are_dropped_on_reload(tmp_path: Path) -> None:
    path = tmp_path / "holds.json"
    Reservations(path=path).add(5.0, NOW + timedelta(minutes=1))
    later = Reservations(path=path)
    assert later.total(NOW + timedelta(minutes=2)) == 0.0
    assert json.loads(path.read_text()) == {"holds": []}


def test_a_corrupt_file_starts_empty_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "holds.json"
    path.write_text("{not json")
    assert Reservations(path=path).total(NOW) == 0.0


def test_a_hold_that_cannot_be_saved_is_not_granted(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    holds = Reservations(path=blocker / "holds.json")
    try:
        holds.add(1.0, NOW + timedelta(hours=1))
    except OSError:
        pass
    else:
        raise AssertionError("the hold was granted without being saved")
    assert holds.total(NOW) == 0.0
