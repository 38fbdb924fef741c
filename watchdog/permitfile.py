"""The permit file: it exists while batch launches are allowed (`watchdog.core.permit`
decides; this writes).

The permit is a lease. While nothing demands a stop it is rewritten every tick with
`expires_at = now + ttl`; a reader treats a missing file, bad JSON or an expired lease as
no-go, so a dead watchdog stops launches by itself (fail-closed). Writes are atomic: a temp
file in the same directory, fsync, rename; revoking is an unlink. The file is 0644 in a
0755 directory so jobs of other users can read it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from watchdog import atomicfile

PERMIT_MODE = 0o644


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


def probe(path: Path) -> None:
    """Check at start that the permit can be written where it is configured: the
    directory is made (as a write would) and a temp file written and removed. Raise
    OSError with the reason when not, so a daemon that could never arm says so at once."""
    directory = atomicfile.directory_of(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=directory)
    try:
        atomicfile.write_all(fd, b"{}\n")
    finally:
        os.close(fd)
        os.unlink(tmp)
    if path.exists() and not path.is_file():
        raise IsADirectoryError(21, "not a regular file", str(path))


def write(path: Path, body: dict[str, object]) -> None:
    """Atomically (re)write the permit, world-readable in a 0755 directory."""
    atomicfile.write(path, (json.dumps(body) + "\n").encode(), PERMIT_MODE)


def revoke(path: Path) -> bool:
    """Remove the permit (an atomic unlink); True if there was one."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    atomicfile.fsync_dir(path.parent)
    return True


class Issuer:
    """Writes and removes the permit, and remembers the lease it last wrote, so that a new
    reservation can re-issue it at once with less headroom (`gate --cost` reading the file
    then agrees with `gate --url` asking the daemon, without waiting for the next tick).
    Thread-safe: the tick arms and revokes, the server re-issues."""

    def __init__(self, path: Path, clock: Callable[[], datetime]) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._lease: tuple[datetime, datetime, float | None, float | None, float | None] | None
        self._lease = None

    def arm(
        self,
        lease: timedelta,
        balance: float | None,
        runway_days: float | None,
        headroom: float | None,
        reserved: float,
    ) -> None:
        """Write the permit for `lease` from now; `headroom` before reservations. OSError."""
        with self._lock:
            issued = self.clock()
            self._lease = (issued, issued + lease, balance, runway_days, headroom)
            self._write(reserved)

    def revoke(self) -> bool:
        """Remove the permit; True if there was one. OSError."""
        with self._lock:
            self._lease = None
            return revoke(self.path)

    def reissue(self, reserved: float) -> None:
        """The reservations changed: rewrite the armed permit's headroom (same lease). A
        permit that cannot be rewritten is removed rather than left saying too much."""
        with self._lock:
            if self._lease is None or self._lease[1] <= self.clock():
                return
            try:
                self._write(reserved)
            except OSError:
                self._lease = None
                with contextlib.suppress(OSError):
                    revoke(self.path)

    def _write(self, reserved: float) -> None:
        assert self._lease is not None
        issued, expires, balance, runway, headroom = self._lease
        left = None if headroom is None else max(0.0, headroom - reserved)
        body = permit_body(issued, expires - issued, balance, runway, left)
        write(self.path, body)
