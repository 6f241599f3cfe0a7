"""What the auditor keeps of a copy it audited, so that the next audit
costs what is new (``pit audit``; ``pit audit --full`` starts from record 1).

The state is the auditor's own computation, kept beside the copy and never
inside its ``archives/`` (a replica's archive comes from elsewhere and is
hostile; nothing of it is taken on trust)::

    <copy>/audit-state/state.sqlite

It describes the copy as the last audit that passed left it, at record S,
the newest seal (a passing audit ends at a seal):

* ``meta``: the chain head (record S's hash and X-Pit-Time), the signed
  tree head of that seal (size S-1, root, time, and its frontier: the
  tree's compact range), the pit, notary and operator keys, the running
  totals of the summary, and the replay rule's flags;
* ``members`` (key -> accounts) and ``refs`` ((account, ref) -> the
  order's ticker): the replay rule's memory, looked up one row at a time;
* ``certificates``: every key block the genesis and member records
  published, in order, and ``keyids`` (which certificate holds which key
  id): an audit gives gpg only the keys the new records need;
* ``operator``: the currency, fees and instrument requests' texts;
* ``filters``: each filter's state at record S as the audit's replay left
  it (its checkpoint text at S, the report lines not yet reported, the Seq
  of its last checkpoint): the replay goes on from there, as the filter
  programs themselves restart from a checkpoint; and its latest checkpoint
  in the archive that the audit reproduced byte for byte (record, Seq,
  text), from which the records since are replayed again when a new
  checkpoint covers records before S (posted across a seal);
* ``volumes``: each volume's bytes as verified (size, SHA-256, inode and
  modification time).  A volume whose inode, time or size moved is hashed
  again (and, its bytes found as verified, kept with its new inode and
  time: a moved copy is hashed once); the volume holding record S is
  hashed up to S's end every time.
  Bytes before S that changed are history rewritten under the auditor:
  that, or any state that does not read, makes the audit a full one, with
  the reason in one line.

Loading costs O(volumes) stats and one volume's hash; lookups O(log n).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from pit import merkle

__all__ = ["STATE_DIR", "state_path", "Snapshot", "load", "save", "Members", "Refs"]

STATE_DIR = "audit-state"
STATE_DB = "state.sqlite"
VERSION = "1"

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE members (fingerprint TEXT PRIMARY KEY, accounts TEXT NOT NULL);
CREATE TABLE refs (account TEXT NOT NULL, ref TEXT NOT NULL, ticker TEXT NOT NULL,
                   PRIMARY KEY (account, ref)) WITHOUT ROWID;
CREATE TABLE certificates (seq INTEGER NOT NULL, fingerprint TEXT NOT NULL, block TEXT NOT NULL);
CREATE INDEX certificates_fpr ON certificates (fingerprint);
CREATE TABLE keyids (keyid TEXT NOT NULL, fingerprint TEXT NOT NULL,
                     PRIMARY KEY (keyid, fingerprint)) WITHOUT ROWID;
CREATE TABLE operator (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE filters (name TEXT PRIMARY KEY, record INTEGER, span INTEGER, body TEXT,
                      own TEXT NOT NULL, lines TEXT NOT NULL, marks TEXT NOT NULL,
                      covered INTEGER NOT NULL);
CREATE TABLE volumes (name TEXT PRIMARY KEY, first INTEGER NOT NULL, last INTEGER NOT NULL,
                      bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, inode INTEGER NOT NULL,
                      mtime_ns INTEGER NOT NULL);
"""


def state_path(path: str | os.PathLike) -> Path:
    """Where the auditor keeps its state for the copy at *path* (a pit, a
    replica, or a bare archive folder: beside its index then)."""
    from pit.replica import _root_of
    return _root_of(path) / STATE_DIR / STATE_DB


@dataclass
class KeptFilter:
    """A filter as the audit left it at the state's record."""
    own: str                             # its checkpoint text at that record
    lines: list                          # report lines not reported yet
    marks: list                          # [(seq, index into lines)]
    covered: int                         # the Seq of its last checkpoint in the archive
    checkpoint: tuple | None             # (record, Seq, text) of that checkpoint


