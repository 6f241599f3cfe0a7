"""The pit's master record: mboxrd volumes, their index, locking, durable
appends and torn-tail repair.  See docs/pit-archive.5.md.

Layout of ``<pit>/archives/``::

    index              "VOLUME FIRST-SEQ LAST-SEQ COUNT BYTES" a line
    000001.mbox        records 1..50000 (mboxrd, see pit/mbox.py)
    000002.mbox        ...
    quarantine/        bytes cut off by repair, named by when and why

The index is the commit record.  An append writes the entries to the volume
and fsyncs it, and writes the new index to ``index.tmp`` and fsyncs it (the
two at once, in two threads), then renames ``index.tmp`` over ``index``
(then fsyncs the directory); ``append`` returns only then.  So a record is in the archive exactly when the index covers it:
bytes of a volume beyond the ``BYTES`` its index line gives (or a volume the
index does not list) belong to an append that never returned, and the next
writer (or ``repair()``) moves them to ``quarantine/`` and truncates.
Nothing an ``append`` reported done can be lost by a crash.

Writers lock the highest-numbered volume file, mail-system style: a dotlock
``NNNNNN.mbox.lock`` (written whole, then linked into place; a lock whose pid
is dead on this host, or older than ``STALE_LOCK_SECONDS`` from elsewhere, is
stale and broken) and then ``fcntl.lockf`` on the volume, held for the whole
append.  Readers take no
lock: they read what the index covers.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import queue
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pit import mbox, trace
from pit.record import Record

# hashlib (OpenSSL), socket and signal are imported where used: a reader
# (`pit replay`) starts without them.

__all__ = [
    "ArchiveError", "SequenceError", "LockTimeout", "Volume", "Archive",
    "record_hash", "entry_stamp", "ENTRY_HEAD", "VOLUME_LIMIT", "ZERO_HASH", "fsync_dir", "append_locked",
]

VOLUME_LIMIT = 50_000          # mairix refuses mboxes of more than 65,536 messages
ZERO_HASH = "0" * 64           # X-Pit-Prev of record 1
STALE_LOCK_SECONDS = 300       # a foreign dotlock older than this is broken
INDEX = "index"
INDEX_HEADER = "# VOLUME FIRST-SEQ LAST-SEQ COUNT BYTES\n"
_VOLUME_NAME = re.compile(r"^(\d{6})\.mbox$")
CRASH_ENV = "PIT_ARCHIVE_CRASH_AT"   # test hook: SIGKILL (STEP:stop: SIGSTOP) self at a write step


class ArchiveError(Exception):
    """The archive is damaged or cannot be written; the message names the
    volume (and byte offset) and what to do."""


class SequenceError(ArchiveError):
    """An append whose X-Pit-Seq is not last+1 (or whose X-Pit-Prev does not
    chain to the last record)."""


class LockTimeout(ArchiveError):
    """Another writer held the archive longer than the lock timeout."""


def record_hash(msg: bytes) -> str:
    """The record hash: hex SHA-256 of the stored message bytes (stamp and
    original, unquoted, without the ``From `` line).  O(len(msg))."""
    return _sha256(msg).hexdigest()


def _sha256(data: bytes):
    # Replaced by hashlib.sha256 itself on first use.
    global _sha256
    from hashlib import sha256 as _sha256
    return _sha256(data)


ENTRY_HEAD = 1 << 13         # entry_stamp copies an entry up to this long whole


def entry_stamp(buf, start: int, body: int, end: int) -> tuple[dict[str, str], bytes | None]:
    """``(stamp, entry)`` for the entry ``buf[start:end]`` whose message
    starts at *body* (an item of :meth:`Archive.entry_spans`): ``stamp`` is
    ``mbox.stamp`` of the message (the same dict, the same errors), and
    ``entry`` the entry's bytes when reading the stamp copied them (an
    entry up to 8 KiB), else None: of a larger one only the head is copied
    when its stamp block ends there.  O(stamp size) for an entry of any size."""
    if end - body <= ENTRY_HEAD:
        entry = buf[start:end]
        return mbox.stamp(entry, body - start), entry
    head = buf[body:body + ENTRY_HEAD]
    if len(mbox.split_stamp(head)[1]) >= 6:          # the line after the stamp is whole enough
        return mbox.stamp(head), None
    entry = buf[start:end]
    return mbox.stamp(entry, body - start), entry


_RUN_PATTERNS: dict[bytes, tuple] = {}


def _run_patterns(head: bytes):
    """``(match, search)`` for Archive.entry_runs: an entry starting with
    ``From `` and *head* at a position, and the next entry separator
    followed by such a head or by anything else (its groups are then None)."""
    p = _RUN_PATTERNS.get(head)
    if p is None:
        p = _RUN_PATTERNS[head] = (re.compile(b"From " + head).match,
                                   re.compile(b"\nFrom (?:" + head + b")?").search)
    return p


def _piece(seq: int, view: memoryview, start: int, end: int) -> Iterator[tuple[int, memoryview]]:
    """Yield ``(seq, view[start:end])``, released once the caller asks for
    the next item (or closes the generator): the volume's map can then be
    closed."""
    with view[start:end] as v:
        yield seq, v


class Volume(Record, frozen=True):
    """One index line: a volume's name, its first and last record, how many
    records it holds and its size in bytes."""
    name: str
    first: int
    last: int
    count: int
    bytes: int

    def line(self) -> str:
        return f"{self.name} {self.first} {self.last} {self.count} {self.bytes}\n"


def _hostname() -> str:
    import socket
    return socket.gethostname()


def _crash_point(step: str) -> None:
    # Lets the crash test kill the writer between two exact write steps
    # (or, with STEP:stop, stop it there, as a busy or paused writer).
    want = os.environ.get(CRASH_ENV)
    if want in (step, f"{step}:stop"):
        import signal
        os.kill(os.getpid(), signal.SIGSTOP if want.endswith(":stop") else signal.SIGKILL)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a created or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _volume_name(number: int) -> str:
    return f"{number:06d}.mbox"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _stale_lock(text: str, age: float) -> bool:
    """Whether a dotlock holding *text*, *age* seconds old, is stale: its
    process is dead on this host, or (from another host, or unreadable) it
    is older than STALE_LOCK_SECONDS."""
    parts = text.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1] == _hostname():
        try:
            os.kill(int(parts[0]), 0)
            return False                         # holder alive on this host
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return age > STALE_LOCK_SECONDS


class _VolumeLock:
    """Dotlock plus fcntl lock on one volume file (created if missing)."""

    def __init__(self, path: Path, timeout: float):
        self.path = path
        self.dot = path.with_name(path.name + ".lock")
        self.timeout = timeout
        self.token = f"{os.getpid()} {_hostname()}\n"
        self.fd: int | None = None

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        pause = 0.002
        # The dotlock is whole before it exists under its name, as liblockfile
        # and procmail make it: the token goes into a private file, which is then
        # hard-linked to the lock's name (link fails if the name exists).  A
        # writer killed at any moment leaves no lock or one naming its pid, never
        # an empty one that nobody could judge stale.
        mine = self.dot.with_name(f".{self.dot.name}.{os.getpid()}")
        fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, self.token.encode())
        finally:
            os.close(fd)
        try:
            while True:
                try:
                    os.link(mine, self.dot)
                    _crash_point("after-dotlock")
                    break
                except FileExistsError:
                    pass
                if self._break_if_stale():
                    continue
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{self.dot}: held by {self._holder()} for more than "
                                      f"{self.timeout:g} s") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        finally:
            os.unlink(mine)
        created = not self.path.exists()
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if created:
            fsync_dir(self.path.parent)
        try:             # the dotlock keeps out mail tools; fcntl keeps out NFS-less races
            self._take_fcntl(deadline)
        except BaseException:
            self.release()
            raise

    def relock(self) -> None:
        """Take the fcntl lock again: a no-op while this process still holds
        it, but closing any descriptor of the file drops it (POSIX), and
        reading the volume (its last record's hash, a torn tail's cut) opens
        and closes one.  A tool that took it meanwhile is waited for; what
        it wrote, the size check before the write refuses."""
        self._take_fcntl(time.monotonic() + self.timeout)

    def _take_fcntl(self, deadline: float) -> None:
        """The fcntl lock on the open volume, waited for until *deadline*."""
        while True:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{self.path}: fcntl lock held for more than "
                                      f"{self.timeout:g} s") from None
                time.sleep(0.002)

    def _holder(self) -> str:
        try:
            return self.dot.read_text().strip() or "?"
        except OSError:
            return "?"

    def _break_if_stale(self) -> bool:
        try:
            text = self.dot.read_text()
            age = time.time() - self.dot.stat().st_mtime
        except FileNotFoundError:
            return True                          # released meanwhile: retry
        if not _stale_lock(text, age):
            return False
        try:
            if self.dot.read_text() == text:     # still the lock we judged
                self.dot.unlink()
        except FileNotFoundError:
            pass
        return True

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None
        try:
            if self.dot.read_text() == self.token:
                self.dot.unlink()
        except FileNotFoundError:
            pass


def append_locked(path: Path, data: bytes, timeout: float = 60.0) -> None:
    """Append *data* to a plain mbox file (the reject record, a mailbox) under
    the same dotlock and fcntl lock as a volume, and fsync it before
    returning."""
    lock = _VolumeLock(Path(path), timeout)
    lock.acquire()
    try:
        with open(path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    finally:
        lock.release()


_WALK_STEP = 1 << 16         # bytes one search of the entry walk looks at
_WALK_LEAD = 1 << 18         # how far into one entry the walk from the end goes alone


class _Walk:
    """What :meth:`Archive._entry_starts` found in one volume: the starts of
    its first entries (``fwd``, from byte 0) and of its last ones (``back``,
    the last first), and where each side's search goes on."""

    __slots__ = ("vol", "fwd", "back", "f_scan", "b_end")

    def __init__(self, vol: Volume):
        self.vol = vol
        self.fwd = [0]
        self.back: list[int] = []
        self.f_scan = 0          # the forward search starts here
        self.b_end = vol.bytes   # the backward search ends here (exclusive)


