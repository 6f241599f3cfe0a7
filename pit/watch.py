"""Waking on the archive's appends, on the notary's host.

An append commits when the archive's new index is renamed into place
(pit.archive: data fsync'd, index fsync'd, renamed, directory fsync'd), so
a process that sees ``archives/index`` replaced knows that new records are
durable and readable.  ``AppendWatch`` waits for that moment:

    watch = AppendWatch(pit.root / "archives")
    while True:
        if watch.wait(timeout=1.0):
            ...            # the archive grew (or was rewritten): look at it

On Linux it uses inotify (through ctypes: the standard library has no
binding), so a waiter wakes within microseconds of the rename and costs
nothing while the pit is quiet.  Elsewhere, or when inotify cannot be had
(no more watches, a file system that does not support it), it reads the
index (a line a volume: every commit changes it) every ``poll`` seconds.  Either
way ``wait`` may also return True with nothing new (the caller looks at
the archive and finds nothing to do), never False when something changed
before the call: a change between two waits is seen by the next one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import time
from pathlib import Path

__all__ = ["AppendWatch"]

_IN_MOVED_TO = 0x00000080
_IN_CLOSE_WRITE = 0x00000008
_IN_CREATE = 0x00000100
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1, libc.inotify_add_watch   # noqa: B018  (present?)
        return libc
    except (OSError, AttributeError):
        return None


class AppendWatch:
    """Wait for commits of the archive in directory ``archive_dir``.

    ``poll``: the interval of the fallback without inotify.  Close it (or
    use it as a context manager) to release the inotify descriptor."""

    def __init__(self, archive_dir: str | os.PathLike, poll: float = 0.02):
        self.dir = Path(archive_dir)
        self.index = self.dir / "index"
        self.poll = poll
        self._fd: int | None = None
        self._seen = self._identity()
        libc = _libc()
        if libc is not None:
            fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
            if fd >= 0:
                wd = libc.inotify_add_watch(fd, os.fsencode(self.dir),
                                            _IN_MOVED_TO | _IN_CLOSE_WRITE | _IN_CREATE)
                if wd >= 0:
                    self._fd = fd
                else:
                    os.close(fd)

    @property
    def uses_inotify(self) -> bool:
        return self._fd is not None

    def _identity(self) -> bytes | None:
        try:
            return self.index.read_bytes()
        except OSError:
            return None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the index was replaced since the last call (True) or
        *timeout* seconds passed (False).  O(events)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._fd is not None and self._drain():
            self._seen = self._identity()
            return True
        while True:
            now = self._identity()
            if now != self._seen:
                self._seen = now
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if self._fd is None:
                time.sleep(self.poll if left is None else min(self.poll, left))
                continue
            ready, _, _ = select.select([self._fd], [], [], left)
            if ready and self._drain():
                self._seen = self._identity()
                return True

    def _drain(self) -> bool:
        """Read every queued event; True if one was the index's commit."""
        data = b""
        try:
            while chunk := os.read(self._fd, 64 * 1024):
                data += chunk
        except BlockingIOError:
            pass
        found, pos = False, 0
        while pos + _EVENT.size <= len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
            name = data[pos + _EVENT.size:pos + _EVENT.size + length].rstrip(b"\0")
            pos += _EVENT.size + length
            if name == b"index" and mask & (_IN_MOVED_TO | _IN_CLOSE_WRITE | _IN_CREATE):
                found = True
        return found

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "AppendWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