@dataclass
class Snapshot:
    """The state at record ``seq`` (a seal), loaded."""
    db: sqlite3.Connection
    path: Path
    seq: int = 0
    hash: str = ""
    time: str = ""
    pit: str = ""
    notary: str = ""
    operator: str = ""
    head: tuple | None = None           # (seal seq, size, root hex, time, Frontier)
    remembered: tuple = (0, "")         # the copy's [verified] head (size, root) when saved
    flags: dict = field(default_factory=dict)     # bound, cancel_tickers
    totals: dict = field(default_factory=dict)    # the summary's running counts
    kinds: dict = field(default_factory=dict)
    filters: dict = field(default_factory=dict)   # name -> KeptFilter
    moved: dict = field(default_factory=dict)     # name -> (inode, mtime) of a volume hashed
    #                                               again and found as verified

    def close(self) -> None:
        self.db.close()

    def operator_texts(self) -> list[tuple[int, str, str]]:
        return list(self.db.execute("SELECT seq, kind, text FROM operator ORDER BY seq"))

    def certificates(self, fingerprints) -> list[tuple[int, str, str]]:
        """Every key block published for these certificates (and for any
        other certificate that holds one of their key ids: the verifier
        refuses a key two certificates claim), in archive order."""
        want = set(fingerprints)
        q = ("SELECT DISTINCT k2.fingerprint FROM keyids k1 JOIN keyids k2 "
             "ON k1.keyid = k2.keyid WHERE k1.fingerprint = ?")
        for f in list(want):
            want.update(r[0] for r in self.db.execute(q, (f,)))
        rows = []
        for f in want:
            rows += self.db.execute("SELECT seq, fingerprint, block FROM certificates "
                                    "WHERE fingerprint = ?", (f,)).fetchall()
        return sorted(rows, key=lambda r: r[0])

    def known_fingerprints(self, fingerprints) -> set[str]:
        return {f for f in fingerprints if self.db.execute(
            "SELECT 1 FROM certificates WHERE fingerprint = ? LIMIT 1", (f,)).fetchone()}


class _Overlay:
    """A table of the state seen as a mapping: rows read when asked, what
    the audit changes kept aside until :func:`save` (so an audit that
    fails leaves the state as it was)."""

    def __init__(self, db: sqlite3.Connection | None):
        self.db = db
        self.changed: dict = {}
        self.read: dict = {}                # rows looked up, kept (a member signs often)

    def _read(self, key):
        raise NotImplementedError

    def get(self, key, default=None):
        if key in self.changed:
            value = self.changed[key]
        elif key in self.read:
            value = self.read[key]
        else:
            value = self._read(key) if self.db is not None else None
            if len(self.read) >= 100_000:
                self.read.clear()           # memory stays bounded
            self.read[key] = value
        return default if value is None else value

    def __contains__(self, key) -> bool:
        return self.get(key) is not None

    def __setitem__(self, key, value) -> None:
        self.changed[key] = value

    def pop(self, key, default=None):
        value = self.get(key)
        self.changed[key] = None
        return default if value is None else value


class Members(_Overlay):
    """key fingerprint -> tuple of accounts."""

    def _read(self, key):
        row = self.db.execute("SELECT accounts FROM members WHERE fingerprint = ?",
                              (key,)).fetchone()
        return tuple(row[0].split(",")) if row else None


class Refs(_Overlay):
    """(account, ref) -> the order's ticker ('' when none)."""

    def _read(self, key):
        row = self.db.execute("SELECT ticker FROM refs WHERE account = ? AND ref = ?",
                              key).fetchone()
        return row[0] if row else None


def _meta(db) -> dict:
    return dict(db.execute("SELECT name, value FROM meta"))