# Append: fsync the new index.tmp beside the volume's data (True) or after
# it (False, the plain order); the files written are the same.
OVERLAP_FSYNCS = True


class _Beside:
    """One long-lived helper thread a process: :meth:`run` hands it
    ``fn(*args)`` and returns a handle whose ``result()`` waits for it and
    returns its value or raises its exception.  (A thread started for every
    append cost more CPU than the fsync it overlaps saves of the lock.)"""

    _lock = threading.Lock()
    _pid = -1
    _jobs: "queue.SimpleQueue | None" = None

    @classmethod
    def run(cls, fn, *args) -> "_Job":
        with cls._lock:
            if cls._pid != os.getpid():          # first use, or a forked child
                cls._jobs = queue.SimpleQueue()
                threading.Thread(target=cls._serve, args=(cls._jobs,), daemon=True,
                                 name="pit-archive-fsync").start()
                cls._pid = os.getpid()
            job = _Job(fn, args)
            cls._jobs.put(job)
        return job

    @staticmethod
    def _serve(jobs) -> None:
        while True:
            job = jobs.get()
            try:
                job.value = job.fn(*job.args)
            except BaseException as error:       # handed to result()
                job.error = error
            job.done.release()

    @classmethod
    def _forked(cls) -> None:
        cls._lock, cls._pid, cls._jobs = threading.Lock(), -1, None


os.register_at_fork(after_in_child=_Beside._forked)


class _Job:
    __slots__ = ("fn", "args", "value", "error", "done")

    def __init__(self, fn, args):
        self.fn, self.args = fn, args
        self.value = self.error = None
        self.done = threading.Lock()
        self.done.acquire()

    def result(self):
        self.done.acquire()
        if self.error is not None:
            raise self.error
        return self.value


# Append: keep what an append learned (the index's bytes and volumes, the
# last volume's identity, the last record hash) for the next append of the
# same Archive object, used only while the index's bytes and the last
# volume's inode, size and mtime are unchanged (True); read and check it all
# again every append (False, the plain way).
KEEP_KNOWN = True


