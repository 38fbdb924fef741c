"""The permit file: it exists while batch launches are allowed (`watchdog.core.permit`
decides; this writes).

The permit is a lease. While nothing demands a stop it is rewritten every tick with
`expires_at = now + ttl`; a reader treats a missing file, bad JSON or an expired lease as
no-go, so a dead watchdog stops launches by itself (fail-closed). Writes are atomic: a temp
file in the same directory, fsync, rename; revoking is an unlink. The file is 0644 in a
0755 directory so jobs of other users can read it.

Beside it, `<permit>.keys/` holds one file per API key of the account (`KeyPermits`), named
`permit_json.key_file_name(name)`. Those are rewritten only when they change, not every tick:
the account permit's lease covers them, and its `keys_epoch` names the daemon run whose key
files it vouches for (a new run starts with an empty directory and a new epoch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import secrets
import stat
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from watchdog import atomicfile, pidlock
from watchdog.permit_json import key_file_name

PERMIT_MODE = 0o644


def permit_body(
    now: datetime,
    ttl: timedelta,
    balance: float | None,
    runway_days: float | None,
    headroom: float | None = None,
    keys_epoch: str | None = None,
) -> dict[str, object]:
    """The permit file's JSON: the DESIGN contract plus `headroom_usd`, what may still be
    spent before a critical threshold (gate --cost compares against it), and `keys_epoch`,
    the epoch of the key permits this daemon run writes (`KeyPermits.epoch`; None when it
    keeps none)."""
    finite_runway = runway_days if runway_days is not None and runway_days < 1e9 else None
    return {
        "state": "armed",
        "issued_at": now.isoformat(),
        "expires_at": (now + ttl).isoformat(),
        "balance": None if balance is None else round(balance, 6),
        "runway_days": None if finite_runway is None else round(finite_runway, 3),
        "headroom_usd": None if headroom is None else round(headroom, 6),
        "keys_epoch": keys_epoch,
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
    Thread-safe: the tick arms and revokes, the server re-issues. `keys_epoch` goes into
    every permit written (set it to `KeyPermits.start()`'s epoch before the first arm)."""

    def __init__(
        self, path: Path, clock: Callable[[], datetime], keys_epoch: str | None = None
    ) -> None:
        self.path = path
        self.clock = clock
        self.keys_epoch = keys_epoch
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
        body = permit_body(issued, expires - issued, balance, runway, left, self.keys_epoch)
        write(self.path, body)


# Held by the daemon that writes a keys directory (a dot file: no key's file is named so).
LOCK_NAME = ".lock"


class KeyPermitsLocked(OSError):
    """Another process writes this keys directory."""


# The lock of each keys directory this process holds (by real path): shared by its
# KeyPermits of that directory (never a conflict with itself, as when a test restarts one
# in-process), and released when the last of them is gone (the file closes with it).
_HELD: dict[Path, weakref.ref[TextIO]] = {}
_HELD_LOCK = threading.Lock()


def keys_directory(path: Path) -> Path:
    """Where the key permits of the account permit at `path` live: `<path>.keys`."""
    return path.with_name(path.name + ".keys")


@dataclass(frozen=True, slots=True)
class KeyPermit:
    """What one key's permit says: go (`armed`) or not and why, and what a job on that key
    may still spend (`headroom`, USD; None when no limit applies)."""

    name: str
    hash: str | None
    armed: bool
    reason: str = ""
    headroom: float | None = None


# What a key's file says, as compared between syncs: state, reason, hash, headroom, epoch.
_Content = tuple[str, str, str | None, float | None, str]


