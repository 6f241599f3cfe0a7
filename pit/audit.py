"""pit audit: prove an archive whole, and every trade in it a consequence of
the orders.

Given a pit directory or a copy of its ``archives/`` (made with rsync), and
nothing else, the audit checks, record by record in sequence order:

1. **the chain**: sequence numbers gapless from 1, ``X-Pit-Prev`` equal to
   the hash of the record before, ``X-Pit-Time`` strictly increasing,
   ``X-Pit-Digest`` equal to the SHA-256 of the original message;
2. **the seals**: each seal's body verifies with stock gpg against the
   notary key published in the genesis record, lists exactly the records
   since the previous seal with their hashes, and every record is sealed;
   a seal that is a signed tree head (every seal since the log began)
   carries the Merkle root of every record before it (pit.merkle), which
   must be the root the audit computes, and the seal record's own time;
3. **the signatures**: every original message carries a good signature
   (checked in process, same verdicts as gpg) by the key the stamp names,
   a member key at that time that owns the account;
4. **the stamps**: the canonical fields the notary wrote (kind, account,
   ref, ticker, request) are exactly what the signed text says;
5. **the filters**: every filter that posted to the archive is replayed from
   record 1, and each of its reports and checkpoints in the archive must be
   byte for byte what the replay produces.

Every byte of a volume belongs to one record's entry: its ``From `` line
(which must be the one the notary writes, ``From notary`` and the
record's X-Pit-Time), its stamp and original, and the newline after it.
The audit reads each volume itself, so damage anywhere is a discrepancy
naming the record and the byte offset of its entry, never a crash; an
archive with no records is a failure, not a pass.

The first discrepancy is reported precisely (record, what, expected, found,
where); otherwise a printable summary.  Keys come only from the archive:
the genesis record (notary and operator) and the member records.  A copy
that remembers the newest signed tree head it verified (pit.replica) is
checked against it: the archive must extend that head (RFC 9162
consistency), so a truncation, a rewrite or a fork fails and says which
records were lost or changed.

**Incremental by default.**  When the audit of a copy (with *remember*)
passes, the auditor keeps its own state at that copy's newest seal
(pit.auditstate, in ``audit-state/`` beside the archive, never taken from
the archive).  The next audit starts from it: the volumes verified before
must be unchanged (else a full audit, and the reason in one line), the
records after it are checked exactly as above (the chain continues from
the kept head; the tree grows from the kept frontier, so each new signed
tree head is checked against a tree whose first records are those verified,
and an RFC 9162 consistency proof from the kept head to the newest is made
and checked), and each filter goes on from the state the auditor kept for
it (its checkpoint text there and the lines it has not reported yet), as
the filter programs restart from a checkpoint, not from record 1; only a
new checkpoint of records before the kept state makes that filter replay
again from its latest checkpoint an audit reproduced.  Its cost is the new
records.  ``full=True`` (``pit audit --full``) starts from record 1.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pit import kinds, mbox, merkle, message, notarystate, openpgp, signed
from pit.archive import Archive, ArchiveError, ZERO_HASH
from pit.filter import Filter, FilterError
from pit.keyring import Keyring, KeyringError
from pit.kinds.rules import genesis_rules
from pit.filter import FILTERS

__all__ = ["audit", "AuditResult", "AuditFailure"]

STAMP_FIELDS = ("x-pit-pit", "x-pit-kind", "x-pit-account", "x-pit-ref", "x-pit-ticker",
                "x-pit-request")
# Signature checks (extract + verify) are half the audit's work and each
# record's is independent, so on large archives worker processes do them
# ahead of the sequential pass (see _Prefetch).  Below this many records the
# pool costs more than it saves.
PARALLEL_MIN_RECORDS = 4_000
PREFETCH_CHUNK = 250           # records a worker checks per task
PREFETCH_DEPTH = 8             # tasks in flight
PREFETCH_SETTLE = 50           # records without a key change before tasks are sent
_NOTARY_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


class AuditFailure(Exception):
    """The first discrepancy: which record, what, expected, found, where."""

    unexpected = False     # a check broke on what it read (counted apart by the tamper tests)

    def __init__(self, seq: int, what: str, expected: str = "", found: str = "",
                 where: str = ""):
        self.seq, self.what, self.expected, self.found = seq, what, expected, found
        self.where = where
        super().__init__(self._text())

    def _text(self) -> str:
        text = f"record {self.seq}: {self.what}"
        if self.expected or self.found:
            text += f"\n  expected: {_short(self.expected)}\n  found:    {_short(self.found)}"
        if self.where:
            text += f"\n  where:    {self.where}"
        return text

    def locate(self, where: str) -> None:
        if where and not self.where:
            self.where = where
            self.args = (self._text(),)


def _consistency(state, leaves, res) -> str:
    """pit.replica.check_consistency, its finding an AuditFailure."""
    from pit import replica
    try:
        return replica.check_consistency(state, leaves, res)
    except replica.LogChanged as e:
        raise AuditFailure(*e.args) from None


class _Fallback(Exception):
    """The kept state cannot carry this audit: audit in full (the reason)."""


def _short(s: str, n: int = 200) -> str:
    s = str(s)
    return s if len(s) <= n else s[:n] + f"... ({len(s)} characters)"


@dataclass
class AuditResult:
    ok: bool = False
    path: str = ""
    pit: str = ""
    records: int = 0
    seals: int = 0
    signatures: int = 0
    reports: int = 0
    checkpoints: int = 0
    kinds: dict = field(default_factory=dict)
    filters: list = field(default_factory=list)
    first_time: str = ""
    last_time: str = ""
    head: str = ZERO_HASH
    notary: str = ""
    tree_root: str = ""            # the Merkle root over every record
    heads: int = 0                 # signed tree heads among the seals
    newest_head: tuple | None = None   # (seal seq, size, root hex, time, Frontier)
    consistency: str = ""          # what the check against a remembered head found
    mode: str = "full"             # or "incremental": from the auditor's kept state
    since: int = 0                 # incremental: the record the kept state ends at
    fallback: str = ""             # why a full audit ran where an incremental one was asked
    incremental: str = ""          # incremental: what was read again and proved
    log_only: bool = False         # the log alone was checked (pit mirror)
    seconds: float = 0.0
    problem: str | None = None

    def summary(self) -> str:
        """A report to print and keep."""
        lines = [f"pit audit of {self.path}",
                 f"  pit            {self.pit or '?'}",
                 f"  notary key     {self.notary or '?'}",
                 f"  records        {self.records} (1-{self.records}), "
                 f"{self.first_time or '-'} .. {self.last_time or '-'}",
                 f"  chain head     {self.head}",
                 f"  tree root      {self.tree_root or '-'} (RFC 9162, {self.records} leaves)",
                 f"  seals          {self.seals}, verified with gpg; {self.heads} signed tree heads"
                 + (f", newest: size {self.newest_head[1]} at record {self.newest_head[0]}"
                    if self.newest_head else ""),
                 f"  signatures     {self.signatures}, verified",
                 f"  kinds          " + ", ".join(f"{k} {v}" for k, v in sorted(self.kinds.items())),
                 f"  filters        " + (", ".join(self.filters) or "none"),
                 f"  replayed       {self.reports} reports and {self.checkpoints} checkpoints "
                 f"reproduced byte for byte"]
        checked = self.records - self.since
        if self.mode == "incremental":
            lines.append("  audit          incremental: " + (
                self.incremental or f"from record {self.since + 1} on, after the auditor's "
                f"state at record {self.since}"))      # a failed one: where it started
        else:
            lines.append("  audit          full, from record 1"
                         + (f" ({self.fallback})" if self.fallback else ""))
        lines.append(f"  time           {self.seconds:.2f} s "
                     f"({checked / max(self.seconds, 1e-9):,.0f} records/s"
                     + (f", {checked} new records" if self.mode == "incremental" else "") + ")")
        if self.consistency:
            lines.insert(-1, f"  remembered     {self.consistency}")
        if self.ok and self.log_only:
            lines.append("RESULT: PASS: the log is whole (members' signatures and filters "
                         "not checked here: pit audit does)")
        elif self.ok:
            lines.append("RESULT: PASS: the archive is whole and every filter output follows from it")
        else:
            lines.append("RESULT: FAIL")
            lines.append(self.problem or "")
        return "\n".join(lines) + "\n"


def _archive_of(path: str | Path) -> Archive:
    p = Path(path)
    if (p / "archives" / "index").exists() or (p / "archives").is_dir():
        return Archive(p)
    if (p / "index").exists():
        return Archive(p.parent) if p.name == "archives" else _copy_root(p)
    raise ArchiveError(f"{p}: no archive here (expected {p}/archives/index or {p}/index)")


def _copy_root(p: Path) -> Archive:
    """An archive folder not named 'archives': give Archive a parent view."""
    tmp = Path(tempfile.mkdtemp(prefix="pit-audit-"))
    (tmp / "archives").symlink_to(p.resolve())
    return Archive(tmp)


class _Keys:
    """The keys the archive has published so far, in a private gpg home."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pit-audit-gnupg-")
        self.ring = Keyring(self.dir)
        self.verifier = None
        self.generation = 0        # bumped whenever the verifier changes
        self._portable = None

    def add(self, armored: str) -> list[str]:
        fprs = [self.ring.import_key(block) for block in _key_blocks(armored)]
        if self.verifier is None:
            # once: it reads the key store, which import_key keeps up to date
            self.verifier = self.ring.load_verifier()
        self.generation += 1
        self._portable = None
        return fprs

    def preload(self, blocks: list[str]) -> None:
        """Give gpg these certificates in one run before the replay: a key
        the replay then meets again, byte for byte, costs no gpg run.  Only
        the first certificate of each key goes here (what the replay would
        import first); the verifier knowing a key early changes no verdict,
        as a signature counts only when its key was a member then."""
        if blocks:
            try:
                self.ring.import_keys(blocks)
            except KeyringError:
                pass        # the replay imports them one by one and says which failed

    def restore(self, blocks: list[str]) -> None:
        """Give gpg these key blocks in one run, in order (a resumed audit:
        the certificates the new records need, as the kept state has them),
        and take the verifier from there."""
        if blocks:
            self.ring.import_keys(blocks)
        self.verifier = self.ring.load_verifier()
        self.generation += 1
        self._portable = None

    def portable(self):
        """What a worker process rebuilds the current verifier from: the
        GnuPG home whose key store it reads (cryptography keys do not
        pickle).  A worker may see keys imported after it was given the
        task; its results are used only while the keys have not changed."""
        if self._portable is None and self.verifier is not None:
            self._portable = ("store", self.dir)
        return self._portable

    def close(self):
        self.ring.close()
        self.ring.stop_agent()
        shutil.rmtree(self.dir, ignore_errors=True)


