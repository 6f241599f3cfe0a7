"""Judge processes: the stateless part of the notary's judgement, done
beside the notary as mail arrives.

The notary's server judges, stamps and appends in one thread per pit (the
committer), and its threads share one interpreter lock: the signature's
extraction and check and the request's parse (docs/pit-book.md, "The mail
path") held a served pit to one core.  Those depend on the message's
bytes alone (and the signing key's material), so :class:`Judges` hands
each delivery, as its data arrives, to one of a few worker processes,
which run ``moderator.notary.prejudge`` on it; the committer finds the
result on the delivery when it takes the group, and ``Notary.judge``
takes from it the parse and the cryptographic check, and nothing else:
the key's standing (expiry, revocation, usage), the membership, the
refs, the clock and the request's resolution are judged by the committer,
in order, from the pit's state then.  A proof counts only for the key the
committer finds (the same fingerprint and material), so a key added,
removed or revoked meanwhile is honoured, and the outcome (records,
refusals, their bytes) is the inline judgement's.

Nothing waits for a judge: a result not there when the committer takes
the delivery (a judge slow, busy, stuck, dead, or not started yet) means
the committer judges that delivery itself, as it does without judges.
A judge that dies is started again (at most once a second a slot); one
whose oldest task is older than ``STUCK_SECONDS`` is killed and started
again.  The judges are processes of their own (``python -m
moderator.judges``, not forked: the server has threads by then), read
their tasks on stdin and end when it closes, or within a second when
the server is gone (killed: its pipes may live on in other children),
so nothing is left running.

Wire format: a task is ``!II`` (task number, length) and the message's
bytes; a reply is ``!I`` (length) and a pickle of ``[(task number,
Prejudged or None), ...]`` for the tasks of one read.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
import time

__all__ = ["Judges", "Ticket"]

log = logging.getLogger("moderator.judges")

MAX_TASK_BYTES = 64 * 1024      # larger messages (checkpoints) are judged in the notary only
MAX_INFLIGHT_BYTES = 512 * 1024  # per judge: its pipe (1 MiB) never fills, a write never waits
PIPE_BYTES = 1024 * 1024
STUCK_SECONDS = 10.0
RESTART_SECONDS = 1.0
REPLY_EVERY = 8                 # tasks judged before their replies go back
_TASK = struct.Struct("!II")
_REPLY = struct.Struct("!I")


class Ticket:
    """One delivery's bytes on their way to a judge; ``value`` is the
    judge's ``Prejudged`` (or None: nothing to take) once it replied
    (``done``)."""

    __slots__ = ("raw", "value", "done", "sent")

    def __init__(self, raw: bytes):
        self.raw = raw
        self.value = None
        self.done = False
        self.sent = time.monotonic()


class _Judge:
    """One judge process and what it was given (the lock guards ``inflight``)."""

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     bufsize=0)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except OSError:
                pass                      # the default size: the in-flight bound still holds
        self.pipe_bytes = fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_GETPIPE_SZ)
        self.lock = threading.Lock()
        self.inflight: dict[int, Ticket] = {}
        self.bytes = 0
        self.ready = threading.Event()    # set at its first reply: it has started
        self.dead = False
        self.died = 0.0
        self.reader = threading.Thread(target=self._read, name=f"judge-{self.proc.pid}",
                                       daemon=True)
        self.reader.start()

    def send(self, number: int, ticket: Ticket) -> bool:
        data = _TASK.pack(number, len(ticket.raw)) + ticket.raw
        with self.lock:
            if self.dead or self.bytes + len(data) > min(MAX_INFLIGHT_BYTES, self.pipe_bytes // 2):
                return False
            self.inflight[number] = ticket
            self.bytes += len(data)
            try:
                # Never waits: the pipe holds at most what is in flight.
                fd = self.proc.stdin.fileno()
                while data:
                    data = data[os.write(fd, data):]
                return True
            except (OSError, ValueError):
                pass
        self._died()
        return False

    def oldest(self) -> float | None:
        with self.lock:
            return min((t.sent for t in self.inflight.values()), default=None)

    def _read(self) -> None:
        out = self.proc.stdout
        try:
            while True:
                head = _read_exactly(out, _REPLY.size)
                if head is None:
                    break
                body = _read_exactly(out, _REPLY.unpack(head)[0])
                if body is None:
                    break
                replies = pickle.loads(body)
                self.ready.set()
                with self.lock:
                    for number, value in replies:
                        ticket = self.inflight.pop(number, None)
                        if ticket is not None:
                            ticket.value, ticket.done = value, True
                            self.bytes -= len(ticket.raw) + _TASK.size
        except Exception:
            log.exception("judge %d: unreadable reply", self.proc.pid)
        finally:
            self._died()
            out.close()

    def _died(self) -> None:
        with self.lock:
            if self.dead:
                return
            self.dead, self.died = True, time.monotonic()
            self.inflight.clear()         # their deliveries are judged by the notary
            self.bytes = 0
        self.kill()

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass

    def close(self, timeout: float) -> None:
        with self.lock:                   # no send after this
            self.dead = True
            self.died = self.died or time.monotonic()
            try:
                self.proc.stdin.close()   # the judge ends at the end of its input
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        self.reader.join(timeout)


def _read_exactly(f, n: int) -> bytes | None:
    parts, left = [], n
    while left:
        chunk = f.read(left)
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


class Judges:
    """``workers`` judge processes for the pit whose GnuPG home is
    ``gnupg`` (its key store is read, never written); messages larger than
    ``max_bytes`` are not judged here.  :meth:`submit` from any thread."""

    def __init__(self, gnupg: str | os.PathLike, max_bytes: int, workers: int = 2):
        self.argv = [sys.executable, "-m", "moderator.judges", os.fspath(gnupg),
                     str(max_bytes), str(os.getpid())]
        self.max_bytes = min(max_bytes, MAX_TASK_BYTES)
        self.size = workers
        self.judges: list[_Judge] = []
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._stopped = True

    def start(self) -> "Judges":
        with self._lock:
            self._stopped = False
            self.judges = [_Judge(self.argv) for _ in range(self.size)]
        return self

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopped = True
            judges, self.judges = self.judges, []
        for judge in judges:
            judge.close(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every judge has started (read its keys); False on timeout."""
        deadline = time.monotonic() + timeout
        return all(j.ready.wait(max(0.0, deadline - time.monotonic())) for j in list(self.judges))

    def pids(self) -> list[int]:
        return [j.proc.pid for j in self.judges if not j.dead]

    def submit(self, raw: bytes) -> Ticket | None:
        """Hand *raw* (LF line endings, as the notary judges it) to the
        least busy judge; its Ticket, or None when none takes it (too
        large, every judge full or down: the notary judges it alone)."""
        if len(raw) > self.max_bytes or self._stopped:
            return None
        ticket = Ticket(raw)
        for judge in sorted(self._ready(), key=lambda j: j.bytes):
            if judge.send(next(self._numbers), ticket):
                return ticket
        return None

    def tend(self) -> None:
        """Replace judges that died or are stuck (the notary calls this
        once a group, as :meth:`submit` does at each delivery)."""
        self._ready()

    def _ready(self) -> list[_Judge]:
        """The judges that can take work, after replacing dead and stuck ones."""
        now = time.monotonic()
        with self._lock:
            if self._stopped:
                return []
            for i, judge in enumerate(self.judges):
                oldest = judge.oldest()
                if not judge.dead and oldest is not None and now - oldest > STUCK_SECONDS:
                    log.warning("judge %d: no reply for %.0f s: replaced", judge.proc.pid,
                                now - oldest)
                    judge._died()
                if judge.dead and now - judge.died >= RESTART_SECONDS:
                    judge.close(0)
                    self.judges[i] = _Judge(self.argv)
            return [j for j in self.judges if not j.dead]