class _Known:
    """What the last append of an :class:`Archive` left: the index's bytes,
    its volumes, the last volume's ``(dev, ino, size, mtime_ns)`` and the
    last record hash."""

    __slots__ = ("index", "vols", "ident", "last_hash")

    def __init__(self, index: bytes, vols: list[Volume], ident: tuple, last_hash: str):
        self.index, self.vols, self.ident, self.last_hash = index, vols, ident, last_hash


def _ident(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Archive:
    """The archive of the pit whose directory is *pit_dir* (volumes live in
    ``pit_dir/archives``).  *volume_limit* is the most messages a volume
    holds (a parameter for tests); *lock_timeout* is how long a writer waits
    for another."""

    def __init__(self, pit_dir: str | os.PathLike, volume_limit: int = VOLUME_LIMIT,
                 lock_timeout: float = 60.0):
        if volume_limit < 1:
            raise ValueError(f"volume_limit {volume_limit} must be at least 1")
        self.dir = Path(pit_dir) / "archives"
        self.volume_limit = volume_limit
        self.lock_timeout = lock_timeout
        self._walks: dict[str, _Walk] = {}     # volume name -> what _entry_starts found
        self._known: _Known | None = None       # what the last append learned (KEEP_KNOWN)
        self._parsed: tuple[bytes, list[Volume]] | None = None   # the last index read

    # -- reading (no lock) -------------------------------------------------------
    def volumes(self) -> list[Volume]:
        """The committed volumes, from the index.  O(volumes)."""
        vols = self._read_index()
        if vols is None:
            # The empty index is written before the first append, so a
            # missing index beside written volumes means it was lost.
            if any((self.dir / n).stat().st_size for n in self._volume_files()):
                raise ArchiveError(f"{self.dir / INDEX}: missing while volumes exist "
                                   "(run repair to rebuild it)")
            return []
        return vols

    def count(self) -> int:
        """How many records the archive holds.  O(volumes)."""
        return sum(v.count for v in self.volumes())

    def last_seq(self) -> int:
        """The last committed sequence number (0 when empty).  O(volumes)."""
        vols = self.volumes()
        return vols[-1].last if vols else 0

    def last_hash(self) -> str:
        """The record hash of the last record (``ZERO_HASH`` when empty).
        Reads only the tail of the last volume: O(last message)."""
        vols = self.volumes()
        return self._last_hash(vols)

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(seq, message bytes)`` for every record from *from_seq* to
        *to_seq* (inclusive), in order.  The index picks the first volume, so
        the cost is O(volumes + bytes of the volumes read), never the whole
        archive.  Raises :class:`ArchiveError` naming the volume and byte
        offset when a volume is shorter than the index says or damaged."""
        for vol in self.volumes():
            if vol.last < from_seq:
                continue
            if to_seq is not None and vol.first > to_seq:
                return
            for seq, msg in self._read_volume(vol, max(0, from_seq - vol.first)):
                if to_seq is not None and seq > to_seq:
                    return
                yield seq, msg

    def read_entries(self, from_seq: int = 1, to_seq: int | None = None
                     ) -> Iterator[tuple[int, bytes, int]]:
        """Like :meth:`read`, but ``(seq, entry, body_start)``: each record's
        mbox entry exactly as stored (``From `` line, mboxrd-quoted message,
        the separating newline), to be copied into another mbox without
        unquoting and quoting again; the message starts at
        ``entry[body_start:]`` (its stamp is never quoted).  See
        :meth:`entry_spans`, which this copies out of.
        O(bytes of the records from *from_seq* on)."""
        for seq, buf, start, body, end in self.entry_spans(from_seq, to_seq):
            yield seq, buf[start:end], body - start

    def entry_spans(self, from_seq: int = 1, to_seq: int | None = None
                    ) -> Iterator[tuple[int, "mmap.mmap", int, int, int]]:
        """``(seq, buf, start, body, end)`` for every record from *from_seq*
        to *to_seq*: the record's mbox entry as stored is ``buf[start:end]``
        and its (quoted) message ``buf[body:end]``, *buf* being the volume
        memory-mapped and valid until the next item.  Nothing is copied, so a
        caller that wants only some records (by :func:`entry_stamp`) never
        copies the others, however large.  The first entry wanted is found
        by walking back from the end of its volume, and forward from its
        start when that is shorter (see :meth:`_entry_starts`), so reading
        the newest records scans neither the older ones nor a large record
        in between.  Each record's X-Pit-Seq is checked against its place.
        O(records yielded + bytes walked)."""
        for vol in self.volumes():
            if vol.last < from_seq:
                continue
            if to_seq is not None and vol.first > to_seq:
                return
            with self._volume_map(vol) as mm:
                starts, seq = self._entry_starts(vol, mm, from_seq)
                for seq, pos, body, nxt in self._spans(vol, mm, starts, seq):
                    if to_seq is not None and seq > to_seq:
                        return
                    yield seq, mm, pos, body, nxt

    def _spans(self, vol: Volume, mm, starts: list[int], seq: int
               ) -> Iterator[tuple[int, int, int, int]]:
        """entry_spans of one mapped volume from the entry at ``starts[0]``,
        record *seq*: ``(seq, start, body, end)``."""
        path = self.dir / vol.name
        known = iter(starts[1:]) if len(starts) > 1 else None   # entry ends from the walk
        pos = starts[0]
        find, end = mm.find, vol.bytes
        while pos < end:
            body = find(b"\n", pos, end) + 1
            nxt = next(known) if known is not None else (find(b"\nFrom ", body, end) + 1 or end)
            want = b"X-Pit-Seq: %d\n" % seq
            if mm[body:body + len(want)] != want:
                raise ArchiveError(f"{path}: record at byte {pos} is not X-Pit-Seq {seq}")
            yield seq, pos, body, nxt
            pos, seq = nxt, seq + 1
        if seq - 1 != vol.last:
            raise ArchiveError(f"{path}: holds records to {seq - 1}; the index says {vol.last}")

    def entry_runs(self, head: bytes, wanted, from_seq: int = 1, to_seq: int | None = None,
                   piece: int = 1 << 20) -> Iterator[tuple[int, memoryview]]:
        """The entries from *from_seq* to *to_seq* that a filter wants,
        exactly as stored, in pieces: ``(seq, piece)``, the concatenation of
        the pieces being that of ``buf[start:end]`` for each item of
        :meth:`entry_spans` wanted, *seq* the last record a piece holds.
        A piece is a view of the mapped volume, valid until the next is
        asked for (write it or copy it at once): a run of wanted entries
        (at most about *piece* bytes) goes out without a copy.
        An entry is wanted when its head (after ``From ``) matches *head*,
        a bytes pattern whose group 1 is the stamp's X-Pit-Seq (what most
        records of a replay are: ``mbox.order_entry_head``), else when
        ``wanted(buf, start, body, end)`` says so.  Reading forward from
        the start of a volume, one pattern search per entry finds where it
        ends and matches the head of the next (:meth:`entry_spans` makes
        two searches and a check); an entry found by the walk back from
        the end (an incremental run) is matched on its own.  The same
        errors as :meth:`entry_spans`.  O(records + bytes read)."""
        match, search = _run_patterns(head)
        for vol in self.volumes():
            if vol.last < from_seq:
                continue
            if to_seq is not None and vol.first > to_seq:
                return
            with self._volume_map(vol) as mm, memoryview(mm) as view:
                starts, seq = self._entry_starts(vol, mm, from_seq)
                if len(starts) > 1:
                    spans = self._spans(vol, mm, starts, seq)
                else:
                    spans = self._runs(vol, mm, seq, match, search)
                run = pos = starts[0]         # the run of wanted entries: mm[run:pos]
                done = seq - 1                # the last record read
                for seq, start, body, end in spans:
                    if to_seq is not None and seq > to_seq:
                        break
                    if body is None or match(mm, start, end) is not None \
                            or wanted(mm, start, body, end):
                        if end - run >= piece:
                            yield from _piece(seq, view, run, end)
                            run = end
                    else:
                        if start > run:
                            yield from _piece(done, view, run, start)
                        run = end
                    pos, done = end, seq
                if pos > run:
                    yield from _piece(done, view, run, pos)
                if to_seq is not None and done >= to_seq:
                    return

    def _runs(self, vol: Volume, mm, seq: int, match, search
              ) -> Iterator[tuple[int, int, int | None, int]]:
        """_spans of a mapped volume from its first entry, record *seq*,
        with *body* None for an entry whose head matched (not looked for):
        one search per entry finds where it ends and matches the head of
        the next.  The same checks and errors as _spans."""
        path = self.dir / vol.name
        end = vol.bytes
        pos = 0
        m = match(mm, 0, end)
        while pos < end:
            if m is not None and m.lastindex is not None:
                if m[1] != b"%d" % seq:
                    raise ArchiveError(f"{path}: record at byte {pos} is not X-Pit-Seq {seq}")
                # The head's last newline may be the separator's (a message
                # that is all stamp): the search starts on it.
                m = search(mm, m.end() - 1, end)
                nxt = end if m is None else m.start() + 1
                yield seq, pos, None, nxt
            else:
                body = mm.find(b"\n", pos, end) + 1
                want = b"X-Pit-Seq: %d\n" % seq
                if mm[body:body + len(want)] != want:
                    raise ArchiveError(f"{path}: record at byte {pos} is not X-Pit-Seq {seq}")
                m = search(mm, body, end)
                nxt = end if m is None else m.start() + 1
                yield seq, pos, body, nxt
            pos, seq = nxt, seq + 1
        if seq - 1 != vol.last:
            raise ArchiveError(f"{path}: holds records to {seq - 1}; the index says {vol.last}")

    def records_of_kind(self, from_seq: int, kinds: tuple[str, ...]) -> Iterator[tuple[int, bytes]]:
        """``(seq, message)`` of the records from *from_seq* on whose stamp
        says ``X-Pit-Kind`` is one of *kinds* (before its ``X-Pit-Request``
        line), in order.  Each volume is searched whole for those lines (C
        speed) and only the records holding a hit are cut out and unquoted:
        finding the few reports and checkpoints among millions of orders
        costs little more than reading the bytes.  O(bytes of the volumes read)."""
        needles = tuple(f"\nX-Pit-Kind: {k}\n".encode() for k in kinds)
        # One search for all of them: a pass over the bytes, not one a kind.
        # It looks for "Kind: K\n" (what a record's entry holding it is is
        # checked below): sre's scan stops at each byte equal to the first
        # of the pattern, and "K" is rarer than the newline that starts
        # "\nX-Pit-Kind" (0.57 against 0.75 s over the 1M bench archive).
        search = re.compile(b"Kind: (?:%s)\n" % b"|".join(re.escape(k.encode())
                                                         for k in kinds)).search
        for vol in self.volumes():
            if vol.last < from_seq:
                continue
            with self._volume_map(vol) as mm:
                # searched where it is mapped: a copy of each volume cost more
                # than the search (fresh pages for every byte of the archive)
                starts, seq = self._entry_starts(vol, mm, from_seq)
                pos, end = starts[0], vol.bytes
                find = mm.find
                m = search(mm, pos, end)
                while m is not None:
                    entry = max(mm.rfind(b"\nFrom ", pos, m.start()) + 1, pos)
                    seq += mm[pos:entry + 5].count(b"\nFrom ")  # the separator ending at entry + 5
                    pos = entry
                    body = find(b"\n", entry, end) + 1
                    sep = find(b"\nFrom ", body, end)
                    msg = mbox.unquote(mm[body:sep if sep >= 0 else end - 1])
                    head = msg[:msg.find(b"\nX-Pit-Request: ")]
                    if any(n in head for n in needles):
                        yield seq, msg
                    # on from the next entry: an entry is looked at once
                    m = search(mm, sep + 1, end) if sep >= 0 else None

    @contextmanager
    def _volume_map(self, vol: Volume):
        """The volume's file mapped read-only (callers stop at ``vol.bytes``,
        what the index says is committed).  Mapping rather than reading means
        an incremental run touches only the pages it needs."""
        path = self.dir / vol.name
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise ArchiveError(f"{path}: missing (the index lists it)") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            if size < vol.bytes:
                raise ArchiveError(f"{path}: truncated at byte {size}; the index says "
                                   f"{vol.bytes} bytes (an incomplete copy?)")
            if not vol.bytes:
                yield b""
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                yield mm

    def _entry_starts(self, vol: Volume, mm, from_seq: int) -> tuple[list[int], int]:
        """``(starts, seq)``: the byte offsets of the entries of the mapped
        volume from record *seq* = max(*from_seq*, first) to the last, and
        ``vol.bytes`` after them; ``[0]`` when that is the first entry (the
        caller then reads forward).  Quoting leaves ``\\nFrom `` only
        between entries, so entries are found by searching for it, 64 KiB
        at a time: back from the end of the volume and, while the search
        back is inside one entry and has gone 256 KiB further into it than
        the search forward from the start of the volume has gone in all,
        forward.  The walk ends when the entries found from the end reach
        *from_seq*, or when the two sides have found as many entries as the
        index counts: one large entry between them (a seal, a report, a
        checkpoint of megabytes) is then never read whole.  What the walks
        found is kept with the :class:`Archive`, so a later call for the
        same volume goes on from there.  O(bytes walked): the bytes after
        the entry of *from_seq* at most, and as many again from the start."""
        skip = min(max(from_seq - vol.first, 0), vol.count)
        if not skip:
            return [0], vol.first
        walk = self._walks.get(vol.name)
        if walk is None or walk.vol != vol:     # (a volume that has grown: walk again)
            walk = self._walks[vol.name] = _Walk(vol)
        fwd, back = walk.fwd, walk.back          # starts from the first on / from the last back
        count = vol.count
        while len(back) < count - skip and len(fwd) + len(back) < count:
            inside = (back[-1] if back else vol.bytes) - walk.b_end     # of the entry searched back
            if inside <= walk.f_scan + _WALK_LEAD:
                lo = fwd[-1] - 1 if len(fwd) > 1 else 0
                a = max(lo, walk.b_end - _WALK_STEP)
                i = mm.rfind(b"\nFrom ", a, walk.b_end)
                if i < 0:
                    if a == lo:
                        self._too_few(vol)
                    walk.b_end = a + 5
                    continue
                if i + 1 == fwd[-1]:
                    self._too_few(vol)               # the two walks met early
                back.append(i + 1)
                walk.b_end = i
            else:
                hi = back[-1] + 5 if back else vol.bytes
                b = min(hi, walk.f_scan + _WALK_STEP)
                i = mm.find(b"\nFrom ", walk.f_scan, b)
                if i < 0:
                    if b == hi:
                        self._too_few(vol)
                    walk.f_scan = b - 5
                    continue
                if back and i + 1 == back[-1]:
                    self._too_few(vol)
                fwd.append(i + 1)
                walk.f_scan = i + 1
        starts = [fwd[r] if r < len(fwd) else back[count - 1 - r] for r in range(skip, count)]
        starts.append(vol.bytes)
        return starts, vol.first + skip

    def _too_few(self, vol: Volume) -> None:
        raise ArchiveError(f"{self.dir / vol.name}: fewer entries than the "
                           f"{vol.count} the index says")

    def _volume_bytes(self, vol: Volume) -> bytes:
        path = self.dir / vol.name
        try:
            with open(path, "rb") as f:
                data = f.read(vol.bytes)
        except FileNotFoundError:
            raise ArchiveError(f"{path}: missing (the index lists it)") from None
        if len(data) < vol.bytes:
            raise ArchiveError(f"{path}: truncated at byte {len(data)}; the index says "
                               f"{vol.bytes} bytes (an incomplete copy?)")
        return data

    def _read_volume(self, vol: Volume, skip: int = 0) -> Iterator[tuple[int, bytes]]:
        path = self.dir / vol.name
        data = self._volume_bytes(vol)
        # Skipping needs no parsing: quoting leaves "\nFrom " only between
        # entries, so the k-th one starts entry k+1.
        start = 0
        for _ in range(min(skip, vol.count)):
            start = data.find(b"\nFrom ", start) + 1
            if start == 0:
                raise ArchiveError(f"{path}: fewer entries than the {vol.count} the index "
                                   f"says (no entry after byte {len(data)})")
        seq = vol.first + min(skip, vol.count)
        if seq > vol.last:
            return
        try:
            for msg in mbox.iter_messages(data, start):
                if not msg.startswith(b"X-Pit-Seq: %d\n" % seq):
                    found = mbox.stamp_seq(msg)
                    if found != seq:
                        raise ArchiveError(f"{path}: record {seq - vol.first + 1} has X-Pit-Seq "
                                           f"{found}, expected {seq}")
                yield seq, msg
                seq += 1
        except mbox.MboxError as e:
            raise ArchiveError(f"{path}: {e}") from None
        if seq - vol.first != vol.count:
            raise ArchiveError(f"{path}: holds {seq - vol.first} records in {vol.bytes} bytes; "
                               f"the index says {vol.count}")

    def _last_hash(self, vols: list[Volume]) -> str:
        if not vols:
            return ZERO_HASH
        vol = vols[-1]
        path = self.dir / vol.name
        size = 1 << 16
        with open(path, "rb") as f:
            while True:
                start = max(0, vol.bytes - size)
                f.seek(start)
                data = f.read(vol.bytes - start)
                cut = data.rfind(b"\nFrom ")
                if cut >= 0 or start == 0:
                    entry = data[cut + 1:]
                    break
                size *= 4
        try:
            msgs = list(mbox.iter_messages(entry))
        except mbox.MboxError as e:
            raise ArchiveError(f"{path}: last entry (from byte {start + cut + 1}): {e}") from None
        if not msgs:
            raise ArchiveError(f"{path}: no complete last entry before byte {vol.bytes}")
        return record_hash(msgs[-1])

    # -- index -------------------------------------------------------------------
    def _read_index(self, raw: bytes | None = None) -> list[Volume] | None:
        """The index's volumes (of its bytes *raw* when given); None when
        there is no index."""
        path = self.dir / INDEX
        try:
            raw = path.read_bytes() if raw is None else raw
        except FileNotFoundError:
            return None
        if KEEP_KNOWN and self._parsed is not None and self._parsed[0] == raw:
            return list(self._parsed[1])        # the same bytes as last time: the same volumes
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ArchiveError(f"{path}: not ASCII text (run repair to rebuild it)") from None
        vols: list[Volume] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            if (len(parts) != 5 or not _VOLUME_NAME.match(parts[0])
                    or not all(p.isdigit() for p in parts[1:])):
                raise ArchiveError(f"{path} line {lineno}: expected 'VOLUME FIRST-SEQ LAST-SEQ "
                                   f"COUNT BYTES', got {line!r} (run repair to rebuild it)")
            vol = Volume(parts[0], *map(int, parts[1:]))
            expected_first = vols[-1].last + 1 if vols else 1
            if (vol.first != expected_first or vol.count != vol.last - vol.first + 1
                    or vol.count < 1 or (vols and vol.name <= vols[-1].name)):
                raise ArchiveError(f"{path} line {lineno}: {line!r} does not follow on "
                                   f"(expected first seq {expected_first}); run repair")
            vols.append(vol)
        self._parsed = (raw, list(vols))
        return vols

    def _write_index(self, vols: list[Volume]) -> None:
        self._commit_index(self._write_index_temp(vols)[0])

    def _write_index_temp(self, vols: list[Volume]) -> tuple[Path, bytes]:
        """The new index in ``index.tmp``, fsync'd (not yet the index), and
        its bytes."""
        tmp = self.dir / (INDEX + ".tmp")
        text = (INDEX_HEADER + "".join(v.line() for v in vols)).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp, text

    def _commit_index(self, tmp: Path) -> None:
        """Rename the fsync'd ``index.tmp`` over the index: the commit."""
        _crash_point("after-index-temp")
        os.replace(tmp, self.dir / INDEX)
        trace.mark("append.committed")            # readers see it now (pit.watch)
        _crash_point("after-index-rename")
        fsync_dir(self.dir)

    def _volume_files(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.dir) if _VOLUME_NAME.match(n))
        except FileNotFoundError:
            return []

    # -- writing -------------------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator["_Writer"]:
        """Lock the archive for one writer, repair a torn tail left by a crashed
        one, and yield a :class:`_Writer` whose ``last_seq``/``last_hash`` stay
        true until the block ends (what the notary numbers and chains with)."""
        w = _Writer(self)
        try:
            w.open(repair_all=False)
            yield w
        finally:
            w.close()

    def append(self, messages: Iterable[tuple[bytes, str, str | int]]) -> int:
        """Append a batch of ``(message bytes, envelope sender, date)`` under
        one lock and one fsync; returns the last seq once data and index are
        on disk.  See :meth:`_Writer.append`."""
        with self.writer() as w:
            return w.append(messages)

    def _quarantine(self, volume: str, offset: int, data: bytes, why: str) -> Path:
        qdir = self.dir / "quarantine"
        qdir.mkdir(exist_ok=True)
        when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = f"{when}-{volume}-at-{offset}-{why}"
        path, n = qdir / f"{base}.mbox", 1
        while path.exists():
            n += 1
            path = qdir / f"{base}.{n}.mbox"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(qdir)
        return path

    def _cut(self, name: str, offset: int, why: str, actions: list[str]) -> None:
        """Move ``name[offset:]`` to quarantine, then truncate (in that order,
        so the bytes are never only in memory)."""
        path = self.dir / name
        with open(path, "r+b") as f:
            f.seek(offset)
            tail = f.read()
            if not tail:
                return
            q = self._quarantine(name, offset, tail, why)
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())
        actions.append(f"{name}: moved {len(tail)} bytes from byte {offset} to {q} ({why})")

    # -- check and repair ------------------------------------------------------------
    def check(self, from_seq: int = 1, live: bool = False) -> list[str]:
        """Every problem found, as sentences naming volume and byte offset;
        ``[]`` when the archive is whole: index agrees with the volumes, every
        volume reads cleanly, seqs are gapless from 1 and each X-Pit-Prev is
        the record hash before it.  Takes no lock: bytes past the index are
        a problem (a crashed append), but with *live* (a pit's own archive,
        whose notary may be appending) only when no writer is at work (none
        holds the volume's fcntl lock, the index unchanged), not an append
        running meanwhile.  O(archive size); with
        *from_seq*, the volumes before the one holding that record are only
        looked at (their sizes), not read: O(the bytes from there on)."""
        problems: list[str] = []
        try:
            index = self._index_bytes()
            vols = self.volumes()
        except ArchiveError as e:
            return [str(e)]
        prev = ZERO_HASH if from_seq <= 1 else None
        for vol in vols:
            path = self.dir / vol.name
            size = path.stat().st_size if path.exists() else -1
            if size > vol.bytes and not (live and self._appending(index, path)):
                problems.append(f"{path}: {size - vol.bytes} uncommitted bytes from byte "
                                f"{vol.bytes} (a crashed append; repair or the next append "
                                "quarantines them)")
            if vol.last < from_seq:
                continue
            try:
                for seq, msg in self._read_volume(vol):
                    p = mbox.stamp(msg).get("x-pit-prev")
                    if p is not None and prev is not None and p != prev:
                        problems.append(f"{path}: record {seq} X-Pit-Prev {p[:16]}... is not "
                                        f"the record hash of {seq - 1} ({prev[:16]}...)")
                    prev = record_hash(msg)
            except (ArchiveError, mbox.MboxError) as e:
                problems.append(str(e))
                return problems
        listed = {v.name for v in vols}
        last = vols[-1].name if vols else ""
        for name in self._volume_files():
            if name in listed:
                continue
            size = (self.dir / name).stat().st_size
            if name < last:
                problems.append(f"{self.dir / name}: volume not in the index")
            elif size and not (live and self._appending(index, self.dir / name)):
                problems.append(f"{self.dir / name}: {size} uncommitted bytes (a crashed "
                                "append; repair or the next append quarantines them)")
        return problems

    def _index_bytes(self) -> bytes:
        try:
            return (self.dir / "index").read_bytes()
        except FileNotFoundError:
            return b""

    def _appending(self, index: bytes, path: Path) -> bool:
        """Whether bytes past the index (read as *index*) in volume *path*
        are an append under way rather than a crashed one: a writer holds
        the volume's fcntl lock right now (what every append holds from its
        first byte to its index), or the index has moved on since (an append
        committed meanwhile).  A dotlock proves nothing here: a copy carries
        them, and one can name any live process; a copy holds no fcntl lock.
        Probed with a shared lock, taken and dropped at once (a writer that
        asks meanwhile retries after 2 ms: _VolumeLock._take_fcntl)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return self._index_bytes() != index
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            return True                          # a writer holds it: an append under way
        else:
            fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return self._index_bytes() != index

    def repair(self) -> list[str]:
        """Bring the archive to a whole state and say what was done: takes
        the write lock, quarantines uncommitted or torn bytes, and rebuilds
        the index from the volumes when it is missing, malformed or out of
        step with them.  Never drops a record the index committed unless its
        bytes are gone already (reported).  O(archive size) when rebuilding."""
        w = _Writer(self)
        try:
            return w.open(repair_all=True)
        finally:
            w.close()

    def _rebuild_index(self, actions: list[str]) -> list[Volume]:
        """Scan every volume; keep the longest run of complete, consecutive
        records; quarantine the rest (a torn tail)."""
        vols: list[Volume] = []
        seq = 1
        prev = ZERO_HASH
        names = self._volume_files()
        for i, name in enumerate(names):
            path = self.dir / name
            data = path.read_bytes()
            first = seq
            good_end, bad = 0, None
            gen = mbox._scan(data, 0, len(data), 0, False)
            try:
                while True:
                    pos, _, body, nxt = next(gen)
                    msg = mbox.unquote(bytes(body))
                    if mbox.stamp_seq(msg) != seq:
                        bad = f"record at byte {pos} is not seq {seq}"
                        break
                    seq, prev, good_end = seq + 1, record_hash(msg), nxt
            except StopIteration as stop:
                tail_at = stop.value if stop.value is not None else len(data)
                tail = data[tail_at:]
                # The held-back last entry: complete when it ends in "\n" and,
                # for a notarized record, its original matches X-Pit-Digest
                # (a cut at a line boundary would otherwise pass unseen).
                if tail and bad is None:
                    try:
                        msgs = list(mbox.iter_messages(tail))
                        msg = msgs[0]
                        st = mbox.stamp(msg)
                        digest = st.get("x-pit-digest")
                        _, original = mbox.split_stamp(msg)
                        if mbox.stamp_seq(msg) != seq:
                            bad = f"record at byte {tail_at} is not seq {seq}"
                        elif digest is not None and _sha256(original).hexdigest() != digest:
                            bad = f"record at byte {tail_at} does not match its X-Pit-Digest"
                        else:
                            seq, prev, good_end = seq + 1, record_hash(msg), len(data)
                    except (mbox.MboxError, IndexError):
                        bad = f"torn entry at byte {tail_at}"
            except mbox.MboxError as e:
                bad = str(e)
            if good_end < len(data):
                if any((self.dir / n).stat().st_size for n in names[i + 1:]):
                    raise ArchiveError(f"{path}: {bad or 'damage'} in the middle of the "
                                       "archive (later volumes exist): not a torn tail, "
                                       "needs a person")
                self._cut(name, good_end, "torn-tail", actions)
            if seq > first:
                vols.append(Volume(name, first, seq - 1, seq - first, good_end))
        actions.append(f"rebuilt {self.dir / INDEX} from {len(vols)} volume(s), "
                       f"{seq - 1} record(s)")
        return vols


class _Writer:
    """One locked writer session (see :meth:`Archive.writer`)."""

    def __init__(self, archive: Archive):
        self.archive = archive
        self.locks: list[_VolumeLock] = []
        self.vols: list[Volume] = []
        self._last_hash: str | None = None

    # -- locking and recovery ------------------------------------------------------
    def open(self, repair_all: bool) -> list[str]:
        a = self.archive
        a.dir.mkdir(parents=True, exist_ok=True)
        known, a._known = a._known, None       # back at a successful append's end
        if repair_all or not KEEP_KNOWN:
            known = None
        files = None
        while True:
            if files is None and known is not None and known.vols:
                target = known.vols[-1].name    # the last volume, unless one came since
            else:
                files = a._volume_files() if files is None else files
                target = files[-1] if files else _volume_name(1)
            lock = _VolumeLock(a.dir / target, a.lock_timeout)
            lock.acquire()
            files = a._volume_files()
            if files[-1] == target:
                self.locks.append(lock)
                break
            lock.release()                      # another writer rolled over: follow it
        _crash_point("after-lock")
        # No volume comes or goes while we hold the last one's lock.
        return self._recover(repair_all, files, known)

    def close(self) -> None:
        for lock in reversed(self.locks):
            lock.release()
        self.locks.clear()

    def _recover(self, repair_all: bool, files: list[str], known: _Known | None) -> list[str]:
        a = self.archive
        actions: list[str] = []
        tmp = a.dir / (INDEX + ".tmp")
        if tmp.exists():
            tmp.unlink()
            actions.append(f"removed {tmp} (an index write that never committed)")
        try:
            raw = (a.dir / INDEX).read_bytes()
        except FileNotFoundError:
            raw = None
        if known is not None and raw == known.index and self._recover_known(known, files, actions):
            return actions
        try:
            vols = a._read_index(raw) if raw is not None else None
            if vols is None:
                # The empty index is written before the first append, so a
                # missing index beside written volumes means it was lost.
                if any((a.dir / n).stat().st_size for n in files):
                    raise ArchiveError(f"{a.dir / INDEX}: missing while volumes exist "
                                       "(run repair to rebuild it)")
                vols = []
            for vol in vols:
                size = (a.dir / vol.name).stat().st_size if (a.dir / vol.name).exists() else -1
                if size < vol.bytes:
                    raise ArchiveError(f"{a.dir / vol.name}: {'missing' if size < 0 else f'truncated at byte {size}'}"
                                       f"; the index says {vol.bytes} bytes (run repair)")
        except ArchiveError:
            if not repair_all:
                raise
            vols = a._rebuild_index(actions)
            a._write_index(vols)
            self.vols = vols
            return actions
        # The normal crash case: bytes past the committed end are uncommitted.
        listed = {v.name: v for v in vols}
        last = vols[-1].name if vols else ""
        for name in files:
            vol = listed.get(name)
            if vol is not None:
                a._cut(name, vol.bytes, "uncommitted", actions)
            elif name > last:
                a._cut(name, 0, "uncommitted", actions)
            elif repair_all:
                raise ArchiveError(f"{a.dir / name}: volume not in the index in the "
                                   "middle of the archive: needs a person")
        if raw is None:
            a._write_index(vols)
        self.vols = vols
        return actions

    def _recover_known(self, known: _Known, files: list[str], actions: list[str]) -> bool:
        """The index is byte for byte what this Archive's last append
        committed: its volumes stand, and only the last one and any volume
        after it can hold bytes of an append that never returned (writers
        write nowhere else).  False when the last volume is not as the index
        says (the full recovery then tells why)."""
        a = self.archive
        last = known.vols[-1]
        try:
            st = os.stat(a.dir / last.name)
        except FileNotFoundError:
            return False
        if st.st_size < last.bytes:
            return False
        for name in files:
            if name == last.name:
                if st.st_size > last.bytes:
                    a._cut(name, last.bytes, "uncommitted", actions)
            elif name > last.name:
                a._cut(name, 0, "uncommitted", actions)
        self.vols = known.vols
        if _ident(st) == known.ident:           # not written since: its last record stands
            self._last_hash = known.last_hash
        return True

    # -- state -------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        """The last committed seq (0 when empty)."""
        return self.vols[-1].last if self.vols else 0

    @property
    def last_hash(self) -> str:
        """The record hash of the last committed record."""
        if self._last_hash is None:
            self._last_hash = self.archive._last_hash(self.vols)
        return self._last_hash

    # -- append ----------------------------------------------------------------------
    def append(self, messages: Iterable[tuple[bytes, str, str | int]]) -> int:
        """Append ``(message, sender, date)`` records.  Each message must carry
        a stamp whose X-Pit-Seq is the last seq + 1 (and whose X-Pit-Prev, if
        present, is the last record hash), or the whole batch is refused with
        :class:`SequenceError` before anything is written.  Returns the last
        seq after data and index are fsync'd.  O(batch bytes) plus three
        fsyncs (volume, index, directory)."""
        a = self.archive
        seq, prev = self.last_seq, self.last_hash
        entries: list[bytes] = []
        for i, item in enumerate(messages, 1):
            try:
                msg, sender, date = item
                st = mbox.stamp(msg)
                entry = mbox.format_message(msg, sender, date)
            except (mbox.MboxError, TypeError, ValueError) as e:
                raise ArchiveError(f"batch message {i}: {e}") from None
            found = st.get("x-pit-seq")
            if found != str(seq + 1):
                raise SequenceError(f"batch message {i}: X-Pit-Seq {found!r}, expected "
                                    f"{seq + 1} (the archive's last seq is {self.last_seq})")
            p = st.get("x-pit-prev")
            if p is not None and p != prev:
                raise SequenceError(f"batch message {i} (seq {seq + 1}): X-Pit-Prev {p!r} is "
                                    f"not the record hash of seq {seq} ({prev})")
            entries.append(entry)
            seq, prev = seq + 1, record_hash(msg)
        if not entries:
            return self.last_seq
        for lock in self.locks:         # reading the volume may have dropped its fcntl lock
            if lock.fd is not None:
                lock.relock()
        vols = list(self.vols)
        next_seq = self.last_seq + 1
        writes: list[tuple[str, int, bytes]] = []      # (volume, committed bytes, data)
        while entries:
            if vols and vols[-1].count < a.volume_limit:
                cur = vols.pop()
            else:
                number = int(vols[-1].name[:6]) + 1 if vols else 1
                cur = Volume(_volume_name(number), next_seq, next_seq - 1, 0, 0)
                self._lock_new_volume(cur.name)
            take = entries[:a.volume_limit - cur.count]
            del entries[:len(take)]
            data = b"".join(take)
            writes.append((cur.name, cur.bytes, data))
            cur = Volume(cur.name, cur.first, cur.last + len(take), cur.count + len(take),
                         cur.bytes + len(data))
            vols.append(cur)
            next_seq = cur.last + 1
        # The new index goes to index.tmp and is fsync'd while the data is
        # written and fsync'd: the index only commits at its rename, after
        # both (docs/pit-book.md, "The mail path": one fsync's wait less).
        index = _Beside.run(a._write_index_temp, vols) if OVERLAP_FSYNCS else None
        try:
            for name, committed, data in writes:
                st = self._write_volume(name, committed, data)
        finally:
            tmp = index.result() if index is not None else None
        _crash_point("after-data-fsync")
        trace.mark("append.data_synced")
        tmp, text = tmp if tmp is not None else a._write_index_temp(vols)
        a._commit_index(tmp)
        self.vols = vols
        self._last_hash = prev
        if KEEP_KNOWN:
            a._known = _Known(text, vols, _ident(st), prev)
            a._parsed = (text, list(vols))
        return self.last_seq

    def _lock_new_volume(self, name: str) -> None:
        path = self.archive.dir / name
        if any(l.path == path for l in self.locks):
            return
        if path.exists():
            return       # an empty leftover below the volume we hold locked
        lock = _VolumeLock(path, self.archive.lock_timeout)
        lock.acquire()   # dotlock first, so no one sees the file unlocked
        self.locks.append(lock)
        _crash_point("after-rollover-create")

    def _write_volume(self, name: str, committed: int, data: bytes) -> os.stat_result:
        """Append *data* at byte *committed* of volume *name* and fsync it;
        the volume's stat after."""
        path = self.archive.dir / name
        # Through the volume lock's own descriptor (O_APPEND too) when we
        # hold one: closing a second descriptor of the file would drop this
        # process's fcntl lock on it (POSIX), in the middle of the append.
        held = next((lock.fd for lock in self.locks if lock.path == path and lock.fd is not None),
                    None)
        fd = held if held is not None else os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size != committed:
                raise ArchiveError(f"{path}: is {size} bytes, expected {committed} "
                                   "(written by something that takes no lock?)")
            half = len(data) // 2
            _write_all(fd, data[:half])
            _crash_point("mid-write")
            _write_all(fd, data[half:])
            os.fsync(fd)
            return os.fstat(fd)
        finally:
            if held is None:
                os.close(fd)