def audit(path: str | Path, progress=None, notary: str | None = None,
          remember: bool = False, log_only: bool = False, full: bool = False) -> AuditResult:
    """Audit the archive at *path*.  ``progress(done, total)`` is called now
    and then (*total*: the records the index holds, or None).
    *notary*: the fingerprint the genesis record must name (else the one
    the copy's state pins, if any).  *remember*: check the archive against
    the newest signed tree head this copy verified before, and on a pass
    remember the archive's newest head (pit.replica).  *log_only*: check
    the log alone (every byte, the chain, the digests, the genesis and
    every seal and tree head with gpg), not the members' signatures, the
    stamps or the filters: what ``pit mirror`` checks of each copy it
    brings.  With *remember* and not *full*, the audit starts from the
    auditor's kept state when there is one that matches the copy (module
    text, "Incremental"), and (unless *log_only*) keeps the new state when
    it passes.  Never raises for a bad archive: the result says what is wrong."""
    from pit import auditstate, replica
    res = AuditResult(path=str(path), log_only=log_only)
    t0 = time.monotonic()
    keys = None
    snap = a = None
    fallback = ""
    try:
        arch = _archive_of(path)
        state = replica.load_state(path) if remember else None
        if remember and not full:
            snap, res.fallback = auditstate.load(path, arch)
            if snap and state is not None and state.size and state.size < snap.head[1]:
                res.fallback = (f"this copy remembers an older signed tree head ({state.size} "
                                f"records) than the auditor's state ({snap.head[1]})")
                snap.close()
                snap = None
        keys = _Keys()
        a = None
        if snap is not None:
            try:
                a = _Audit(arch, keys, res, progress, None)
                a.log_only = log_only
                a.resume(snap)
            except Exception as e:                 # noqa: BLE001 - the state is ours, but whole?
                res.fallback = f"the auditor's state cannot be used ({type(e).__name__}: {e})"
                snap.close()
                snap, a = None, None
                keys.close()
                keys = _Keys()
                res.__init__(path=str(path), log_only=log_only, fallback=res.fallback)
        if a is None:
            a = _Audit(arch, keys, res, progress, None)
        a.log_only = log_only
        try:
            a.run()                                    # names the first bad record
        except AuditFailure as e:
            if getattr(e, "at_end", False) and state is not None and state.size:
                # an unsealed tail where this copy saw more: the records cut off are the story
                _consistency(state, a.all_leaves(), res)
            raise
        except (ArchiveError, OSError, _Fallback):
            raise
        except Exception as e:
            # A check that broke on what it read: still a discrepancy of
            # that record, never a traceback.
            f = AuditFailure(a.current, f"the record cannot be checked "
                             f"({type(e).__name__}: {_short(str(e), 120)})")
            f.unexpected = True
            raise f from e
        if res.records == 0:
            raise AuditFailure(0, "the archive holds no records (not even the genesis "
                               "record): nothing here is a pit's log")
        # and then what lies around them (after a resume, the records this
        # audit read were checked as it read them: the volumes' sizes only)
        # (a pit's own archive may have an append under way: not a copy's)
        problems = arch.check(a.resume_at if snap is None else res.records + 1,
                              live=(arch.dir.parent / "pit.conf").exists())
        if problems:
            raise AuditFailure(res.records, "the archive's volumes and index disagree: "
                               + "; ".join(problems))
        pinned = (notary or "").replace(" ", "").upper() or (state.notary if state else "")
        if pinned and res.notary != pinned:
            raise AuditFailure(1, "the genesis record names another notary key than the "
                               "one this copy expects", pinned, res.notary)
        if state is not None and state.size:
            res.consistency = _consistency(state, a.all_leaves(), res)
        if snap is not None:
            a.prove_extension()
        if snap is None and not log_only:
            # a full audit: the notary's state beside the archive
            # (pit.notarystate) must be the fold of the records up to the
            # one it is bound to
            at, found = notarystate.check(arch)
            if found:
                raise AuditFailure(at, "; ".join(found))
        if remember:
            try:
                replica.save_state(path, res, pinned or res.notary)
                if not log_only and res.newest_head and res.newest_head[0] == res.records:
                    auditstate.save(path, a, res, snap)
            except OSError as e:            # a read-only copy: audited all the same
                res.consistency = (res.consistency + "; " if res.consistency else "") + \
                    f"the newest head could not be remembered ({e.strerror}: {e.filename})"
            except Exception as e:          # noqa: BLE001 - sqlite3.Error: the next audit is full
                res.consistency = (res.consistency + "; " if res.consistency else "") + \
                    f"the auditor's state could not be kept ({type(e).__name__}: {e})"
        res.ok = True
    except AuditFailure as e:
        reader = a.reader if a is not None else None
        if reader is not None:
            e = (reader.joined(e.seq) if not e.unexpected else None) or e
            e.locate(reader.where(e.seq))
        res.problem = str(e)
    except (ArchiveError, OSError) as e:
        res.problem = f"after record {res.records}: the archive cannot be read: {e}"
    except _Fallback as e:
        fallback = str(e)
    finally:
        if keys:
            keys.close()
        if snap is not None:
            snap.close()
        res.seconds = time.monotonic() - t0
    if fallback:
        res = audit(path, progress, notary, remember, log_only, full=True)
        res.fallback = fallback
        res.seconds = time.monotonic() - t0
    return res


