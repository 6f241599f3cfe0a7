"""The gpg-agents a run leaves behind, and stopping them.

gpg starts a gpg-agent for every GnuPG home it signs with, makes keys in or
lists secret keys of, and the agent outlives gpg: a pit has several homes
(the notary's, the operator's, the filters', each trader's), so a demo and a
few commands used to leave a dozen agents running.  A command, the demo and
the benchmarks run inside :func:`stopped_after`, which stops the agents that
appeared during the run in the homes it names, and leaves alone any agent
that was running before (the user's own, or a daemon's).

Agents are found by their command line in /proc (``gpg-agent --homedir H
... --daemon``, as gpg starts them; H may be the short link
pit.keyring.gpg_home makes for a long home): no gpg process is run to ask.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["exit_on_sigterm", "running", "stop", "stopped_after"]


def _under(home: str, roots: tuple[str, ...]) -> bool:
    return any(home == r or home.startswith(r.rstrip("/") + "/") for r in roots)


def running(roots: Iterable[str | os.PathLike]) -> dict[int, str]:
    """{pid: GnuPG home} of the gpg-agents whose home is one of *roots* or
    under one of them.  O(processes)."""
    want = tuple(str(Path(r).resolve()) for r in roots)
    found: dict[int, str] = {}
    if not want:
        return found
    try:
        procs = os.listdir("/proc")
    except OSError:                     # no /proc: nothing to find, nothing stopped
        return found
    for name in procs:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv[0].endswith(b"gpg-agent") or b"--homedir" not in argv:
            continue
        i = argv.index(b"--homedir")
        home = argv[i + 1].decode(errors="replace") if i + 1 < len(argv) else ""
        if not home:
            continue
        if not _under(home, want):
            # a long home is given to gpg as a short link (pit.keyring.gpg_home)
            home = os.path.realpath(home)
            if not _under(home, want):
                continue
        found[int(name)] = home
    return found


def stop(pids: Iterable[int], wait: float = 2.0) -> None:
    """Stop these agents (SIGTERM) and wait up to *wait* seconds for them to go."""
    pids = set(pids)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if os.path.exists(f"/proc/{p}")
                and not _zombie(p)}
        if pids:
            time.sleep(0.01)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


@contextmanager
def stopped_after(roots: Iterable[str | os.PathLike | None]) -> Iterator[None]:
    """Run the body, then stop the agents it started in homes at or under
    *roots* (None entries are skipped); agents running before are kept."""
    roots = [r for r in roots if r]
    before = set(running(roots))
    try:
        yield
    finally:
        stop(set(running(roots)) - before)


def exit_on_sigterm() -> None:
    """Make SIGTERM (``kill``, ``timeout``, a CI job's time limit) end the
    program through its ``finally`` blocks, so the agents, servers and mail
    systems it started are stopped as on Ctrl-C.  Call from a program's
    main(), in the main thread."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
