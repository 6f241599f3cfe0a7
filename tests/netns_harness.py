"""Hosts of a test's own on one machine: network namespaces joined by veth links.

``Hosts(["a", "b", "c"])`` makes one network namespace per host, named
``pit<pid>-<host>`` (loopback up, nothing else), and ``link("a", "b")``
joins two of them by a veth pair with a /24 of its own (``10.77.N.1`` on
the first, ``10.77.N.2`` on the second): those addresses exist only inside
the namespaces.  Every program of a host runs in its namespace:

* ``run(host, argv)`` / ``popen(host, argv)``: ``ip netns exec`` (the
  program and its children stay there);
* ``with hosts.inside(host):`` moves the calling *thread* there (setns),
  so what it starts meanwhile (a harness's Postfix, Mailman, threads) is
  that host's; it comes back on exit.

``set_link(a, b, up)`` takes a link down (both ends lose the route: a
connection fails at once) and back up.  ``close()`` kills every process
left in the namespaces and deletes them (the veth pairs go with them); it
runs from the test's finalizer, at exit, and on SIGTERM/SIGHUP (then the
test unwinds as on an interrupt), and a later run removes what a killed
run (SIGKILL) left: namespaces whose pid is gone.

``netns_available()`` is '' when this can run here, else the reason.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

IP = shutil.which("ip") or "/usr/sbin/ip"
NETNS_DIR = Path("/var/run/netns")
CLONE_NEWNET = 0x40000000
_NAME = re.compile(r"^pit(\d+)-[a-z0-9]+$")


def _ip(*words: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([IP, *words], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(words)}: {proc.stderr.strip()}")
    return proc


def netns_available() -> str:
    if os.getuid() != 0:
        return "network namespaces need root"
    if not Path(IP).exists():
        return "iproute2 (ip) is not installed (make sysdeps installs it)"
    name = f"pit{os.getpid()}-probe"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return ""


def _pids_in(ns: str) -> list[int]:
    out = _ip("netns", "pids", ns, check=False).stdout.split()
    return [int(p) for p in out if p.isdigit() and int(p) != os.getpid()]


def _remove(ns: str) -> None:
    """Kill what runs in ``ns`` and delete it (its veth ends go with it)."""
    for _ in range(3):
        pids = _pids_in(ns)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    _ip("netns", "del", ns, check=False)


def sweep_stale() -> None:
    """Remove the namespaces of earlier runs whose process is gone."""
    if not NETNS_DIR.is_dir():
        return
    for path in NETNS_DIR.iterdir():
        m = _NAME.match(path.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            _remove(path.name)


_setns = ctypes.CDLL(None, use_errno=True).setns


def _enter(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


class Hosts:
    def __init__(self, names: list[str]):
        sweep_stale()
        self.tag = f"pit{os.getpid()}"
        self.ns = {name: f"{self.tag}-{name}" for name in names}
        self.links: dict[tuple[str, str], tuple[str, str]] = {}   # (a, b) -> veth names
        self.address: dict[tuple[str, str], str] = {}             # (host, peer) -> address
        self._closed = False
        self._handlers = {}
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            for ns in self.ns.values():
                _ip("netns", "add", ns)
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def _on_signal(self, signum, frame) -> None:
        """Stopped by a signal: the hosts and all they run go first, then the
        test unwinds (its finalizers remove its files)."""
        self.close()
        previous = self._handlers.get(signum)
        if callable(previous):
            previous(signum, frame)
        raise SystemExit(128 + signum)

    def link(self, a: str, b: str) -> tuple[str, str]:
        """Join hosts ``a`` and ``b``; return (a's address, b's address)."""
        n = len(self.links) + 1
        ends = (f"{self.tag}{a}{b}", f"{self.tag}{b}{a}")     # at most 15 characters
        _ip("link", "add", ends[0], "netns", self.ns[a], "type", "veth",
            "peer", "name", ends[1], "netns", self.ns[b])
        addrs = (f"10.77.{n}.1", f"10.77.{n}.2")
        for host, end, addr in ((a, ends[0], addrs[0]), (b, ends[1], addrs[1])):
            _ip("-n", self.ns[host], "addr", "add", f"{addr}/24", "dev", end)
            _ip("-n", self.ns[host], "link", "set", end, "up")
        self.links[a, b] = ends
        self.address[a, b], self.address[b, a] = addrs
        return addrs

    def set_link(self, a: str, b: str, up: bool) -> None:
        """Take the link between ``a`` and ``b`` down (or up) at ``b``'s end."""
        ends = self.links.get((a, b)) or self.links[b, a][::-1]
        _ip("-n", self.ns[b], "link", "set", ends[1], "up" if up else "down")

    def exec_prefix(self, host: str) -> list[str]:
        return [IP, "netns", "exec", self.ns[host]]

    def run(self, host: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 300)
        return subprocess.run(self.exec_prefix(host) + list(argv), **kw)

    def popen(self, host: str, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.exec_prefix(host) + list(argv), **kw)

    @contextlib.contextmanager
    def inside(self, host: str) -> Iterator[None]:
        """Run the calling thread in ``host``'s network namespace meanwhile."""
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _enter(str(NETNS_DIR / self.ns[host]))
            try:
                yield
            finally:
                if _setns(back, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the test's namespace")
        finally:
            os.close(back)

    def close(self) -> None:
        """Kill what runs in the hosts and delete them; idempotent."""
        if self._closed:
            return
        self._closed = True
        for ns in self.ns.values():
            _remove(ns)
        for sig, handler in self._handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    def __enter__(self) -> "Hosts":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
