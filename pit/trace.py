"""Where the mail path's time goes: a trace of one order's journey, off by default.

Set ``PIT_TRACE`` to a file name before a process starts (or call
:func:`enable`) and the notary's server, the notary and the filter daemons
append one line per hop to it:

    <CLOCK_MONOTONIC ns> <pid> <thread> <event> [key=value ...]

for example ``... commit-... group.durable n=3 first=812 last=814``.  The
clock is the machine's monotonic clock, the same in every process of the
host, so the lines of ``pit mailman serve`` and ``pit mailman daemon`` (or
of one benchmark process running both) merge by time.  Each line is one
``write`` to a file opened with ``O_APPEND``: lines of several processes
never interleave.  ``python -m bench.lmtp --trace FILE`` turns it on and
prints the breakdown per hop (docs/pit-book.md, "The mail path").

Off, :func:`mark` is one global test: it stays on the hot path.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["enable", "disable", "enabled", "mark", "read"]

_fd: int | None = None


def enable(path: str | os.PathLike) -> None:
    """Append trace lines to *path* from now on (creating it)."""
    global _fd
    disable()
    _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def disable() -> None:
    global _fd
    fd, _fd = _fd, None
    if fd is not None:
        os.close(fd)


def enabled() -> bool:
    return _fd is not None


def mark(event: str, **fields) -> None:
    """One trace line for *event* now, with *fields* (values without spaces)."""
    fd = _fd
    if fd is None:
        return
    parts = [str(time.monotonic_ns()), str(os.getpid()),
             threading.current_thread().name.replace(" ", "_"), event]
    parts += [f"{k}={v}" for k, v in fields.items()]
    try:
        os.write(fd, (" ".join(parts) + "\n").encode("utf-8", "replace"))
    except OSError:
        pass                                # a trace never stops the pit


def read(path: str | os.PathLike) -> list[tuple[int, int, str, str, dict[str, str]]]:
    """The lines of a trace file, sorted by time: ``(ns, pid, thread, event, fields)``."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            words = line.split()
            if len(words) < 4 or not words[0].isdigit():
                continue
            fields = dict(w.split("=", 1) for w in words[4:] if "=" in w)
            out.append((int(words[0]), int(words[1]), words[2], words[3], fields))
    out.sort(key=lambda e: e[0])
    return out


if os.environ.get("PIT_TRACE"):
    enable(os.environ["PIT_TRACE"])