def load(path: str | os.PathLike, arch) -> tuple[Snapshot | None, str]:
    """The auditor's state for the copy at *path* whose archive is *arch*,
    checked against the volumes; or None and why it cannot be used (one
    line).  O(volumes) stats, one volume hashed."""
    f = state_path(path)
    if not f.exists():
        return None, "no audit of this copy has passed here yet"
    try:
        db = sqlite3.connect(f"file:{f}?mode=ro", uri=True) if not os.access(f.parent, os.W_OK) \
            else sqlite3.connect(f, isolation_level=None)
        meta = _meta(db)
        if meta.get("version") != VERSION:
            db.close()
            return None, f"the auditor's state in {f} is of another version"
        hs = json.loads(meta["head"])
        frontier = merkle.Frontier.from_text(hs["frontier"])
        if frontier.size != hs["size"] or frontier.root().hex() != hs["root"] \
                or hs["seal"] != hs["size"] + 1 or int(meta["seq"]) != hs["seal"]:
            raise ValueError("its signed tree head is not the tree it keeps")
        snap = Snapshot(db, f, seq=int(meta["seq"]), hash=meta["hash"], time=meta["time"],
                        pit=meta["pit"], notary=meta["notary"], operator=meta["operator"],
                        head=(hs["seal"], hs["size"], hs["root"], hs["time"], frontier),
                        remembered=tuple(json.loads(meta["remembered"])),
                        flags=json.loads(meta["flags"]), totals=json.loads(meta["totals"]),
                        kinds=json.loads(meta["kinds"]))
        for name, record, span, body, own, lines, marks, covered in db.execute(
                "SELECT name, record, span, body, own, lines, marks, covered FROM filters"):
            snap.filters[name] = KeptFilter(own, json.loads(lines),
                                            [tuple(m) for m in json.loads(marks)], covered,
                                            (record, span, body) if record is not None else None)
    except (sqlite3.Error, KeyError, ValueError, TypeError) as e:
        return None, f"the auditor's state in {f} does not read ({type(e).__name__}: {e})"
    why = _volumes_changed(snap, arch)
    if why:
        snap.close()
        return None, why
    return snap, ""


