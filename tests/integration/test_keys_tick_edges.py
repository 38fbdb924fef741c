"""Many keys through a real tick: what the operator is told when a [[budget.keys]] entry
applies to no key, and when keys' permit files cannot be written."""

from __future__ import annotations

import errno
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import ListingAccount, build_tick
from watchdog import atomicfile, permitfile
from watchdog.config import load
from watchdog.core.model import Credits, KeyUsage, Snapshot

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)


class Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.warnings.append((event, kw))

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **kw: None


class Account(ListingAccount):
    """A provider and its management side listing `names` (every key idle)."""

    def __init__(self, clock: list[datetime], names: list[str]) -> None:
        self.clock, self.names = clock, names

    def fetch(self) -> Snapshot:
        keys = tuple(
            KeyUsage(usage=1.0, usage_daily=0.0, name=n, hash=f"{n:0>64}"[-64:]) for n in self.names
        )
        return Snapshot(self.clock[0], credits=Credits(100.0, 1.0), keys=keys)


def settings_for(tmp_path: Path, entries: list[dict[str, Any]]) -> Any:
    return load(
        None,
        require_key=False,
        overrides={
            "budget": {"keys": entries},
            "state": {"path": str(tmp_path / "state.db")},
            "killswitch": {"path": str(tmp_path / "permit")},
            "provider": {"management_key": "sk-or-v1-" + "0" * 64},
        },
    ).settings


def test_entries_that_apply_to_no_key_are_said_once(tmp_path: Path) -> None:
    """A typo in a glob is said once, in the log, with the entries concerned; said again
    only when that changes."""
    settings = load(
        None,
        require_key=False,
        overrides={
            "budget": {
                "keys": [
                    {"match": "batch-*", "daily_limit": 5.0},
                    {"match": "bacth-*", "daily_limit": 5.0},  # the typo
                    {"match": "batch-nightly", "daily_limit": 1.0},  # batch-* takes it first
                ]
            },
            "state": {"path": str(tmp_path / "state.db")},
            "killswitch": {"path": str(tmp_path / "permit")},
            "provider": {"management_key": "sk-or-v1-" + "0" * 64},
        },
    ).settings
    clock = [T0]
    account = Account(clock, ["batch-nightly", "ui"])
    log = Log()
    tick = build_tick(settings, account, lambda: clock[0], log=log)  # type: ignore[arg-type]

    def said() -> list[list[str]]:
        return [kw["match"] for event, kw in log.warnings if event == "budget_keys_unmatched"]

    for _ in range(3):
        tick.run()
        clock[0] += timedelta(minutes=1)
    assert said() == [["bacth-*", "batch-nightly"]]  # once, not at every poll
    account.names.append("bacth-7")  # a key the second entry matches after all
    tick.run()
    clock[0] += timedelta(minutes=1)
    assert said() == [["bacth-*", "batch-nightly"], ["batch-nightly"]]
    tick.store.close()


def test_keys_permit_files_that_cannot_be_written_warn_and_leave_the_account_armed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path, [{"match": "batch-*", "daily_limit": 5.0}])
    clock = [T0]
    account = Account(clock, ["batch-1", "ui"])
    tick = build_tick(settings, account, lambda: clock[0], log=Log())  # type: ignore[arg-type]
    tick.key_permits = permitfile.KeyPermits(
        permitfile.keys_directory(settings.killswitch.path), lambda: clock[0]
    )
    tick.permit.keys_epoch = tick.key_permits.start()

    def full(path: Path, spare: Path, data: bytes, mode: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(spare))

    def step() -> list[tuple[str, str, str]]:
        o = tick.run().outcome
        clock[0] += timedelta(minutes=1)
        assert o is not None
        return [(f.rule, f.severity, f.message) for f in o.findings if f.rule == "permit_write"]

    monkeypatch.setattr(atomicfile, "rewrite", full)
    assert step() == []  # the write fails in this tick; the next one says so
    [(_, severity, message)] = step()
    assert severity == "warning" and "No space left on device" in message
    assert "some keys' permit files" in message and ".spare" in message
    assert tick.view.armed  # the account stands; the keys' files are missing (no-go)
    assert not (tmp_path / "permit.keys" / "ui").exists()
    monkeypatch.undo()
    step()  # written again this tick
    assert step() == []
    assert (tmp_path / "permit.keys" / "ui").exists()
    tick.store.close()
