"""Files other processes read, written whole or not at all: a temp file in the same
directory, fsync, rename over the old one, fsync the directory. A reader sees the old
content or the new, never a part; a crash leaves one or the other.

`rewrite` is for many small files rewritten often (the per-key permits): each has a spare
beside it, written and swapped in with the file in one atomic exchange (Linux's
renameat2 RENAME_EXCHANGE), so no inode is made and freed per write — on ext4, creating
a file in a directory of hundreds cost ten times what the rest of a write costs. Where
the exchange is not there (another kernel or libc, a file system without it), it is a
plain `write`. Its readers must read until two reads agree (see `rewrite`)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import threading
from collections.abc import Callable
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


def rewrite(path: Path, spare: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data` atomically for its readers, not durably (as `write`
    without `durable`), through `spare` (a name beside it that no reader asks for): the
    spare is written and exchanged with `path`, and then holds the old content, to be
    written over next time. The file under `path` is never written in place, so a read
    right after opening it sees one whole content; but a reader that holds it open across
    two rewrites reads the spare being written over: empty, or a mix of two contents that
    may even parse. Such a read is not repeatable, so readers read until two reads in a
    row agree (as `gate` does). Raise OSError."""
    exchange = _exchange()
    if exchange is None:
        write(path, data, mode, durable=False)
        return
    try:
        kind = os.lstat(path).st_mode
    except FileNotFoundError:
        kind = None
    if kind is not None and not stat.S_ISREG(kind):
        # Not a file of ours (a directory, a FIFO, a link someone put there): never swap
        # it in as the spare; a plain write replaces it, or fails (a directory) and the
        # caller takes the key as having no permit.
        write(path, data, mode, durable=False)
        return
    # Not truncated on opening: writing over the spare's bytes and cutting it only where
    # it is longer costs a fifth of truncating it and writing it again (the file system
    # frees and allocates its blocks then); a caller that pads its contents to a few
    # sizes (as KeyPermits does) rarely cuts at all.
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(spare, flags, mode)
    except OSError as exc:
        if exc.errno not in _NOT_A_SPARE:
            raise
        fd = -1
    if fd >= 0:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            os.close(fd)  # a FIFO with a reader, a device: not ours to write into
            fd = -1
    if fd < 0:  # no usable spare (not ours to remove): this write goes without one
        write(path, data, mode, durable=False)
        return
    try:
        write_all(fd, data)
        if found.st_size > len(data):
            os.ftruncate(fd, len(data))
        if stat.S_IMODE(found.st_mode) != mode:
            os.fchmod(fd, mode)  # the umask filtered open's mode; an old spare had another
    finally:
        os.close(fd)
    if kind is None:  # no file yet: the spare becomes it, and a new spare is made now,
        os.replace(spare, path)  # not at the next rewrite (a file's first)
        with contextlib.suppress(OSError):
            os.close(os.open(spare, flags, mode))
        return
    try:
        exchange(spare, path)
    except FileNotFoundError:  # removed since it was looked at: the spare becomes it
        os.replace(spare, path)
    except OSError as exc:
        # EINVAL: a file system without it; ENOSYS: an old kernel; EPERM: a seccomp
        # filter's answer (systemd's SystemCallErrorNumber=, as in our unit).
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
            raise
        _no_exchange()  # this file system (or kernel) cannot: plain writes from now on
        os.replace(spare, path)


# What opening a spare meets when something not ours is at its name: a directory, a
# symbolic link (O_NOFOLLOW), a FIFO without a reader (O_NONBLOCK), a path through a file.
_NOT_A_SPARE = (errno.EISDIR, errno.ENOTDIR, errno.ELOOP, errno.ENXIO)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_lock = threading.Lock()
_state: list[Callable[[Path, Path], None] | None] = []  # [] until looked up


def _exchange() -> Callable[[Path, Path], None] | None:
    """renameat2(RENAME_EXCHANGE) from the C library, or None where there is none."""
    with _lock:
        if not _state:
            _state.append(_lookup())
        return _state[0]


def _no_exchange() -> None:
    with _lock:
        _state[:] = [None]


def _lookup() -> Callable[[Path, Path], None] | None:
    import ctypes  # here: only the daemon rewrites key files, not every CLI command

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2  # glibc 2.28+, musl 1.2.3+
    except (OSError, AttributeError):
        return None
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int

    def exchange(a: Path, b: Path) -> None:
        if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE):
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(b))

    return exchange