def _digest(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        if left:
            return "short"
    return h.hexdigest()


def _volumes_changed(snap: Snapshot, arch) -> str:
    """Why the verified volumes are not as verified ("" when they are)."""
    try:
        now = {v.name: v for v in arch.volumes()}
    except Exception as e:                  # noqa: BLE001 - the full audit says what is wrong
        return f"the archive's index does not read ({e})"
    for name, first, last, size, digest, ino, mtime in snap.db.execute(
            "SELECT name, first, last, bytes, sha256, inode, mtime_ns FROM volumes ORDER BY name"):
        v = now.get(name)
        holds_head = first <= snap.seq <= last
        if v is None:
            return f"{name} (records {first}-{last}, verified) is no longer in the index"
        if v.first != first or (v.last, v.bytes) < (last, size) \
                or (not holds_head and (v.last, v.bytes) != (last, size)):
            return (f"the index gives {name} as records {v.first}-{v.last}, {v.bytes} bytes; "
                    f"verified: records {first}-{last}, {size} bytes")
        p = arch.dir / name
        try:
            st = p.stat()
        except OSError:
            return f"{name} (records {first}-{last}, verified) cannot be read"
        if not holds_head and (st.st_ino, st.st_mtime_ns, st.st_size) == (ino, mtime, size):
            continue                        # untouched since it was verified
        if _digest(p, size) != digest:
            return (f"{name} changed since it was verified: its first {size} bytes "
                    f"(records {first}-{last}) are not the bytes the last audit checked")
        if not holds_head and st.st_size == size:
            snap.moved[name] = (st.st_ino, st.st_mtime_ns)   # kept by save: hashed once
    return ""


def save(path: str | os.PathLike, audit, res, snap: Snapshot | None) -> Path:
    """Keep the state of an audit that passed (*audit*: pit.audit's
    ``_Audit``, *res* its result): written anew after a full audit (a new
    file, renamed into place), updated in one transaction after an
    incremental one (*snap*).  Raises OSError or sqlite3.Error."""
    f = state_path(path)
    seal, size, root, when, frontier = res.newest_head
    if seal != res.records:
        raise ValueError("the audit did not end at a seal")
    from pit import replica
    try:
        remembered = replica.load_state(path)
        remembered = (remembered.size, remembered.root)
    except ValueError:
        remembered = (0, "")
    meta = {"version": VERSION, "seq": str(res.records), "hash": res.head,
            "time": res.last_time, "pit": res.pit, "notary": audit.notary,
            "operator": audit.operator,
            "head": json.dumps({"seal": seal, "size": size, "root": root, "time": when,
                                "frontier": frontier.to_text()}),
            "remembered": json.dumps(remembered),
            "flags": json.dumps({"bound": audit.bound, "cancel_tickers": audit.cancel_tickers}),
            "totals": json.dumps({k: getattr(res, k) for k in
                                  ("seals", "heads", "signatures", "reports", "checkpoints",
                                   "first_time")}),
            "kinds": json.dumps(res.kinds)}
    if snap is None:
        f.parent.mkdir(exist_ok=True)
        tmp = f.with_name(f.name + ".new")
        for stale in (tmp, tmp.with_name(tmp.name + "-journal")):
            if stale.exists():
                stale.unlink()
        db = sqlite3.connect(tmp, isolation_level=None)
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.executescript(_SCHEMA)
    else:
        db = snap.db
    try:
        db.execute("BEGIN")
        _write(db, audit, meta, snap is None)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if snap is None:
            db.close()
        raise
    if snap is None:
        db.close()
        os.replace(tmp, f)
    return f


def _write(db, audit, meta: dict, whole: bool) -> None:
    members, refs = audit.members, audit.refs
    if whole:
        db.executemany("INSERT INTO members VALUES (?, ?)",
                       ((k, ",".join(v)) for k, v in members.items()))
        db.executemany("INSERT INTO refs VALUES (?, ?, ?)",
                       ((a, r, t) for (a, r), t in refs.items()))
    else:
        for k, v in members.changed.items():
            if v is None:
                db.execute("DELETE FROM members WHERE fingerprint = ?", (k,))
            else:
                db.execute("INSERT OR REPLACE INTO members VALUES (?, ?)", (k, ",".join(v)))
        db.executemany("INSERT OR REPLACE INTO refs VALUES (?, ?, ?)",
                       ((a, r, t) for (a, r), t in refs.changed.items() if t is not None))
    db.executemany("INSERT INTO certificates VALUES (?, ?, ?)", audit.key_log)
    db.executemany("INSERT OR IGNORE INTO keyids VALUES (?, ?)",
                   ((k, fpr) for _, fpr, block in audit.key_log for k in _keyids(block)))
    db.executemany("INSERT OR REPLACE INTO operator VALUES (?, ?, ?)", audit.operator_log)
    for name, flt in audit.filters.items():
        cp = audit.verified_checkpoints.get(name)
        if cp is None and audit.snap is not None and name in audit.snap.filters:
            cp = audit.snap.filters[name].checkpoint
        db.execute("INSERT OR REPLACE INTO filters VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (name, *(cp or (None, None, None)), flt.checkpoint_body(),
                    json.dumps(flt.lines), json.dumps(audit.marks[name]),
                    audit.covered.get(name, 0)))
    if audit.snap is not None:
        # a volume the load hashed again (a copy moved or restored: new
        # inodes) and found as verified is witnessed by its new stat
        db.executemany("UPDATE volumes SET inode = ?, mtime_ns = ? WHERE name = ?",
                       ((ino, mtime, name) for name, (ino, mtime) in audit.snap.moved.items()
                        if name not in audit.reader.digests))
    for name, (first, last, size, digest) in audit.reader.digests.items():
        try:
            st = (audit.arch.dir / name).stat()
        except OSError:
            continue
        # the stat shortcut holds only for bytes that are all the file has
        ino, mtime = (st.st_ino, st.st_mtime_ns) if st.st_size == size else (0, 0)
        db.execute("INSERT OR REPLACE INTO volumes VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (name, first, last, size, digest, ino, mtime))
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())


def _keyids(block: str) -> list[str]:
    from pit import openpgp
    try:
        return [k.keyid for k in openpgp.parse_keys(openpgp.dearmor(block.encode("ascii", "replace"))[1])]
    except Exception:                        # noqa: BLE001 - a block gpg refused: no key ids
        return []