class _Reader:
    """The records of an archive read the way the audit needs them: each
    volume whole, split at its entries by the audit itself, so that a
    damaged entry is a located :class:`AuditFailure` (never an exception
    from a reader), and the byte offset and ``From `` line of every entry
    is kept.  Yields ``(seq, message)`` like ``Archive.read()``, from the
    volume that holds record *from_seq* on (the records before it in that
    volume are read, not yielded).  With *digests*, the SHA-256 of each
    volume read whole is kept (``digests``: name -> (first, last, bytes,
    hex)) for pit.auditstate.  O(archive bytes read); 8 bytes of memory a
    record."""

    def __init__(self, arch: Archive, from_seq: int = 1, digests: bool = False):
        from array import array
        self.arch = arch
        self.vols = arch.volumes()
        self.from_seq = from_seq
        self.read_vols = [v for v in self.vols if v.last >= from_seq] if from_seq > 1 else self.vols
        self.base = self.read_vols[0].first if self.read_vols else 1
        self.offsets = array("q")          # entry offset in its volume, by seq - base
        self.from_lines: dict[int, bytes] = {}     # seq -> separator, of the records read last
        self.recent: dict[int, tuple] = {}         # seq -> (message, volume, offset), the same
        self.digests: dict[str, tuple] | None = {} if digests else None

    def where(self, seq: int) -> str:
        """``NNNNNN.mbox byte N`` of record *seq*'s entry ("" when unknown)."""
        if not self.base <= seq < self.base + len(self.offsets):
            return ""
        vol = next((v for v in self.vols if v.first <= seq <= v.last), None)
        return f"{vol.name} byte {self.offsets[seq - self.base]}" if vol else ""

    def joined(self, seq: int) -> "AuditFailure | None":
        """When record *seq* failed because the next entry's ``From `` line
        was damaged (so the two entries read as one), the failure of the
        record whose line it is.  Looked for only after a failure."""
        msg, name, body = self.recent.get(seq, (b"", "", 0))
        j = msg.find(b"\nX-Pit-Seq: %d\nX-Pit-Time: " % (seq + 1))
        k = msg.rfind(b"\n\n", 0, j) + 2
        if j < 0 or k < 2 or j - k > 200:
            return None
        line = msg[k:j]
        where = f"{name} byte {body + k}" + (" (about)" if b">From " in msg else "")
        return AuditFailure(seq + 1, "the entry's 'From ' line is damaged: it no longer "
                            f"separates the record from record {seq}", "From notary ...",
                            line.decode("utf-8", "replace"), where)

    def __iter__(self):
        for vol in self.read_vols:
            yield from self._volume(vol)

    def _volume(self, vol):
        path = self.arch.dir / vol.name
        try:
            with open(path, "rb") as f:
                data = f.read(vol.bytes)
        except FileNotFoundError:
            raise AuditFailure(vol.first, f"records {vol.first}-{vol.last} are missing: "
                               f"{vol.name} is gone (the index lists it)", where=vol.name) from None
        if self.digests is not None and len(data) == vol.bytes:
            self.digests[vol.name] = (vol.first, vol.last, vol.bytes,
                                      hashlib.sha256(data).hexdigest())
        seq, pos, end = vol.first, 0, len(data)
        find, offsets = data.find, self.offsets
        skip = self.from_seq
        if end and not data.startswith(b"From "):
            raise AuditFailure(seq, "the entry does not start with a 'From ' line",
                               "From notary ...", repr(data[:20])[2:-1], f"{vol.name} byte 0")
        while pos < end and seq <= vol.last:
            offsets.append(pos)
            body = find(b"\n", pos, end) + 1
            if body == 0:
                raise AuditFailure(seq, "the entry ends inside its 'From ' line (cut short)",
                                   where=f"{vol.name} byte {pos}")
            nxt = find(b"\nFrom ", body, end)
            if nxt < 0 or seq == vol.last:
                nxt = end - 1
                if data[nxt:end] != b"\n" or nxt < body:
                    raise AuditFailure(seq, "the volume ends inside this record (cut short, "
                                       "or the last newline changed)",
                                       where=f"{vol.name} byte {pos}")
            if seq < skip:                  # verified before: only its place is needed
                pos, seq = nxt + 1, seq + 1
                continue
            msg = data[body:nxt]
            if b">From " in msg:
                msg = mbox.unquote(msg)
            if len(self.from_lines) > 4 * PREFETCH_CHUNK * PREFETCH_DEPTH:
                self.from_lines.clear()
                self.recent.clear()
            self.from_lines[seq] = data[pos:body - 1]
            self.recent[seq] = (msg, vol.name, body)
            yield seq, msg
            pos, seq = nxt + 1, seq + 1
        if seq <= vol.last:
            lost = f"{seq}-{vol.last}" if seq < vol.last else f"{seq}"
            raise AuditFailure(seq, f"record{'s' if seq < vol.last else ''} {lost} "
                               f"{'are' if seq < vol.last else 'is'} missing: {vol.name} "
                               f"holds {len(data)} of the {vol.bytes} bytes the index says",
                               where=f"{vol.name} byte {pos}")
        if end < vol.bytes:
            raise AuditFailure(vol.last, f"{vol.name} is {end} bytes; the index says {vol.bytes}",
                               where=f"{vol.name} byte {end}")


