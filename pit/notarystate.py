"""The notary's state, kept in SQLite beside the archive, so that a notary
starts in the same time and memory on ten records or ten million.

The notary's judgement of a message depends on every record before it:
which ``(account, ref)`` pairs were used (replay protection) and the
ticker of each order (a cancel names it), who is a member and with which
accounts, the registry (currencies, fees, instruments), where each
filter's newest report and checkpoint stand, the records of each member
in the rate limit's window, the digests of the latest records and
rejections (crash recovery and redelivered mail), the Merkle tree's
frontier, the records not yet sealed, and the head (number, hash, time).
That is the fold of the archive by one rule, :meth:`NotaryState.remember`,
one record at a time.  This module is that rule and its store.

The store is ``archives/notary-state.sqlite`` (SQLite from the standard
library, write-ahead log).  It is bound to one record, the one it is
exact at: its number and hash (``seq``, ``head``), and to the pit (name,
notary and operator keys, the genesis record's hash, the rate limit's
settings).  The archive is the truth and the store a snapshot of it:

* the notary changes the store in one SQLite transaction per turn of its
  lock and commits it after the archive's append is on disk; killed in
  between, the store is behind the archive, and the next start folds the
  records after it (:meth:`NotaryState.open` leaves that to the caller,
  who reads the archive);
* a store that names a record the archive does not hold (another pit's,
  one ahead of a repaired or replaced archive), that is not a readable
  store of this schema, or whose content does not read back, is not
  used: :func:`open_state` records a one-line reason in
  ``archives/notary-state.log``, keeps the file aside as
  ``notary-state.sqlite.ignored`` and the caller rebuilds from record 1.

Memory holds only what is bounded by the pit's configuration, not by its
history: the registry, the filters' positions, the unsealed records (at
most ``seal_every``), the frontier (O(log n)).  The references, members,
rate windows and recent digests are tables, looked up by index.  The
audit (pit.audit) checks a store against a full replay: :func:`check`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

from pit import merkle
from pit.archive import CRASH_ENV, ArchiveError, record_hash
from pit.kinds.rules import genesis_rules

__all__ = ["NotaryState", "StateError", "open_state", "check", "stamp_us", "STATE_NAME", "RECENT"]

STATE_NAME = "notary-state.sqlite"
LOG_NAME = "notary-state.log"
RECENT = 20_000       # digests remembered for crash recovery: more than any batch
_FLUSH = 10_000       # rows buffered while folding many records, then written at once
_CACHE_KIB = 32 * 1024    # SQLite's page cache: a constant, whatever the store's size

_SCHEMA_VERSION = "2"
_SCHEMA_ACCOUNTS = """
CREATE TABLE accounts (account TEXT NOT NULL, fingerprint TEXT NOT NULL,
                       PRIMARY KEY (account, fingerprint)) WITHOUT ROWID;
CREATE INDEX accounts_fingerprint ON accounts (fingerprint);
"""
_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE refs (account TEXT NOT NULL, ref TEXT NOT NULL, seq INTEGER NOT NULL,
                   ticker TEXT NOT NULL, PRIMARY KEY (account, ref)) WITHOUT ROWID;
CREATE TABLE members (fingerprint TEXT PRIMARY KEY, accounts TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE recent (n INTEGER PRIMARY KEY, digest TEXT NOT NULL);
CREATE INDEX recent_digest ON recent (digest);
CREATE TABLE sent (signer TEXT NOT NULL, us INTEGER NOT NULL);
CREATE INDEX sent_signer ON sent (signer, us);
CREATE TABLE registry (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, request TEXT NOT NULL);
CREATE TABLE filters (name TEXT NOT NULL, kind TEXT NOT NULL, first INTEGER NOT NULL,
                      last INTEGER NOT NULL, seq INTEGER NOT NULL,
                      PRIMARY KEY (name, kind)) WITHOUT ROWID;
CREATE TABLE unsealed (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL);
""" + _SCHEMA_ACCOUNTS
_TABLES = ("meta", "refs", "members", "recent", "sent", "registry", "filters", "unsealed",
           "accounts")
ZERO = "0" * 64


