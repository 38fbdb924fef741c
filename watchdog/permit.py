"""The kill switch: a permit file that exists while batch launches are allowed.

The permit is a lease. While nothing demands a stop it is rewritten every tick with
`expires_at = now + ttl`; a reader treats a missing file, bad JSON or an expired lease as
no-go, so a dead watchdog stops launches by itself (fail-closed). Writes are atomic: a temp
file in the same directory, fsync, rename; revoking is an unlink. The file is 0644 in a
0755 directory so jobs of other users can read it.

`decide` is the pure part: findings, manual override and latch in, armed or revoked out.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from watchdog.config import KillswitchConfig
from watchdog.rules import Finding

PERMIT_MODE = 0o644
DIR_MODE = 0o755


@dataclass(frozen=True)
class Trip:
    """A manual stop: `budget-watchdog trip --reason TEXT`."""

    reason: str
    by: str
    at: datetime


@dataclass(frozen=True)
class Decision:
    """What the permit should be after this tick, and why."""

    armed: bool
    reason: str
    causes: tuple[str, ...] = ()
    latched: bool = False
    actor: str = "rules"


def decide(
    findings: Sequence[Finding],
    config: KillswitchConfig,
    *,
    trip: Trip | None = None,
    latched: bool = False,
) -> Decision:
    """Given this tick's findings, the kill-switch config, a manual trip (if any) and
    whether an earlier revocation is latched, return the permit decision."""
    if trip is not None:
        return Decision(
            False, f"tripped by {trip.by}: {trip.reason}", ("manual",), latched, actor=trip.by
        )
    causes = [f for f in findings if f.rule != "stale" and f.severity in config.revoke_on]
    if config.on_stale == "revoke":
        causes += [f for f in findings if f.rule == "stale"]
    if causes:
        reason = "; ".join(
            f"{f.rule} {f.severity}{' (predicted)' if f.predicted else ''}" for f in causes
        )
        return Decision(False, reason, tuple(f.rule for f in causes), latched=config.latch)
    if latched:
        return Decision(
            False,
            "latched: revoked earlier; `budget-watchdog arm` re-arms it",
            ("latch",),
            latched=True,
        )
    return Decision(True, "no finding demands a stop")


def permit_body(
    now: datetime,
    ttl: timedelta,
    balance: float | None,
    runway_days: float | None,
    headroom: float | None = None,
) -> dict[str, object]:
    """The permit file's JSON: the DESIGN contract plus `headroom_usd`, what may still be
    spent before a critical threshold (gate --cost compares against it)."""
    finite_runway = runway_days if runway_days is not None and runway_days < 1e9 else None
    return {
        "state": "armed",
        "issued_at": now.isoformat(),
        "expires_at": (now + ttl).isoformat(),
        "balance": None if balance is None else round(balance, 6),
        "runway_days": None if finite_runway is None else round(finite_runway, 3),
        "headroom_usd": None if headroom is None else round(headroom, 6),
    }


def write(path: Path, body: dict[str, object]) -> None:
    """Atomically (re)write the permit: temp file in the same directory, fsync, rename."""
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask
    data = (json.dumps(body) + "\n").encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.write(fd, data)
        os.fchmod(fd, PERMIT_MODE)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def revoke(path: Path) -> bool:
    """Remove the permit (an atomic unlink); True if there was one."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    _fsync_dir(path.parent)
    return True


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