class _Audit:
    def __init__(self, arch: Archive, keys: _Keys, res: AuditResult, progress, reader: _Reader):
        self.arch, self.keys, self.res, self.progress = arch, keys, res, progress
        self.total = None                  # records the archive's index holds, for progress
        if progress:
            try:
                self.total = arch.last_seq()
            except (ArchiveError, OSError, ValueError):
                pass                       # a damaged index: the audit itself says so
            progress(0, self.total)
        self.reader = reader
        self.tree = merkle.Frontier()
        self.leaves: list[bytes] = []      # every record's leaf hash, for the proofs
        self.tree_heads = False            # a seal carried a tree head: all later ones must
        self.current = 0                   # the record being checked
        self.log_only = False
        self._separator = ("", b"")        # (X-Pit-Time to the second, its From line)
        self.members: dict[str, tuple[str, ...]] = {}
        self.refs: dict[tuple[str, str], str] = {}     # (account, ref) -> ticker ('' if none)
        self.cancel_tickers = False     # a cancel stamped with its order's ticker was seen
        self.instruments, self.currencies, self.fees = {}, {}, None
        self.rules = 1                     # the pit's rules (pit.kinds.rules)
        self.owners = None                 # account -> member keys owning it, made when needed
        self.unsealed: list[tuple[int, str]] = []
        self.filters: dict[str, Filter] = {}
        self.snapshots: dict[tuple[str, int], str] = {}
        self.marks: dict[str, list[tuple[int, int]]] = {}   # filter -> [(seq, lines so far)]
        self.covered: dict[str, int] = {}     # filter -> Seq of its last checkpoint seen
        # What the auditor's state (pit.auditstate) keeps of this audit:
        self.verified_checkpoints: dict[str, tuple[int, int, str]] = {}  # name -> (seq, Seq, text)
        self.key_log: list[tuple[int, str, str]] = []     # (seq, fingerprint, key block)
        self.operator_log: list[tuple[int, str, str]] = []  # (seq, kind, request text)
        # Incremental (resume): records before `start` were verified; each
        # filter is fed from its `restart` (its checkpoint's Seq) + 1 on.
        self.start, self.prev, self.last_time = 1, ZERO_HASH, ""
        self.restart: dict[str, int] = {}
        self.base_frontier: merkle.Frontier | None = None
        self.snap = None
        self.resume_at = 1                    # the first record read

    def all_leaves(self):
        """Every record's leaf hash: a list, or after a resume the kept
        head's frontier and the leaves since (merkle.CompactRange)."""
        if self.base_frontier is None:
            return self.leaves
        return merkle.CompactRange(self.base_frontier, self.leaves)

    # -- resuming from the auditor's state ----------------------------------------
    def resume(self, snap) -> None:
        """Continue after record ``snap.seq``, from the auditor's state
        (pit.auditstate.Snapshot).  O(filters' checkpoints + operator records)."""
        from pit import auditstate
        from pit.ops import filter_class
        self.snap = snap
        res = self.res
        seal, size, root, when, frontier = snap.head
        self.start, self.prev, self.last_time = snap.seq + 1, snap.hash, snap.time
        self.base_frontier = frontier.copy()
        self.leaves = [merkle.leaf_hash(bytes.fromhex(snap.hash))]   # the seal record's
        self.tree = frontier.copy()
        self.tree.append(self.leaves[0])
        self.tree_heads = True
        self.notary, self.operator = snap.notary, snap.operator
        self.bound, self.cancel_tickers = snap.flags["bound"], snap.flags["cancel_tickers"]
        self.members = auditstate.Members(snap.db)
        self.refs = auditstate.Refs(snap.db)
        for _seq, _kind, text in snap.operator_texts():
            self._operator(message.parse_request(text))
        res.pit, res.notary, res.newest_head = snap.pit, snap.notary, snap.head
        res.records, res.head, res.last_time = snap.seq, snap.hash, snap.time
        res.kinds = dict(snap.kinds)
        for k, v in snap.totals.items():
            setattr(res, k, v)
        res.mode, res.since = "incremental", snap.seq
        if self.log_only:
            return                       # the log alone: no filter, no member signature
        for name, kept in snap.filters.items():
            words = name.split(" ")
            flt = filter_class(words[0])(words[1:])
            flt.load_checkpoint(kept.own)
            flt.lines = list(kept.lines)
            self.filters[name] = flt
            self.marks[name] = list(kept.marks)
            self.covered[name] = kept.covered
            self.restart[name] = snap.seq

    def _replay_again(self, name: str, seq: int, span: int) -> None:
        """Record *seq* (new) is filter *name*'s checkpoint of record *span*,
        which the kept state is past: replay the filter again from its
        latest checkpoint the audit reproduced, so that its state at *span*
        is there to compare.  Raises _Fallback when there is none that old."""
        kept = self.snap.filters[name]
        cp = kept.checkpoint
        if cp is None or cp[1] > span:
            raise _Fallback(f"{name}'s checkpoint at record {seq} is of record {span}, before "
                            "any checkpoint of it the auditor kept")
        words = name.split(" ")
        from pit.ops import filter_class
        flt = filter_class(words[0])(words[1:])
        flt.load_checkpoint(cp[2])
        self.filters[name] = flt
        self.marks[name] = []
        self.covered[name] = cp[1]
        self.restart[name] = cp[1]

    def prove_extension(self) -> None:
        """After a resumed audit passed: the RFC 9162 consistency proof from
        the signed tree head the auditor kept to the newest one, made from
        the kept frontier and the new records' leaves, and checked."""
        seal, size, root, _, _ = self.snap.head
        new = self.res.newest_head
        n = self.res.records
        what = (f"records {self.start}-{n} checked" if n >= self.start
                else "no record since the kept state") + f" after the auditor's state at record {seal}"
        again = [f"{name} from record {self.restart[name] + 1}" for name in sorted(self.filters)
                 if self.restart[name] < seal]
        what += "; filters replayed from their state kept there" + \
            (f" (from an earlier record, a checkpoint or a filter new since: "
             f"{', '.join(again)})" if again else "")
        if new[1] > size:
            proof = merkle.consistency_proof(self.all_leaves(), size, new[1])
            if not merkle.verify_consistency(size, new[1], bytes.fromhex(root),
                                             bytes.fromhex(new[2]), proof):
                raise AuditFailure(seal + 1, "the newest signed tree head does not extend the "
                                   "one the auditor verified", f"size {size} root {root}",
                                   f"size {new[1]} root {new[2]}")
            what += (f"; consistency proof {size} -> {new[1]} ({len(proof)} hashes) from the "
                     f"signed tree head the auditor verified, checked")
        self.res.incremental = what

    # -- pass 1: which filters posted, and where their checkpoints fall ----------
    def plan(self) -> None:
        from pit.ops import filter_class
        self.points: dict[str, set[int]] = {}
        self.n_records = 0
        self.first_keys: dict[str, str] = {}      # each key's first certificate
        self.signers: set[str] = set()            # resumed: who signed the new records
        try:
            self._plan()
        except AuditFailure:
            pass            # the main pass reaches it, or something before it, and says so
        except FilterError as e:         # a kept checkpoint that does not load
            raise _Fallback(f"the auditor's kept checkpoint does not load ({e})") from None
        self.res.filters = sorted(self.filters)
        if self.snap is not None:
            # gpg learns the keys the new records need, as they stood at the
            # kept state (every certificate published for them, in order),
            # then the first certificate of each key new since
            want = self.signers | {self.notary, self.operator}
            self.keys.restore([b for _, _, b in self.snap.certificates(want)])
            known = self.snap.known_fingerprints(self.first_keys)
            self.first_keys = {f: b for f, b in self.first_keys.items() if f not in known}
        self.keys.preload(list(self.first_keys.values()))
        self.resume_at = min([self.start] + [r + 1 for r in self.restart.values()])

    def _plan(self) -> None:
        from pit.ops import filter_class
        resumed = self.snap is not None
        for seq, msg in _Reader(self.arch, self.start):
            self.n_records += 1
            if resumed:
                self.signers.add(_stamp(seq, msg).get("x-pit-signer", ""))
            if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in msg:
                _first_certificates(msg, self.first_keys)
            # A report or checkpoint stamp holds one of these words; most
            # records hold neither, and a byte search is cheaper than a stamp.
            if b"report" not in msg and b"checkpoint" not in msg:
                continue
            st = _stamp(seq, msg)
            kind = st.get("x-pit-kind")
            if kind in ("report", "checkpoint"):
                name, _, span = st.get("x-pit-request", "").rpartition(" ")
                if name not in self.filters:
                    words = name.split(" ")
                    try:
                        self.filters[name] = filter_class(words[0])(words[1:])
                    except Exception as e:
                        raise AuditFailure(seq, f"a {kind} of unknown filter {name!r}: {e}")
                    self.marks[name] = []
                    self.restart[name] = 0         # new since a resume: from record 1
                if kind == "checkpoint" and span.isdigit():
                    self.points.setdefault(name, set()).add(int(span))
                    if resumed and int(span) < self.start and self.restart.get(name, 0) >= int(span):
                        self._replay_again(name, seq, int(span))

    # -- pass 2 ------------------------------------------------------------------
    def run(self) -> None:
        self.prefetch = None
        if self.log_only:
            self.points, self.n_records = {}, 0
            if self.snap is not None:        # the seals' key, as the kept state has it
                self.keys.restore([b for _, _, b in self.snap.certificates([self.notary])])
            self.reader = _Reader(self.arch, self.start)
            self._run(self.reader)
            return
        self.plan()
        self.reader = _Reader(self.arch, self.resume_at, digests=True)
        workers = min(4, os.cpu_count() or 1)
        if (self.n_records >= PARALLEL_MIN_RECORDS and workers > 1
                and "fork" in multiprocessing.get_all_start_methods()):
            self.prefetch = _Prefetch(self.reader, self.keys, workers)
        try:
            self._run(self.prefetch if self.prefetch else self.reader)
        finally:
            if self.prefetch:
                self.prefetch.close()

    def _run(self, records) -> None:
        expected_seq, prev, last_time = self.start, self.prev, self.last_time
        start = self.start
        res = self.res
        for seq, msg in records:
            self.current = seq
            st = _stamp(seq, msg)
            if seq < start:                # verified before: only filters since their checkpoint
                self.replay(seq, st, msg, refeed=True)
                continue
            if st.get("x-pit-seq") != str(seq):
                raise AuditFailure(seq, "the entry in this record's place has another X-Pit-Seq",
                                   str(seq), st.get("x-pit-seq", "(none)"))
            if seq != expected_seq:
                raise AuditFailure(seq, "sequence numbers are not gapless and in order",
                                   str(expected_seq), str(seq))
            if st.get("x-pit-prev") != prev:
                raise self._broken_link(seq, st.get("x-pit-prev", "(none)"), prev)
            t = st.get("x-pit-time", "")
            try:
                if not _NOTARY_TIME.fullmatch(t):
                    raise ValueError(t)
                _epoch(t)
            except ValueError:
                raise AuditFailure(seq, "X-Pit-Time is not a notary time",
                                   "YYYY-MM-DDTHH:MM:SS.ffffffZ", t) from None
            if not t or t <= last_time:
                raise AuditFailure(seq, "X-Pit-Time does not increase", f"after {last_time}", t)
            stamp_bytes, original = mbox.split_stamp(msg)
            digest = hashlib.sha256(original).hexdigest()
            if st.get("x-pit-digest") != digest:
                raise AuditFailure(seq, "X-Pit-Digest is not the hash of the original message",
                                   digest, st.get("x-pit-digest", "(none)"))
            raw = hashlib.sha256(msg).digest()
            h = raw.hex()
            kind = st.get("x-pit-kind", "")
            res.kinds[kind] = res.kinds.get(kind, 0) + 1
            if seq == 1:
                self.genesis(seq, st, original)
            elif kind == "seal":
                self.seal(seq, st, original)
            elif not self.log_only:
                self.signed_record(seq, st, original)
            if kind != "seal":
                self.unsealed.append((seq, h))
            if not self.log_only:
                self.replay(seq, st, msg)
            self.separator(seq, t)
            leaf = merkle.leaf_hash(raw)
            self.tree.append(leaf)
            self.leaves.append(leaf)
            prev, last_time, expected_seq = h, t, seq + 1
            res.records, res.head = seq, h
            if self.progress and seq % 200 == 0:
                self.progress(seq, self.total)
            if not res.first_time:
                res.first_time = t
            res.last_time = t
        if self.unsealed:
            f = AuditFailure(self.unsealed[0][0], "record not covered by any seal",
                             "a seal after it", "none")
            f.at_end = True
            raise f
        res.tree_root = self.tree.root().hex()

    def separator(self, seq: int, t: str) -> None:
        """The entry's ``From `` line must be the one the notary writes for
        the record's X-Pit-Time: no hash covers it, so it is checked here."""
        if self._separator[0] != t[:19]:
            self._separator = (t[:19], mbox.from_line("notary", t)[:-1])
        found = self.reader.from_lines.get(seq)
        if found is not None and found != self._separator[1]:
            raise AuditFailure(seq, "the entry's 'From ' line is not the notary's for this record",
                               self._separator[1].decode(), found.decode("utf-8", "replace"))

    def _broken_link(self, seq: int, found: str, prev: str) -> AuditFailure:
        """Record *seq* does not chain to the one before: either that
        record's bytes changed (a stamp field no other check reads) or this
        record's X-Pit-Prev did.  The seal that lists record seq-1 tells
        which: it agrees with the X-Pit-Prev when the record changed."""
        listed = self._sealed_hash(seq - 1)
        if listed is not None and listed == found:
            return AuditFailure(seq - 1, "the record's bytes changed: its record hash is not "
                                f"the one record {seq} chains to and its seal lists", found, prev)
        return AuditFailure(seq, "X-Pit-Prev does not chain to the record before", prev, found)

    def _sealed_hash(self, n: int) -> str | None:
        """The record hash the first seal after record *n* lists for it
        (None: no such seal, or it does not read).  Read only after a
        failure: O(the volume from n on)."""
        try:
            for _, msg in self.arch.records_of_kind(n + 1, ("seal",)):
                seal = message.parse_seal(signed.extract(mbox.split_stamp(msg)[1]).text)
                return seal.hashes[n - seal.first] if seal.first <= n <= seal.last else None
        except Exception:                   # noqa: BLE001 - a damaged seal: no opinion
            return None
        return None

    def _notary_fields(self, seq: int, st: dict, want: dict) -> None:
        """The stamp fields the notary writes for its own records."""
        for k, v in want.items():
            if st.get(k) != v:
                raise AuditFailure(seq, f"the notary's stamp of this record is not what it writes",
                                   f"{k}: {v}", f"{k}: {st.get(k, '(none)')}")

    def genesis(self, seq: int, st: dict, original: bytes) -> None:
        if st.get("x-pit-kind") != "genesis":
            raise AuditFailure(seq, "record 1 is not the genesis record", "genesis",
                               st.get("x-pit-kind", ""))
        s = self._extract(seq, original)
        try:
            fprs = self.keys.add(s.text)
        except KeyringError as e:
            raise AuditFailure(seq, f"the genesis record's keys cannot be read: {e}") from None
        self.key_log += [(seq, f, b) for f, b in zip(fprs, _key_blocks(s.text))]
        words = st.get("x-pit-request", "").split(" ")
        rules = genesis_rules(st.get("x-pit-request", ""))
        if not rules or words[0] != "notary" or words[2] != "operator":
            raise AuditFailure(seq, "genesis names no notary and operator", "notary F operator F",
                               st.get("x-pit-request", ""))
        if rules > kinds.rules.LATEST:
            raise AuditFailure(seq, "genesis names rules this audit does not know",
                               f"rules 1 to {kinds.rules.LATEST}", f"rules {rules}")
        if rules > 1:                      # kept with the operator's records for a resumed audit
            self.rules = rules
            self.operator_log.append((seq, "rules", f"Pit: {st.get('x-pit-pit', '')}\n"
                                      f"Account: operator\nRef: genesis\nRules: {rules}\n"))
        notary, operator = words[1], words[3]
        if notary not in fprs or operator not in fprs:
            raise AuditFailure(seq, "genesis does not publish the keys it names",
                               f"{notary} {operator}", " ".join(fprs))
        v = self.keys.ring.verify_gpg(s.gpg_input)
        if not v.ok or v.fingerprint != notary:
            raise AuditFailure(seq, "the genesis record is not signed by its notary key",
                               notary, f"{v.status} {v.fingerprint}")
        try:
            subject = mbox.headers(original, ["subject"]).get("subject", "")
        except mbox.MboxError:
            subject = ""
        self._notary_fields(seq, st, {"x-pit-signer": notary, "x-pit-account": "notary",
                                      "x-pit-ref": "genesis",
                                      "x-pit-pit": subject.rpartition(" genesis")[0]})
        self.notary, self.res.notary = notary, notary
        self.operator = operator
        # A pit made since requests name its identity says so in its genesis
        # ("Pit: NAME NOTARY-FPR"); an older archive is bound from its first
        # request that names it (see pit-messages(5), "The pit's identity").
        self.bound = s.text.split("\n", 1)[0].split(" ")[2:] == [notary]
        self.res.pit = st.get("x-pit-pit", "")
        self.members = {notary: ("notary",), operator: ("operator",)}
        self.res.seals += 0

    def seal(self, seq: int, st: dict, original: bytes) -> None:
        s = self._extract(seq, original)
        v = self.keys.ring.verify_gpg(s.gpg_input)            # stock gpg, as an auditor would
        if not v.ok or v.fingerprint != self.notary:
            raise AuditFailure(seq, "seal does not verify with the notary key (gpg)",
                               f"good signature by {self.notary}", f"{v.status}: {v.detail}")
        try:
            seal = message.parse_seal(s.text)
        except message.MessageError as e:
            raise AuditFailure(seq, f"unreadable seal: {e}")
        want = [h for _, h in self.unsealed]
        first = self.unsealed[0][0] if self.unsealed else seq
        if seal.first != first or list(seal.hashes) != want:
            bad = next((i for i, (a, b) in enumerate(zip(seal.hashes, want)) if a != b),
                       min(len(seal.hashes), len(want)))
            at = first + bad
            raise AuditFailure(at, f"seal {seq} does not match the records it covers",
                               f"records {first}-{seq - 1}: {want[bad] if bad < len(want) else 'end'}",
                               f"seal {seal.first}-{seal.last}: "
                               f"{seal.hashes[bad] if bad < len(seal.hashes) else 'end'}")
        if st.get("x-pit-signer") != self.notary:
            raise AuditFailure(seq, "seal stamp names another signer", self.notary,
                               st.get("x-pit-signer", ""))
        self._notary_fields(seq, st, {"x-pit-pit": self.res.pit, "x-pit-account": "notary",
                                      "x-pit-ref": f"seal-{seal.last}",
                                      "x-pit-request": f"{seal.first}-{seal.last}"})
        if seal.tree_size:
            root = self.tree.root().hex()
            if seal.tree_size != seq - 1 or seal.root != root:
                raise AuditFailure(seq, "the seal's signed tree head is not the tree of the "
                                   "records before it", f"size {seq - 1} root {root}",
                                   f"size {seal.tree_size} root {seal.root}")
            if seal.time != st.get("x-pit-time"):
                raise AuditFailure(seq, "the seal's signed time is not its record's X-Pit-Time",
                                   st.get("x-pit-time", ""), seal.time)
            self.tree_heads = True
            self.res.heads += 1
            self.res.newest_head = (seq, seal.tree_size, seal.root, seal.time, self.tree.copy())
        elif self.tree_heads:
            raise AuditFailure(seq, "a seal without a signed tree head after seals with one",
                               "Tree-Size, Root and Time", "none")
        self.unsealed = []
        self.res.seals += 1

    def _extract(self, seq: int, original: bytes):
        try:
            return signed.extract(original)
        except signed.SignedError as e:
            raise AuditFailure(seq, f"the original message has no readable signature: {e}")

    def signed_record(self, seq: int, st: dict, original: bytes) -> None:
        checked = self.prefetch.result(seq) if self.prefetch else None
        if checked is not None:
            text, v = checked                 # a good signature, checked ahead
        else:
            s = self._extract(seq, original)
            now = _epoch(st["x-pit-time"])
            v = s.verify(self.keys.verifier, now=now)
            text = s.text
        if not v.ok:
            raise AuditFailure(seq, "the sender's signature does not verify",
                               "good", f"{v.status}: {v.detail}")
        if v.fingerprint != st.get("x-pit-signer"):
            raise AuditFailure(seq, "X-Pit-Signer is not the key that signed",
                               v.fingerprint or "", st.get("x-pit-signer", ""))
        accounts = self.members.get(v.fingerprint)
        if accounts is None:
            raise AuditFailure(seq, "signed by a key that was not a member then", "a member key",
                               v.fingerprint or "")
        self.res.signatures += 1
        fields = self.expected_fields(seq, st, text, accounts)
        found = [(k, st[k]) for k in STAMP_FIELDS if k in st]
        if fields != found:
            diff = next((i for i, (a, b) in enumerate(zip(fields, found)) if a != b),
                        min(len(fields), len(found)))
            exp = fields[diff] if diff < len(fields) else ("", "(none)")
            got = found[diff] if diff < len(found) else ("", "(none)")
            raise AuditFailure(seq, "the stamp does not say what the signed text says",
                               f"{exp[0]}: {exp[1]}", f"{got[0]}: {got[1]}")

    def expected_fields(self, seq: int, st: dict, text: str, accounts) -> list[tuple[str, str]]:
        """The stamp fields the signed *text* calls for, as the notary derives them."""
        pit = self.res.pit
        if text.startswith(("Report: ", "Checkpoint: ")):
            try:
                fs = message.filter_stamp(text)
            except message.MessageError as e:
                raise AuditFailure(seq, f"unreadable filter output: {e}")
            if any(a not in accounts for a in fs.accounts):
                raise AuditFailure(seq, "filter output signed by a key that does not own the filter",
                                   fs.accounts[0], ",".join(accounts))
            if not all(a.partition(":")[0] in FILTERS for a in accounts):
                # authority by key: a filter's own key owns filter accounts only
                raise AuditFailure(seq, "filter output signed by a key that is no filter's",
                                   "a filter's key", ",".join(accounts))
            self.refs[fs.accounts[0], fs.ref] = ""
            return [(k.lower(), v) for k, v in fs.fields()]
        i = text.find("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        body, key_block = (text, "") if i < 0 else (text[:i].rstrip("\n") + "\n", text[i:])
        try:
            req = message.parse_request(body)
            ticker = None
            ins = req.instruction
            if isinstance(ins, (message.Cancel, message.Modify)):
                ticker = self.refs.get((req.account, ins.ref)) or None
            if req.kind in kinds.NUMBERS:
                req = message.resolve(req, self.instruments, self.currencies, ticker=ticker)
        except (message.MessageError, ValueError, KeyError) as e:
            raise AuditFailure(seq, f"the signed request does not parse: {e}")
        if req.pit != pit:
            raise AuditFailure(seq, "a request for another pit was notarized", pit, req.pit)
        if req.pit_id:
            if req.pit_id != self.notary:
                raise AuditFailure(seq, "a request for another pit of the same name was notarized",
                                   self.notary, req.pit_id)
            self.bound = True
        elif self.bound:
            raise AuditFailure(seq, "a request without the pit's identity was notarized",
                               f"Pit: {pit} {self.notary}", f"Pit: {req.pit}")
        base = req.account.partition(":")[0]
        owner = "operator" if req.kind in kinds.OPERATOR else base
        if owner == "operator" and st.get("x-pit-signer") != self.operator:
            raise AuditFailure(seq, "an operator request not signed by the operator's key",
                               "operator", ",".join(accounts))
        if owner not in accounts:
            raise AuditFailure(seq, "the signing key does not own the account", req.account,
                               ",".join(accounts))
        if (req.account, req.ref) in self.refs:
            raise AuditFailure(seq, "a replayed request was notarized",
                               "a ref never used before", f"{req.account} {req.ref}")
        why = None
        if req.kind == "rules":
            why = kinds.rules.refusal(self.rules, ins.version)
        elif req.kind == "transfer" and self.rules >= 2:
            why = kinds.rules.transfer_refusal(req.account, ins.asset, ins.to, self.instruments,
                                               self._owned)
        if why:
            raise AuditFailure(seq, "the notary took a request the pit's rules refuse",
                               f"refused: {why}", "notarized")
        fields = [("x-pit-pit", req.pit)] + [(k.lower(), v) for k, v in message.stamp_fields(req)]
        if isinstance(ins, message.Cancel):
            if "x-pit-ticker" in st:
                self.cancel_tickers = True
            elif not self.cancel_tickers:
                # Notaries before the cancel's ticker was stamped wrote none;
                # such an archive audits as written until its first cancel
                # that carries one (its specialists never saw those cancels).
                fields = [f for f in fields if f[0] != "x-pit-ticker"]
        self.refs[req.account, req.ref] = next((v for k, v in fields if k == "x-pit-ticker"), "") \
            if req.kind == "order" else ""
        if req.kind == "member":
            if ins.action == "add":
                try:
                    got = self.keys.add(key_block) if key_block else []
                except KeyringError as e:
                    raise AuditFailure(seq, f"the member record's key cannot be read: {e}") from None
                if ins.fingerprint not in got:
                    raise AuditFailure(seq, "a member record without the member's key",
                                       ins.fingerprint, " ".join(got) or "no key block")
                self.key_log += [(seq, f, b) for f, b in zip(got, _key_blocks(key_block))]
                self._own(ins.fingerprint, ins.accounts)
                self.members[ins.fingerprint] = tuple(ins.accounts)
            else:
                self._own(ins.fingerprint, ())
                self.members.pop(ins.fingerprint, None)
        elif req.kind in ("currency", "fees", "instrument", "rules"):
            self._operator(req)
            self.operator_log.append((seq, req.kind, body))
        return fields

    def _own(self, fpr: str, accounts) -> None:
        """Key *fpr* now owns *accounts* (none: it is no member's any more)."""
        if self.owners is None:
            return
        for a in self.members.get(fpr) or ():
            self.owners[a] -= 1
        for a in accounts:
            self.owners[a] = self.owners.get(a, 0) + 1

    def _owned(self, account: str) -> bool:
        """Does a member's key (not a filter's) own the plain *account*?
        The table of owners is made at the first question, O(members)
        once an audit, then kept with the member records.  O(1)."""
        if self.owners is None:
            owners: dict[str, int] = {}
            members = self.members
            if isinstance(members, dict):
                rows = members.items()
            else:                          # resumed: the kept table and this audit's changes
                rows = [(f, tuple(a.split(","))) for f, a in
                        members.db.execute("SELECT fingerprint, accounts FROM members")
                        if f not in members.changed]
                rows += [(f, v) for f, v in members.changed.items() if v is not None]
            for _, accounts in rows:
                for a in accounts:
                    owners[a] = owners.get(a, 0) + 1
            self.owners = owners
        return account.partition(":")[0] not in FILTERS and account != "notary" \
            and self.owners.get(account, 0) > 0

    def _operator(self, req) -> None:
        """A currency, fees, instrument or rules request takes effect."""
        ins = req.instruction
        if req.kind == "rules":
            self.rules = max(self.rules, ins.version)
        elif req.kind == "currency":
            self.currencies[ins.code] = ins.currency()
        elif req.kind == "fees":
            self.fees = ins
        elif req.kind == "instrument":
            self.instruments[ins.ticker] = ins.instrument(self.currencies, self.fees)

    # -- the filters ---------------------------------------------------------------
    def replay(self, seq: int, st: dict, msg: bytes, refeed: bool = False) -> None:
        """Feed record *seq* to every filter, and check it when it is a
        filter's report or checkpoint.  *refeed*: a record verified before,
        read again after a resume for the filters whose checkpoint is older
        (their outputs up to that checkpoint were reproduced then)."""
        kind = st.get("x-pit-kind")
        restart = self.restart
        if kind in ("report", "checkpoint"):
            name, _, span = st.get("x-pit-request", "").rpartition(" ")
            flt = self.filters[name]
            end = int(span.split("-")[-1])
            if refeed and end <= restart.get(name, 0):
                pass                         # up to the checkpoint the replay starts from
            else:
                self.filter_output(seq, msg, kind, name, flt, end, refeed)
        for name, flt in self.filters.items():
            if refeed and seq <= restart[name]:
                continue
            try:
                n_before = len(flt.lines)
                if flt.feed(seq, st, msg) and len(flt.lines) != n_before:
                    self.marks[name].append((seq, n_before))
            except FilterError as e:
                raise AuditFailure(seq, f"replaying {name} failed: {e}")
            if seq in self.points.get(name, ()):
                self.snapshots[name, seq] = flt.checkpoint_body()

    def filter_output(self, seq: int, msg: bytes, kind: str, name: str, flt: Filter,
                      end: int, refeed: bool) -> None:
        """Record *seq*, a report (to record *end*) or checkpoint (Seq
        *end*) of filter *name*, must be what the replay produces."""
        text = signed.extract(mbox.split_stamp(msg)[1]).text
        if kind == "report":
            expected = self.report_of(flt, end)
            self.res.reports += not refeed
        else:
            expected = self.snapshots.pop((name, end), None)
            self.covered[name] = end
            self.res.checkpoints += not refeed
        if text != expected:
                a, b = (expected or "").split("\n"), text.split("\n")
                n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                raise AuditFailure(seq, f"{name} {kind} differs from the replay at its line {n + 1}",
                                   a[n] if n < len(a) else "(end)", b[n] if n < len(b) else "(end)")
        if kind == "checkpoint" and not refeed:
            self.verified_checkpoints[name] = (seq, end, text)

    def report_of(self, flt: Filter, to_seq: int) -> str:
        """The report the filter would have written for its run ending at
        *to_seq*: the lines of the records after its previous report."""
        marks = self.marks[flt.name]
        end = next((i for s, i in marks if s > to_seq), len(flt.lines))
        first = self.covered.get(flt.name, 0) + 1
        lines = flt.lines[:end]
        del flt.lines[:end]
        self.marks[flt.name] = [(s, i - end) for s, i in marks if s > to_seq]
        head = [f"Report: {flt.name}", f"Pit: {flt.pit}", f"From-Seq: {first}",
                f"To-Seq: {to_seq}", ""]
        return "\n".join(head + lines) + "\n"


def _stamp(seq: int, msg: bytes) -> dict:
    """``mbox.stamp`` of record *seq*, its errors a discrepancy of the record."""
    try:
        return mbox.stamp(msg)
    except mbox.MboxError as e:
        raise AuditFailure(seq, f"the stamp cannot be read: {e}") from None


_KEY_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
_KEY_END = "-----END PGP PUBLIC KEY BLOCK-----"


def _key_blocks(armored: str) -> list[str]:
    """The armoured public key blocks in a signed text, in order."""
    blocks, i = [], 0
    while True:
        a = armored.find(_KEY_BEGIN, i)
        if a < 0:
            return blocks
        b = armored.find(_KEY_END, a)
        if b < 0:                       # no end: the rest is one (unreadable) block
            blocks.append(armored[a:])
            return blocks
        blocks.append(armored[a:b + len(_KEY_END)])
        i = b + 1


def _first_certificates(msg: bytes, seen: dict[str, str]) -> None:
    """Note in *seen* each key block of record *msg* whose key is new to it.
    A record that does not read is passed over: the replay says what is wrong."""
    from pit.keyring import KeyringError, certificate_fingerprint
    try:
        text = signed.extract(mbox.split_stamp(msg)[1]).text
    except Exception:
        return
    for block in _key_blocks(text):
        try:
            fpr = certificate_fingerprint(block)
        except KeyringError:
            continue
        seen.setdefault(fpr, block)


_last_epoch: tuple[str, int] = ("", 0)


def _epoch(iso: str) -> int:
    """Whole seconds of a notary time.  Records come a thousand a second, so
    the last answer is kept (docs/pit-book.md, "Start-up")."""
    global _last_epoch
    key = iso[:19]
    if _last_epoch[0] == key:
        return _last_epoch[1]
    from datetime import datetime, timezone
    value = int(datetime.strptime(key, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    _last_epoch = (key, value)
    return value


# -- checking signatures ahead, in worker processes --------------------------------

def _verifier_from(portable) -> openpgp.Verifier:
    """The verifier of ``_Keys.portable()``, in a worker process."""
    from pit.keystore import KeyStore, StoreVerifier
    return StoreVerifier(KeyStore(portable[1]))


def _check_chunk(portable: list[tuple], records: list[tuple[int, bytes]]) -> list:
    """In a worker: for each record, ``(text, verdict)`` when its signature is
    good, else None (the audit then checks it itself and reports it)."""
    verifier = _verifier_from(portable)
    out = []
    for seq, msg in records:
        try:
            st = mbox.stamp(msg)
            if seq == 1 or st.get("x-pit-kind") in ("seal", "genesis"):
                out.append(None)
                continue
            s = signed.extract(mbox.split_stamp(msg)[1])
            v = s.verify(verifier, now=_epoch(st["x-pit-time"]))
            out.append((s.text, v) if v.ok else None)
        except Exception:               # anything odd: the sequential pass says what
            out.append(None)
    return out


class _Chunk:
    """Records read ahead, and the task checking ``records[offset:]``."""

    __slots__ = ("records", "generation", "future", "results", "offset")

    def __init__(self, records):
        self.records = records
        self.generation, self.future, self.results, self.offset = -1, None, None, 0


class _Prefetch:
    """Iterates over the archive's records like ``Archive.read()``, while
    worker processes extract and verify the signatures of the records ahead.

    A result is used only if it was computed with the verifier the audit
    holds when it reaches that record (same key generation) and says
    "good"; everything else is checked in the audit's own pass, so the
    verdicts, and the first discrepancy reported, are those of a purely
    sequential audit.  When the keys change (a member record), the records
    read ahead are sent again with the new keys.  The audit never waits
    for a worker: a record whose result is not ready is checked in the
    audit's own pass, and a task not yet started when the audit reaches it
    is cancelled (on a busy machine the workers fall behind, and waiting
    for them would make the audit slower than doing without).  Memory:
    O(PREFETCH_CHUNK * PREFETCH_DEPTH) records.
    """

    def __init__(self, records, keys: _Keys, workers: int):
        self.records = iter(records)
        self.keys = keys
        # fork: workers need nothing re-imported, and the caller's main module
        # (which may have no __main__ guard) is not run again.  Workers are
        # forked at the first task, before the pool starts its own thread.
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        self.chunks: deque[_Chunk] = deque()
        self.done = False
        self.current: tuple[_Chunk, int, int] | None = None
        self.generation = -1               # of the keys, when last looked at
        # Records since the keys last changed.  Member records come in runs
        # (a pit's start); checking ahead with keys about to change again
        # would only keep the workers busy with work thrown away.
        self.quiet = 0

    def _read_chunk(self) -> None:
        batch = []
        for item in self.records:
            batch.append(item)
            if len(batch) >= PREFETCH_CHUNK:
                break
        else:
            self.done = True
        if batch:
            chunk = _Chunk(batch)
            self.chunks.append(chunk)
            if self.quiet >= PREFETCH_SETTLE:
                self._submit(chunk, 0)

    def _submit(self, chunk: _Chunk, offset: int) -> None:
        if chunk.future is not None:
            chunk.future.cancel()
        portable = self.keys.portable()
        chunk.generation, chunk.results, chunk.offset = self.keys.generation, None, offset
        chunk.future = (self.pool.submit(_check_chunk, portable, chunk.records[offset:])
                        if portable and offset < len(chunk.records) else None)

    def _refresh(self, index: int) -> None:
        """The keys have settled: check the records ahead with them."""
        for n, chunk in enumerate(self.chunks):
            if chunk.generation != self.generation:
                self._submit(chunk, index + 1 if n == 0 else 0)

    def __iter__(self):
        while True:
            while not self.done and len(self.chunks) < PREFETCH_DEPTH:
                self._read_chunk()
            if not self.chunks:
                return
            chunk = self.chunks[0]
            if chunk.future is not None and chunk.future.cancel():
                chunk.future = None           # not started yet: the workers are behind
            for i, (seq, msg) in enumerate(chunk.records):
                if self.keys.generation != self.generation:
                    self.generation, self.quiet = self.keys.generation, 0
                else:
                    self.quiet += 1
                    if self.quiet == PREFETCH_SETTLE:
                        self._refresh(i - 1)
                self.current = (chunk, i, seq)
                yield seq, msg
            self.chunks.popleft()
            self.current = None

    def result(self, seq: int):
        """``(text, verdict)`` checked ahead for record *seq*, or None."""
        if self.current is None or self.current[2] != seq:
            return None
        chunk, i, _ = self.current
        if chunk.future is None or chunk.generation != self.keys.generation or i < chunk.offset:
            return None
        if chunk.results is None:
            if not chunk.future.done():
                return None                   # not ready: checked inline, not waited for
            try:
                chunk.results = chunk.future.result()
            except Exception:
                chunk.future = None           # a broken worker: check inline
                return None
        return chunk.results[i - chunk.offset]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
