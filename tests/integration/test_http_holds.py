"""Reservations kept on disk: a restart does not forget money already promised."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watchdog.server import HoldsUnreadable, Reservations

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


def test_a_corrupt_file_is_refused_rather_than_forgotten(tmp_path: Path) -> None:
    """Starting without the holds would grant the same money twice: refuse, say which."""
    path = tmp_path / "holds.json"
    path.write_text('{"holds": [{"id": "a", "amount": 15.0, "until": "x"}]} junk')
    with pytest.raises(HoldsUnreadable, match=r"holds\.json"):
        Reservations(path=path)


def test_a_change_re_issues_with_the_total_held(tmp_path: Path) -> None:
    told: list[float] = []
    holds = Reservations(path=tmp_path / "holds.json", on_change=told.append)
    kept = holds.add(15.0, NOW + timedelta(hours=1))
    holds.add(2.5, NOW + timedelta(hours=1))
    holds.release(kept.id)
    assert told == [15.0, 17.5, 2.5]


def test_a_hold_that_cannot_be_saved_is_not_granted(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir()
    holds = Reservations(path=directory / "holds.json")
    directory.rmdir()
    directory.write_text("the state's directory is gone: a file stands there")
    with pytest.raises(OSError):
        holds.add(1.0, NOW + timedelta(hours=1))
    assert holds.total(NOW) == 0.0
