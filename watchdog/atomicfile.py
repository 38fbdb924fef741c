"""Files other processes read, written whole or not at all: a temp file in the same
directory, fsync, rename over the old one, fsync the directory. A reader sees the old
content or the new, never a part; a crash leaves one or the other."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

DIR_MODE = 0o755


def directory_of(path: Path, mode: int = DIR_MODE) -> Path:
    """`path`'s directory, made (with `mode`, whatever the umask) when missing."""
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=mode, parents=True, exist_ok=True)
        os.chmod(directory, mode)  # mkdir's mode is filtered by the umask
    return directory


def write(path: Path, data: bytes, mode: int, *, durable: bool = True) -> None:
    """Replace `path` with `data` atomically, the file's permissions `mode`. Raise OSError.
    Without `durable`, no fsync: still all or nothing for a reader, but a power cut may
    lose the change (for files rewritten from scratch at every start anyway)."""
    directory = directory_of(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        write_all(fd, data)
        os.fchmod(fd, mode)
        if durable:
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
    if durable:
        fsync_dir(directory)


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a short write is not an error)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable (best effort)."""
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