def _schema_objects(schema: str = _SCHEMA) -> list[tuple]:
    """What a store of this schema holds in sqlite_master: its tables and
    indexes, and nothing else (no trigger or view that would act on the
    notary's writes)."""
    if schema not in _SCHEMA_OBJECTS:
        db = sqlite3.connect(":memory:")
        db.executescript(schema)
        _SCHEMA_OBJECTS[schema] = sorted(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
        db.close()
    return _SCHEMA_OBJECTS[schema]


_SCHEMA_OBJECTS: dict[str, list[tuple]] = {}
# Schema 1 is schema 2 without the accounts table (account -> the member keys
# that own it), which the rules 2 refusal of a transfer to an account that
# does not exist looks up; a store of schema 1 gets it from its members
# table when opened (pit-book.md "### Tickers"), not by a fold from record 1.
_SCHEMA_1 = _SCHEMA.replace(_SCHEMA_ACCOUNTS, "")
# A member record replaces its key's rows of the accounts table, found by the
# fingerprint's index (without it, a scan of every member's accounts: 0.19 s
# a member record at 1,000,000 members); a schema-2 store made before the
# index gets it when opened.
_ACCOUNTS_INDEX = "CREATE INDEX accounts_fingerprint ON accounts (fingerprint);\n"
_SCHEMA_2_UNINDEXED = _SCHEMA.replace(_ACCOUNTS_INDEX, "")


class StateError(Exception):
    """The store cannot be used; ``str()`` is the one-line reason."""


def stamp_us(iso: str) -> int:
    """Microseconds since the epoch of a stamp's time (the notary's
    ``stamp_time`` text).  Read by position (datetime checks the ranges),
    not with strptime, which cost ten times as much."""
    if not iso:
        return 0
    if iso[4] != "-" or iso[7] != "-" or iso[10] != "T" or iso[13] != ":" or iso[16] != ":":
        raise ValueError(f"time {iso[:19]!r} does not match format '%Y-%m-%dT%H:%M:%S'")
    dt = datetime(int(iso[0:4]), int(iso[5:7]), int(iso[8:10]), int(iso[11:13]), int(iso[14:16]),
                  int(iso[17:19]), tzinfo=timezone.utc)
    frac = iso[20:-1] if len(iso) > 21 else "0"
    return int(dt.timestamp()) * 1_000_000 + int(frac.ljust(6, "0")[:6])


def _instruction(kind: str, text: str):
    from pit import kinds
    return kinds.parse(kind, text)


class Refs:
    """``(account, ref) -> (seq, ticker)`` of every record so far (ticker
    ``''`` when the record has none); read from the store on each look-up."""

    def __init__(self, state: "NotaryState"):
        self._state = state

    def get(self, key, default=None):
        new = self._state._pending_refs.get(tuple(key))     # folded, not yet written
        if new is not None:
            return new
        row = self._state.db.execute("SELECT seq, ticker FROM refs WHERE account = ? AND ref = ?",
                                     key).fetchone()
        return default if row is None else (row[0], row[1])

    def __contains__(self, key) -> bool:
        return self.get(key) is not None

    def __getitem__(self, key):
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __len__(self) -> int:
        self._state.flush()
        return self._state.db.execute("SELECT COUNT(*) FROM refs").fetchone()[0]


class Members:
    """``fingerprint -> (account, ...)`` of the current members (the
    operator's key from pit.conf included); read from the store."""

    def __init__(self, state: "NotaryState"):
        self._state = state

    def get(self, fpr, default=None):
        row = self._state.db.execute("SELECT accounts FROM members WHERE fingerprint = ?",
                                     (fpr,)).fetchone()
        return default if row is None else tuple(row[0].split(","))

    def __contains__(self, fpr) -> bool:
        return self.get(fpr) is not None

    def __getitem__(self, fpr):
        found = self.get(fpr)
        if found is None:
            raise KeyError(fpr)
        return found

    def items(self):
        """Every member, by fingerprint: O(members), read in pages."""
        cur = self._state.db.execute("SELECT fingerprint, accounts FROM members ORDER BY fingerprint")
        for fpr, accounts in cur:
            yield fpr, tuple(accounts.split(","))

    def __iter__(self):
        return (fpr for fpr, _ in self.items())

    def __len__(self) -> int:
        return self._state.db.execute("SELECT COUNT(*) FROM members").fetchone()[0]


class Recent:
    """The digests of the latest :data:`RECENT` records and rejections."""

    def __init__(self, state: "NotaryState"):
        self._state = state

    def __contains__(self, digest) -> bool:
        if digest in self._state._pending_recent_set:
            return True
        return self._state.db.execute("SELECT 1 FROM recent WHERE digest = ? LIMIT 1",
                                      (digest,)).fetchone() is not None


class Unsealed:
    """The records since the newest seal, ``(seq, hash)`` in order: what
    the next seal lists.  Its length and first entry are kept; the rows
    are read from the store when a seal is made."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        self._pending: list[tuple[int, str]] = []
        self.n, self.first = 0, None

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0

    def __getitem__(self, i: int) -> tuple[int, str]:
        if i == 0 and self.first is not None:
            return self.first
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        self.flush()
        row = self._db.execute("SELECT seq, hash FROM unsealed ORDER BY seq LIMIT 1 OFFSET ?",
                                     (i,)).fetchone()
        return int(row[0]), row[1]

    def __iter__(self):
        self.flush()
        for seq, h in self._db.execute("SELECT seq, hash FROM unsealed ORDER BY seq").fetchall():
            yield int(seq), h

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def append(self, entry: tuple[int, str]) -> None:
        self._pending.append(entry)
        if self.first is None:
            self.first = entry
        self.n += 1
        if len(self._pending) >= _FLUSH:
            self.flush()

    def clear(self) -> None:
        self._pending = []
        if self.n:
            self._db.execute("DELETE FROM unsealed")
        self.n, self.first = 0, None

    def flush(self) -> None:
        if self._pending:
            self._db.executemany("INSERT INTO unsealed VALUES (?, ?)", self._pending)
            self._pending = []


class NotaryState:
    """The notary's state at record ``seq`` (see the module text).

    Scalars and what is bounded by the pit's configuration are attributes;
    ``refs``, ``members`` and ``recent`` are read from the store.  Changes
    go into the open transaction (:meth:`begin`) and last once
    :meth:`commit` returns."""

    def __init__(self, path: Path, db: sqlite3.Connection, binding: dict[str, str]):
        self.path, self.db, self.binding = path, db, binding
        self.inode = _inode(path)
        self.rate_limited = binding.get("rate", "0 0").split(" ")[0] == "1"
        self.rate_interval = int(binding.get("rate", "0 0").split(" ")[1])
        self._pending_refs: dict[tuple[str, str], tuple[int, str]] = {}
        self._pending_recent: list[tuple] = []
        self._pending_recent_set: set[str] = set()
        self._pending_sent: list[tuple] = []
        self._in_tx = False
        self._reset()

    # made on each use, so that nothing the state holds refers back to it
    # (its store closes as soon as it is dropped, with no cycle to collect)
    refs = property(lambda self: Refs(self))
    members = property(lambda self: Members(self))
    recent = property(lambda self: Recent(self))

    def account_exists(self, account: str) -> bool:
        """Does a current member's key own the (plain) *account*?  O(log members)."""
        return self.db.execute("SELECT 1 FROM accounts WHERE account = ? LIMIT 1",
                               (account,)).fetchone() is not None

    def _reset(self) -> None:
        self.seq, self.head, self.last_us = 0, ZERO, 0
        self.tree = merkle.Frontier()
        self.unsealed = Unsealed(self.db)
        self.registry_instruments: dict = {}
        self.currencies: dict = {}
        self.fees = None
        self.rules = 1                  # the pit's rules (pit.kinds.rules): 1 until a Rules record
        self.filter_reports: dict[str, tuple[int, int, int]] = {}
        self.filter_checkpoints: dict[str, tuple[int, int]] = {}
        self.rejects_read = 0
        self.recent_n = 0
        self.members_version = 0
        self.generation = 0
        self.genesis = ""

    # -- opening ---------------------------------------------------------------------
    @staticmethod
    def _connect(path) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        return db

    @classmethod
    def create(cls, path: Path, binding: dict[str, str], operator: str | None,
               wal: bool = True) -> "NotaryState":
        """A new, empty store at *path* (replacing any), at record 0.
        ``wal=False`` for one built whole and then renamed into place (its
        content is all in the one file once committed)."""
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(f"{path}{suffix}")
            except FileNotFoundError:
                pass
        db = cls._connect(path)
        if wal:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        else:
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = FULL")
        db.executescript(_SCHEMA)
        st = cls(path, db, binding)
        st.begin()
        db.executemany("INSERT INTO meta VALUES (?, ?)",
                       [("schema", _SCHEMA_VERSION)] + sorted(binding.items()))
        if operator:
            db.execute("INSERT INTO members VALUES (?, 'operator')", (operator,))
            db.execute("INSERT INTO accounts VALUES ('operator', ?)", (operator,))
        st.commit()
        return st

    @classmethod
    def open(cls, path: Path, binding: dict[str, str], readonly: bool = False) -> "NotaryState":
        """The store at *path*, read back; raises :class:`StateError` when it
        is missing, not a store of this schema, made for another pit or
        other settings, or its content does not read back."""
        if not Path(path).exists():
            raise StateError("no snapshot yet")
        try:
            db = cls._connect(path)
            meta = dict(db.execute("SELECT name, value FROM meta"))
            objects = sorted(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
        except sqlite3.Error as e:
            raise StateError(f"not a readable snapshot: {e}") from None
        if objects == _schema_objects(_SCHEMA_1) and meta.get("schema") == "1":
            try:
                _upgrade_1(db)
            except sqlite3.Error as e:
                db.close()
                raise StateError(f"schema 1, not upgraded: {e}") from None
            objects, meta["schema"] = _schema_objects(), _SCHEMA_VERSION
        elif objects == _schema_objects(_SCHEMA_2_UNINDEXED):
            try:
                if not readonly:               # a reader reads it as it is
                    db.execute(_ACCOUNTS_INDEX)
            except sqlite3.Error as e:
                db.close()
                raise StateError(f"its accounts table not indexed: {e}") from None
            objects = _schema_objects()
        if objects != _schema_objects():
            db.close()
            extra = sorted(set(objects) - set(_schema_objects())) or sorted(
                set(_schema_objects()) - set(objects))
            raise StateError(f"its tables are not the ones this notary makes "
                             f"({extra[0][0]} {extra[0][1]!r} differs)")
        if meta.get("schema") != _SCHEMA_VERSION:
            db.close()
            raise StateError(f"schema {meta.get('schema')!r}, this notary keeps {_SCHEMA_VERSION}")
        for k, v in sorted(binding.items()):
            if meta.get(k) != v:
                db.close()
                raise StateError(f"made for {k} {meta.get(k)!r}, this pit's is {v!r}")
        try:
            if not readonly and db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")       # one built whole (create(wal=False))
            db.execute("PRAGMA synchronous = NORMAL")
            st = cls(path, db, binding)
            st.reload()
        except (sqlite3.Error, ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            db.close()
            raise StateError(f"its content does not read back: {type(e).__name__}: {e}") from None
        return st

    def reload(self) -> None:
        """Read the scalars and the bounded parts back from the store (after
        another notary's commit, or a rollback)."""
        self._pending_refs, self._pending_recent, self._pending_sent = {}, [], []
        self._pending_recent_set = set()
        meta = dict(self.db.execute("SELECT name, value FROM meta"))
        self._reset()
        self.seq, self.head = int(meta.get("seq", "0")), meta.get("head", ZERO)
        self.last_us = int(meta.get("last_us", "0"))
        self.tree = merkle.Frontier.from_text(meta["tree"]) if "tree" in meta else merkle.Frontier()
        if self.tree.size != self.seq:
            raise ValueError(f"its frontier has {self.tree.size} records, its head is record {self.seq}")
        if len(self.head) != 64:
            raise ValueError(f"its head {self.head[:70]!r} is not a record hash")
        self.rejects_read = int(meta.get("rejects_read", "0"))
        self.recent_n = int(meta.get("recent_n", "0"))
        self.members_version = int(meta.get("members_version", "0"))
        self.generation = int(meta.get("generation", "0"))
        self.genesis = meta.get("genesis", "")
        if int(meta.get("unsealed_n", "0")):
            first = self.db.execute("SELECT seq, hash FROM unsealed ORDER BY seq LIMIT 1").fetchone()
            self.unsealed.n, self.unsealed.first = int(meta["unsealed_n"]), (int(first[0]), first[1])
        for seq, kind, text in self.db.execute("SELECT seq, kind, request FROM registry ORDER BY seq"):
            self._registry(kind, text)
        for name, kind, first, last, seq in self.db.execute("SELECT * FROM filters"):
            if kind == "report":
                self.filter_reports[name] = (int(first), int(last), int(seq))
            else:
                self.filter_checkpoints[name] = (int(last), int(seq))

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:
            pass

    def __del__(self) -> None:
        if hasattr(self, "db"):       # at once, as pit.keystore.KeyStore's (why there)
            self.close()

    # -- transactions -----------------------------------------------------------------
    def begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            self._at_begin = self._mark()

    def _mark(self) -> tuple:
        return self.seq, self.recent_n, self.rejects_read, self.last_us

    def replaced(self) -> bool:
        """Is the file at our path no longer the one we opened (another
        notary rebuilt it, or set it aside)?"""
        return _inode(self.path) != self.inode

    def changed_elsewhere(self) -> bool:
        """Has another notary on the pit committed since we last read or wrote?"""
        row = self.db.execute("SELECT value FROM meta WHERE name = 'generation'").fetchone()
        return int(row[0] if row else 0) != self.generation

    def commit(self) -> None:
        """Write what changed and the head, as one transaction."""
        if self._in_tx and self._mark() == self._at_begin:
            self.db.execute("COMMIT")           # nothing folded: nothing to write
            self._in_tx = False
            return
        self.flush()
        if self.recent_n > RECENT:
            self.db.execute("DELETE FROM recent WHERE n <= ?", (self.recent_n - RECENT,))
        if self.rate_limited:
            self.db.execute("DELETE FROM sent WHERE us <= ?", (self.last_us - self.rate_interval,))
        self.generation += 1
        self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
            ("seq", str(self.seq)), ("head", self.head), ("last_us", str(self.last_us)),
            ("tree", self.tree.to_text()), ("rejects_read", str(self.rejects_read)),
            ("recent_n", str(self.recent_n)), ("members_version", str(self.members_version)),
            ("generation", str(self.generation)), ("genesis", self.genesis),
            ("unsealed_n", str(len(self.unsealed)))])
        if os.environ.get(CRASH_ENV) == "notary-state-commit":
            import signal
            os.kill(os.getpid(), signal.SIGKILL)
        if self._in_tx:
            self.db.execute("COMMIT")
            self._in_tx = False

    def rollback(self) -> None:
        """Forget what the open transaction changed."""
        if self._in_tx:
            self._in_tx = False
            self.db.execute("ROLLBACK")
        self.reload()

    def flush(self) -> None:
        """Write the rows buffered by :meth:`remember` (before any look-up)."""
        self.unsealed.flush()
        if self._pending_refs:
            self.db.executemany("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?)",
                                [k + v for k, v in self._pending_refs.items()])
            self._pending_refs = {}
        if self._pending_recent:
            self.db.executemany("INSERT OR REPLACE INTO recent VALUES (?, ?)", self._pending_recent)
            self._pending_recent, self._pending_recent_set = [], set()
        if self._pending_sent:
            self.db.executemany("INSERT INTO sent VALUES (?, ?)", self._pending_sent)
            self._pending_sent = []

    # -- the rule ------------------------------------------------------------------------
    def add_recent(self, digest: str) -> None:
        self.recent_n += 1
        self._pending_recent.append((self.recent_n, digest))
        self._pending_recent_set.add(digest)
        if len(self._pending_recent) >= _FLUSH:
            self.flush()

    def sent_since(self, signer: str, since_us: int) -> int:
        """How many records *signer* has after *since_us* (the rate limit)."""
        if self._pending_sent:
            self.db.executemany("INSERT INTO sent VALUES (?, ?)", self._pending_sent)
            self._pending_sent = []
        return self.db.execute("SELECT COUNT(*) FROM sent WHERE signer = ? AND us > ?",
                               (signer, since_us)).fetchone()[0]

    def remember(self, seq: int, st: dict, h: str | None, us: int | None = None) -> None:
        """Fold record *seq* (its stamp *st*, lower-case names, and record
        hash *h*; ``None`` when the caller's saved frontier covers it) into
        the state.  *us*: its time, when the caller has it as a number.
        O(1) amortized."""
        self.seq, self.head = seq, h
        if seq == 1:
            self.genesis = h or ""
        if h is not None:
            self.tree.append(merkle.leaf_hash(bytes.fromhex(h)))
        if us is None:
            us = stamp_us(st.get("x-pit-time", ""))
        self.last_us = max(self.last_us, us)
        kind = st.get("x-pit-kind", "")
        acct, ref = st.get("x-pit-account", ""), st.get("x-pit-ref", "")
        if ref:
            self._pending_refs[acct, ref] = (seq, st.get("x-pit-ticker", ""))
        self.add_recent(st.get("x-pit-digest", ""))
        signer = st.get("x-pit-signer")
        if self.rate_limited and signer and kind not in ("seal", "genesis"):
            # the rate limit counts records, so it holds across runs and restarts
            self._pending_sent.append((signer, us))
        if kind == "seal":
            self.unsealed.clear()
        elif h is not None:
            self.unsealed.append((seq, h))
        if kind in ("member", "currency", "instrument", "fees", "rules"):
            self._operator_record(seq, kind, st.get("x-pit-request", ""))
        elif kind == "genesis" and genesis_rules(st.get("x-pit-request", "")) > 1:
            self._operator_record(seq, "rules", str(genesis_rules(st["x-pit-request"])))
        elif kind in ("report", "checkpoint"):
            name, _, span = st.get("x-pit-request", "").rpartition(" ")
            first, _, last = span.partition("-")
            if kind == "report" and first.isdigit() and last.isdigit():
                self.filter_reports[name] = (int(first), int(last), seq)
                self.db.execute("INSERT OR REPLACE INTO filters VALUES (?, 'report', ?, ?, ?)",
                                (name, int(first), int(last), seq))
            elif kind == "checkpoint" and span.isdigit():
                self.filter_checkpoints[name] = (int(span), seq)
                self.db.execute("INSERT OR REPLACE INTO filters VALUES (?, 'checkpoint', 0, ?, ?)",
                                (name, int(span), seq))
        if len(self._pending_refs) >= _FLUSH or len(self._pending_sent) >= _FLUSH:
            self.flush()

    def _operator_record(self, seq: int, kind: str, text: str) -> None:
        if kind == "member":
            ins = _instruction(kind, text)
            self.members_version += 1
            self.db.execute("DELETE FROM accounts WHERE fingerprint = ?", (ins.fingerprint,))
            if ins.action == "add":
                self.db.execute("INSERT OR REPLACE INTO members VALUES (?, ?)",
                                (ins.fingerprint, ",".join(ins.accounts)))
                self.db.executemany("INSERT OR IGNORE INTO accounts VALUES (?, ?)",
                                    [(a, ins.fingerprint) for a in ins.accounts])
            else:
                self.db.execute("DELETE FROM members WHERE fingerprint = ?", (ins.fingerprint,))
            return
        self._registry(kind, text)
        self.db.execute("INSERT OR REPLACE INTO registry VALUES (?, ?, ?)", (seq, kind, text))

    def _registry(self, kind: str, text: str) -> None:
        ins = _instruction(kind, text)
        if kind == "currency":
            self.currencies[ins.code] = ins.currency()
        elif kind == "fees":
            self.fees = ins
        elif kind == "instrument" and ins.currency in self.currencies:
            self.registry_instruments[ins.ticker] = ins.instrument(self.currencies, self.fees)
        elif kind == "rules":
            self.rules = max(self.rules, ins.version)

    # -- content, for comparing two stores ---------------------------------------------
    def content(self) -> dict[str, list]:
        """Every table's rows in a fixed order, and the head's meta, for
        comparing this store with another at the same record.  The rate
        windows hold only the rows the limit can still count, and the
        recent digests as a set (their order depends on how reject entries
        and records interleaved)."""
        self.flush()
        q = self.db.execute
        out = {
            "head": [(self.seq, self.head, self.tree.to_text(), self.genesis)],
            "refs": q("SELECT account, ref, seq, ticker FROM refs ORDER BY account, ref").fetchall(),
            "members": q("SELECT fingerprint, accounts FROM members ORDER BY fingerprint").fetchall(),
            "accounts": q("SELECT account, fingerprint FROM accounts ORDER BY 1, 2").fetchall(),
            "registry": q("SELECT seq, kind, request FROM registry ORDER BY seq").fetchall(),
            "filters": q("SELECT * FROM filters ORDER BY name, kind").fetchall(),
            "unsealed": q("SELECT seq, hash FROM unsealed ORDER BY seq").fetchall(),
        }
        if self.rate_limited:
            out["sent"] = q("SELECT signer, us FROM sent WHERE us > ? ORDER BY signer, us",
                            (self.last_us - self.rate_interval,)).fetchall()
        return out


def _upgrade_1(db: sqlite3.Connection) -> None:
    """A store of schema 1 made schema 2, in one transaction: its accounts
    table from its members table.  O(members)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA_ACCOUNTS.strip().rstrip(";").split(";"):
            db.execute(statement)
        rows = db.execute("SELECT fingerprint, accounts FROM members")
        db.executemany("INSERT OR IGNORE INTO accounts VALUES (?, ?)",
                       ((a, f) for f, accounts in rows for a in accounts.split(",")))
        db.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (_SCHEMA_VERSION,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _inode(path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def binding_of(pit) -> dict[str, str]:
    """What a store is made for: the pit (name, notary and operator keys)
    and the rate limit's settings (the rule records rate windows only when
    the limit is on)."""
    limit = pit.getint("rate_limit")
    return {"pit": pit.name, "notary": pit.notary or "", "operator": pit.operator or "",
            "rate": f"{1 if limit else 0} {pit.getint('rate_interval') * 1_000_000}"}


def _record_hash_at(archive, seq: int) -> str | None:
    """The record hash of record *seq*, read alone (the index finds its
    volume, a walk from the nearer end of it finds the entry)."""
    from pit import mbox
    for s, entry, _ in archive.read_entries(seq, seq):
        msgs = list(mbox.iter_messages(entry)) if s == seq else []
        return record_hash(msgs[0]) if len(msgs) == 1 else None
    return None


def filter_rows(archive, name: str) -> tuple[int, tuple[int, int] | None,
                                              tuple[int, int, int] | None] | None:
    """What the notary's store beside *archive* says of filter *name*, for
    a reader that would otherwise search the archive for it (``pit
    replay``, ``pit.ops.filter_position``): ``(seq, checkpoint, report)``,
    the store being exact at record *seq* of this archive; *checkpoint*
    ``(covered, record)`` of the filter's newest checkpoint and *report*
    ``(first, last, record)`` of its newest report up to there, each None
    if it has none.  None when there is no store, or it cannot be read,
    or it is not bound to a record of this archive (its record *seq* and
    the genesis record are read and hashed, as :func:`open_state` checks):
    the reader then searches.  Read only, in one read transaction; nothing
    is changed, set aside or recorded (that is the notary's, when it
    starts).  O(1): two queries and two records read."""
    path = archive.dir / STATE_NAME
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        db.execute("BEGIN")                       # meta and rows of one commit
        meta = dict(db.execute("SELECT name, value FROM meta"))
        rows = db.execute("SELECT kind, first, last, seq FROM filters WHERE name = ?",
                          (name,)).fetchall()
        db.execute("COMMIT")
        if meta.get("schema") not in ("1", _SCHEMA_VERSION):   # (the same filters table)
            return None
        seq, head, genesis = int(meta["seq"]), meta["head"], meta["genesis"]
        if not 0 < seq <= archive.last_seq() or _record_hash_at(archive, seq) != head \
                or _record_hash_at(archive, 1) != genesis:
            return None
        checkpoint = report = None
        for kind, first, last, rec in rows:
            if kind == "checkpoint":
                checkpoint = (int(last), int(rec))
            elif kind == "report":
                report = (int(first), int(last), int(rec))
        return seq, checkpoint, report
    except (sqlite3.Error, ArchiveError, KeyError, ValueError, TypeError):
        return None                            # (the archive is judged by its own readers)
    finally:
        db.close()


def open_state(pit, archive) -> tuple[NotaryState | None, str]:
    """The pit's store, checked against *archive*: ``(state, "")`` when it
    is bound to a record the archive holds (the caller folds the records
    after ``state.seq``), else ``(None, reason)``, the reason recorded and
    the file kept aside (the caller rebuilds)."""
    path = archive.dir / STATE_NAME
    binding = binding_of(pit)
    try:
        st = NotaryState.open(path, binding)
    except StateError as e:
        if path.exists():
            _ignore(archive, path, str(e))
        return None, str(e)
    last = archive.last_seq()
    why = ""
    try:
        if st.seq > last:
            why = f"it is at record {st.seq}, the archive ends at record {last}"
        elif st.seq and _record_hash_at(archive, st.seq) != st.head:
            why = f"record {st.seq} of the archive is not the one it was made at (hash {st.head[:16]})"
        elif st.seq and st.genesis != _record_hash_at(archive, 1):
            why = "it was made on another archive (genesis hash differs)"
    except Exception as e:                   # the archive is read by its own checks elsewhere
        why = f"the archive could not be read at its record: {type(e).__name__}: {e}"
    if why:
        st.close()
        _ignore(archive, path, why)
        return None, why
    return st, ""


def record(archive, why: str) -> None:
    """Record, one line in ``archives/notary-state.log`` and on stderr,
    why the store was not used."""
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} ignored {STATE_NAME}: " \
           f"{' '.join(why.split())}; rebuilt from the archive\n"
    try:
        with open(archive.dir / LOG_NAME, "a", encoding="utf-8") as f:
            f.write(line)
    except OSError:
        pass
    import sys
    print(f"pit-notary: {line.rstrip()}", file=sys.stderr)


def _ignore(archive, path: Path, why: str) -> None:
    record(archive, why)
    try:
        os.replace(path, f"{path}.ignored")
        for suffix in ("-wal", "-shm", "-journal"):
            try:
                os.unlink(f"{path}{suffix}")
            except FileNotFoundError:
                pass
    except OSError:
        pass


_COMMIT_EVERY = 100_000   # a long fold commits on the way (each commit is exact at its record)


def fold(state: NotaryState, archive, from_seq: int, to_seq: int | None = None) -> None:
    """Fold the archive's records *from_seq* .. *to_seq* into *state*
    (in an open transaction), committing every so many records so that a
    long catch-up neither holds its whole change in the write-ahead log
    nor starts over when interrupted."""
    from pit import mbox
    for seq, msg in archive.read(from_seq, to_seq):
        state.remember(seq, mbox.stamp(msg), record_hash(msg))
        if seq % _COMMIT_EVERY == 0 and state._in_tx:
            state.commit()
            state.begin()


def check(archive) -> tuple[int, list[str]]:
    """Check the notary's store beside *archive* (a pit.archive.Archive)
    against the archive: a fresh store folded from record 1 to the record
    the stored one is bound to must hold the same content.  Returns that
    record's number and the findings, one line each (none when it matches,
    or when there is no store to check).  O(records up to it)."""
    import tempfile
    path = archive.dir / STATE_NAME
    if not path.exists():
        return 0, []
    binding = None
    try:
        from pit.pitdir import Pit
        pit = Pit(archive.dir.parent)
        if pit.conf_path.exists() and not pit.is_replica:
            binding = binding_of(pit)
    except Exception:
        binding = None
    try:
        if binding is None:                 # a copy of the archive alone: its own settings
            db = NotaryState._connect(path)
            binding = {k: v for k, v in db.execute("SELECT name, value FROM meta")
                       if k in ("pit", "notary", "operator", "rate")}
            db.close()
        stored = NotaryState.open(path, binding, readonly=True)
    except sqlite3.OperationalError:
        return 0, []                        # cannot be opened here (a read-only copy): not checked
    except (StateError, sqlite3.Error) as e:
        return 0, [f"the notary's snapshot {path.name} is not usable ({e}); "
                   "the notary ignores it and rebuilds it"]
    try:
        last = archive.last_seq()
        if stored.seq > last:
            return stored.seq, [f"the notary's snapshot is at record {stored.seq}, the archive "
                                f"ends at record {last}: records {last + 1}-{stored.seq} are not "
                                "in the archive (lost, or an older copy put back); the notary "
                                "ignores the snapshot and rebuilds it"]
        with tempfile.TemporaryDirectory(prefix="pit-state-check-") as tmp:
            fresh = NotaryState.create(Path(tmp) / STATE_NAME, binding, binding.get("operator"),
                                       wal=False)
            fresh.begin()
            fold(fresh, archive, 1, stored.seq)
            fresh.commit()
            want, got = fresh.content(), stored.content()
            fresh.close()
        out = []
        for table in want:
            if want[table] != got.get(table):
                w, g = set(map(tuple, want[table])), set(map(tuple, got.get(table, [])))
                extra, lacks = sorted(g - w), sorted(w - g)
                first = (f"lacks {lacks[0]!r}" if lacks else f"holds {extra[0]!r}" if extra
                         else "is in another order")
                out.append(f"the notary's snapshot at record {stored.seq} is not what the "
                           f"replay computes: in {table} it {first}"[:400])
        return stored.seq, out
    finally:
        stored.close()
