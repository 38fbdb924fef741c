"""A lock file held for a process's life: an exclusive flock (released by the kernel when
the process ends, however it ends) with the holder's pid inside, for the message a second
process gets. The state file has one (a second daemon on the same state), and so does a
keys directory of per-key permits (a second daemon on the same permit path)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO


class Held(Exception):
    """Another process holds the lock; `holder` is the pid it wrote ("unknown" if none)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by pid {holder}")
        self.path = path
        self.holder = holder


class Unwritable(OSError):
    """The lock was free but this process's pid could not be written into it (a full
    disk); the lock is not held."""


def take(path: Path) -> TextIO:
    """Open `path` (made if missing) and hold an exclusive lock on it for as long as the
    returned file stays open, with this process's pid written in it. Held when another
    process holds it; OSError when it cannot be opened, Unwritable when the pid cannot be
    written."""
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held by the caller
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise Held(path, holder) from None
    try:
        # Unbuffered: a buffered write that fails on a full disk fails again on close.
        os.ftruncate(handle.fileno(), 0)
        os.pwrite(handle.fileno(), f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        handle.close()
        raise Unwritable(exc.errno, exc.strerror, str(path)) from None
    return handle