# -- the judge process ----------------------------------------------------------

def _orphan_watch(parent: int) -> None:
    """End this judge when the process that started it is gone."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def serve(gnupg: str, max_bytes: int, parent: int) -> None:
    """Read tasks on stdin, write replies on stdout, until stdin ends."""
    from moderator.notary import prejudge
    from pit.keystore import KeyStore, StoreVerifier
    # The protocol has stdout to itself: anything printed goes to stderr.
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    if os.getppid() != parent:
        return
    threading.Thread(target=_orphan_watch, args=(parent,), daemon=True).start()
    verifier = StoreVerifier(KeyStore(gnupg))
    _reply(reply_fd, [])                  # started
    buf = bytearray()
    while True:
        chunk = os.read(0, PIPE_BYTES)
        if not chunk:
            return
        buf += chunk
        replies = []
        while len(buf) >= _TASK.size:
            number, n = _TASK.unpack_from(buf)
            if len(buf) < _TASK.size + n:
                break
            raw = bytes(buf[_TASK.size:_TASK.size + n])
            del buf[:_TASK.size + n]
            try:
                replies.append((number, prejudge(raw, verifier, max_bytes)))
            except Exception:
                replies.append((number, None))
            if len(replies) >= REPLY_EVERY:
                _reply(reply_fd, replies)
                replies = []
        if replies:
            _reply(reply_fd, replies)


def _reply(fd: int, replies: list) -> None:
    data = pickle.dumps(replies, pickle.HIGHEST_PROTOCOL)
    data = _REPLY.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data):]


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