class KeyPermits:
    """The per-key permits in `directory` (`keys_directory(permit path)`): one file per key,
    written only when what it says changes. `start()` once, then `sync()` every tick and
    `clear()` when everything is revoked or the daemon stops. OSError propagates from each
    (the daemon makes it a finding); a key whose file could not be rewritten has its old
    file removed, so it never says more than it should. Thread-safe like `Issuer`."""

    def __init__(self, directory: Path, clock: Callable[[], datetime]) -> None:
        self.directory = directory
        self.clock = clock
        self._lock = threading.Lock()
        self._epoch: str | None = None
        self._written: dict[str, _Content] = {}  # by key name: what its file says
        self._file_names: dict[str, str] = {}  # key_file_name's, by key name
        self._base: dict[str, KeyPermit] = {}  # by key name: the permit as last given
        self._held: dict[str, float] = {}  # by key hash: what reservations hold
        self._lock_file: TextIO | None = None  # the directory's lock, once started

    @property
    def epoch(self) -> str | None:
        """This run's epoch (what the account permit's keys_epoch must say); None before
        `start()`."""
        return self._epoch

    def start(self) -> str:
        """Make the directory (0755), take its lock (`.lock`, held while this process
        lives: one writer per directory; KeyPermitsLocked when another process holds it),
        remove every file in it (an earlier run's), pick a new epoch and return it."""
        with self._lock:
            self.directory.mkdir(mode=atomicfile.DIR_MODE, parents=True, exist_ok=True)
            os.chmod(self.directory, atomicfile.DIR_MODE)  # mkdir's mode passes the umask
            self._take_lock()
            self._remove_all()
            self._written.clear()
            self._epoch = secrets.token_hex(8)
            return self._epoch

    def sync(self, states: Mapping[str, KeyPermit]) -> int:
        """Make the files say `states` (each key's permit by its name): write those whose
        state, reason, hash, headroom (to the cent, rounded down) or epoch changed since
        they were last written, issued now, and remove those of keys not in `states`.
        Return how many files were written or removed. A name no file can have (empty,
        with NUL) is skipped: gate cannot ask for it either."""
        with self._lock:
            epoch = self._epoch
            if epoch is None:
                raise RuntimeError("KeyPermits.sync() before start()")
            changed = 0
            failed: OSError | None = None
            for name in [n for n in self._written if n not in states]:
                del self._written[name]
                self._base.pop(name, None)
                try:
                    changed += self._unlink(key_file_name(name))
                except OSError as exc:  # the others are still written
                    failed = failed or exc
            for name, permit in states.items():
                try:
                    changed += self._put(name, permit, epoch)
                except OSError as exc:
                    failed = failed or exc
            if failed is not None:
                raise failed
            return changed

    def update(self, changed: Mapping[str, KeyPermit], removed: Iterable[str] = ()) -> int:
        """Like `sync`, for only what changed: write `changed` (when what they say
        differs from their files) and remove the files of `removed`; other keys' files
        stay. With hundreds of keys, a tick touches only the few that moved."""
        with self._lock:
            epoch = self._epoch
            if epoch is None:
                raise RuntimeError("KeyPermits.update() before start()")
            count = 0
            failed: OSError | None = None
            for name in removed:
                if name in changed:
                    continue
                self._written.pop(name, None)
                self._base.pop(name, None)
                try:
                    count += self._unlink(key_file_name(name))
                except ValueError:
                    continue  # a name no file can have: there is none
                except OSError as exc:  # a removal that fails stops no other key's write
                    failed = failed or exc
            for name, permit in changed.items():
                try:
                    count += self._put(name, permit, epoch)
                except OSError as exc:  # that key's file is gone (no-go); the others go on
                    failed = failed or exc
            if failed is not None:
                raise failed
            return count

    def hold(self, held: Mapping[str, float]) -> int:
        """What pre-flight reservations hold per key (by hash) changed: rewrite the files
        whose headroom it lowers (or raises again), so `gate --key --cost` agrees with
        `/preflight?key=` at once. Return how many files were written. OSError."""
        with self._lock:
            epoch = self._epoch
            if epoch is None or held == self._held:
                return 0
            touched = set(held) ^ set(self._held) | {
                h for h in held if self._held.get(h) != held[h]
            }
            self._held = dict(held)
            count = 0
            for name, permit in list(self._base.items()):
                if permit.hash in touched:
                    count += self._put(name, permit, epoch)
            return count

    def _put(self, name: str, permit: KeyPermit, epoch: str) -> int:
        if name != permit.name:
            raise ValueError(f"key permit of {permit.name!r} filed under {name!r}")
        self._base[name] = permit
        held = self._held.get(permit.hash or "", 0.0)
        if held and permit.headroom is not None:
            permit = dataclasses.replace(permit, headroom=permit.headroom - held)
        file_name = self._file_names.get(name)
        if file_name is None:
            try:
                file_name = key_file_name(name)
            except ValueError:
                return 0
            if len(self._file_names) >= 4 * len(self._written) + 64:
                self._file_names.clear()  # names that came and went
            self._file_names[name] = file_name
        content = _content(permit, epoch)
        if self._written.get(name) == content:
            return 0
        self._written.pop(name, None)
        try:
            self._write(file_name, name, content)
        except OSError:
            with contextlib.suppress(OSError):  # never leave it saying too much
                self._unlink(file_name)
            raise
        self._written[name] = content
        return 1

    def clear(self) -> int:
        """Remove every file in the directory (the epoch stays); the next sync writes them
        all again. Return how many were removed."""
        with self._lock:
            self._written.clear()
            self._base.clear()  # nor may a reservation's change write them back meanwhile
            return self._remove_all()

    def _write(self, file_name: str, name: str, content: _Content) -> None:
        state, reason, key_hash, headroom, epoch = content
        body = {
            "key": name,
            "hash": key_hash,
            "state": state,
            "reason": reason,
            "epoch": epoch,
            "issued_at": self.clock().isoformat(),
            "headroom_usd": headroom,
        }
        # Not fsynced: a key's file only ever counts beside an account permit of the same
        # epoch, and every start writes them all again under a new one. Swapped with its
        # spare (`.<file>.spare`, a dot file no key's name gives): no file is created
        # per write (see atomicfile.rewrite).
        atomicfile.rewrite(
            self.directory / file_name,
            self.directory / f".{file_name}.spare",
            _padded(json.dumps(body)),
            PERMIT_MODE,
        )

    def _unlink(self, file_name: str) -> bool:
        """Remove a key's file (OSError when it cannot be), then its spare (anything but a
        file of ours there is left alone)."""
        try:
            os.unlink(self.directory / file_name)
        except FileNotFoundError:
            removed = False
        else:
            removed = True
        with contextlib.suppress(OSError):
            os.unlink(self.directory / f".{file_name}.spare")
        return removed

    def _take_lock(self) -> None:
        """Hold `.lock` in the directory for this process's life. Two daemons writing one
        directory would swap each other's spares in: a key could go back to an older
        "armed" (atomicfile.rewrite has one writer per file)."""
        if self._lock_file is not None:
            return
        real = self.directory.resolve()
        with _HELD_LOCK:
            held = _HELD.get(real)
            handle = held() if held is not None else None
            if handle is None:  # no KeyPermits of this process holds it (any more)
                handle = self._flock()
                _HELD[real] = weakref.ref(handle)
            self._lock_file = handle  # shared by this process's KeyPermits of the directory

    def _flock(self) -> TextIO:
        try:
            return pidlock.take(self.directory / LOCK_NAME)
        except pidlock.Held as held:
            raise KeyPermitsLocked(
                f"another budget-watchdog (pid {held.holder}) writes the keys' permits in "
                f"{self.directory}; give this one its own killswitch.path"
            ) from None

    def _remove_all(self) -> int:
        """Unlink every entry of the directory but subdirectories (none of ours); return
        how many were key permits (dot files, the spares and temp files, are not)."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        removed = 0
        for entry in entries:
            if entry.name == LOCK_NAME or stat.S_ISDIR(entry.stat(follow_symlinks=False).st_mode):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += not entry.name.startswith(".")  # spares and temp files aside
        if removed:
            atomicfile.fsync_dir(self.directory)
        return removed


# A key's file is padded with spaces (JSON's whitespace, before its newline) to a multiple
# of this many bytes: a rewrite then writes over its spare's bytes without cutting it.
PAD_TO = 256


def _padded(text: str) -> bytes:
    data = text.encode()
    return data.ljust(-(-(len(data) + 1) // PAD_TO) * PAD_TO - 1) + b"\n"


def _content(permit: KeyPermit, epoch: str) -> _Content:
    """What `permit`'s file says: a revoked key keeps its reason, an armed one says none;
    the headroom is cut down to two significant digits, and to whole cents ($4.87 → $4.80,
    $0.376 → $0.37): a file never promises a cent not there, and a key that spends does
    not rewrite its file at every tick."""
    headroom = permit.headroom
    if headroom is not None:
        if not math.isfinite(headroom):  # NaN or infinite: no number to promise
            headroom = 0.0 if headroom != math.inf else None
        else:
            headroom = _coarse(max(0.0, headroom))
    if permit.armed:
        return ("armed", "", permit.hash, headroom, epoch)
    return ("revoked", permit.reason, permit.hash, headroom, epoch)


def _coarse(usd: float) -> float:
    """`usd` rounded down to two significant digits, and never finer than a cent."""
    cents = math.floor(round(usd * 100, 6))
    if cents >= 100:
        step = 10 ** (len(str(cents)) - 2)
        cents -= cents % step
    return cents / 100
