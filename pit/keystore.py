"""The verifier's keys: which public keys the pit's GnuPG home holds, and
gpg's judgement of each, kept in SQLite beside the keyring.

GnuPG stays the keyring of record and the judge of validity: every key
comes into the pit through ``gpg --import``, and its expiry, revocation
and signing capability are what ``gpg --with-colons`` lists for it.  This
store only remembers, per signing-capable key (primary or subkey), the
public key packet and that judgement, so that

* ``Keyring.load_verifier()`` costs O(1) whatever the number of members
  (it used to export and list the whole keyring, with every fingerprint on
  one gpg command line: at ~50,000 members "Argument list too long");
* adding a member updates one row (``put``), not the whole store;
* a verifier looks a key up when a signature names it (an index lookup,
  then a cache), and holds in memory only the keys that signed.

The keyring of record is several GnuPG homes (``pit.keyring``): the main
home and its shards, ``shards/XYZ`` (a certificate's shard is the first
three hex digits of its fingerprint).  The store is one SQLite file,
``pit-keys.sqlite`` in the main home, over all of them: each row says
which home holds its key.  For each home it records the size, change time
and inode of gpg's public keyring as it was after the store's last update;
when they differ (a key imported or revoked with gpg by hand), that home's
rows are rebuilt from one ``gpg --export`` and one listing of that home,
neither of which names keys on its command line.  O(that home) then,
O(number of homes) stats otherwise.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from pit import openpgp

__all__ = ["KeyStore", "STORE_NAME", "SHARDS", "homes", "uid_addresses", "UID_EMAIL"]

STORE_NAME = "pit-keys.sqlite"
SHARDS = "shards"                        # the shard homes' directory in the main home
_SHARD_NAME = re.compile(r"[0-9A-F]{3}")
_KEYRING_FILES = ("pubring.kbx", "pubring.gpg")
_CACHE = 100_000          # keys kept read (~0.5 KB each); then read again from SQLite

_SCHEMA_VERSION = "3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    home TEXT NOT NULL,                    -- the GnuPG home holding it: '' main, 'shards/XYZ'
    fingerprint TEXT NOT NULL,             -- this key's own, upper-case hex
    keyid TEXT NOT NULL,                   -- its last 16 hex digits
    primary_fingerprint TEXT NOT NULL,     -- the certificate's
    packet BLOB NOT NULL,                  -- the public key packet's body
    expires INTEGER,                       -- gpg's judgement, primary and subkey combined
    revoked INTEGER NOT NULL,
    can_sign INTEGER NOT NULL,
    cross_certified INTEGER NOT NULL,      -- a subkey's binding is back-signed
    uids TEXT NOT NULL,                    -- a primary's user ids as gpg lists them, one a line
    PRIMARY KEY (fingerprint, primary_fingerprint)   -- a key may be in two certificates
);
CREATE INDEX IF NOT EXISTS keys_keyid ON keys (keyid);
CREATE INDEX IF NOT EXISTS keys_primary ON keys (primary_fingerprint);
CREATE TABLE IF NOT EXISTS certificates (
    fingerprint TEXT PRIMARY KEY,          -- primary fingerprint
    digest TEXT NOT NULL,                  -- SHA-256 of the last certificate imported for it
    home TEXT NOT NULL                     -- the GnuPG home it went to
);
CREATE TABLE IF NOT EXISTS addresses (
    address TEXT NOT NULL,                 -- an email address of a user id, lower-case
    primary_fingerprint TEXT NOT NULL,
    home TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS addresses_address ON addresses (address);
CREATE INDEX IF NOT EXISTS addresses_primary ON addresses (primary_fingerprint);
CREATE TABLE IF NOT EXISTS homes (
    home TEXT PRIMARY KEY,                 -- '' the main home, 'shards/XYZ'
    stamp TEXT NOT NULL                    -- its public keyring after the store's last update
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


# the email address of a user id: "Name <a@b>" or a bare "a@b"
UID_EMAIL = re.compile(r"<([^<>@\s]+@[^<>@\s]+)>\s*$|^([^<>@\s]+@[^<>@\s]+)$")


def uid_addresses(uids: Iterable[str]) -> list[str]:
    """The email addresses of user ids *uids*, lower-case, in order."""
    return [(m.group(1) or m.group(2)).lower() for m in map(UID_EMAIL.search, uids) if m]


def homes(main: str | Path) -> list[str]:
    """The GnuPG homes of the keyring in main home *main*, as the store names
    them: '' (the main home) and every shard directory present.  One listdir."""
    try:
        shards = sorted(f"{SHARDS}/{n}" for n in os.listdir(Path(main) / SHARDS)
                        if _SHARD_NAME.fullmatch(n))
    except FileNotFoundError:
        shards = []
    return ["", *shards]


class KeyStore:
    """The verifier's view of one GnuPG home (see the module text).

    ``home`` is the GnuPG home; the store file lives in it.  Rows are
    written by ``pit.keyring.Keyring`` only, from gpg's own output.
    """

    def __init__(self, home: str | Path):
        self.home = Path(home)
        self.path = self.home / STORE_NAME
        try:
            self.db = self._open(self.path)
        except sqlite3.Error:
            # A home this user cannot write: a store for this process only,
            # read from gpg once (what every start cost before the store).
            self.db = self._open(":memory:")
        self._cache: dict[str, openpgp.PublicKey] = {}
        self._owners: dict[str, frozenset[str]] = {}     # owners(), kept as _cache is

    @staticmethod
    def _open(path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if row is None or row[0] != _SCHEMA_VERSION:
            # another layout: forget it all; the keyring is read again when used
            db.executescript("DROP TABLE IF EXISTS keys; DROP TABLE IF EXISTS certificates; "
                             "DROP TABLE IF EXISTS homes; DROP TABLE IF EXISTS addresses; "
                             "DELETE FROM meta;")
            db.executescript(_SCHEMA)
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
        return db

    def close(self) -> None:
        self.db.close()

    def __del__(self) -> None:
        # A store let go closes its file then, as a file object does: CPython's
        # sqlite3 connection sits in a reference cycle (its statement cache)
        # and would stay open, its WAL unmerged, until the cycle collector ran.
        if hasattr(self, "db"):
            self.db.close()

    # -- is the store the keyring's? ----------------------------------------------
    def homes(self) -> list[str]:
        return homes(self.home)

    def keyring_stamp(self, home: str = "") -> str:
        """Size, change time and inode of gpg's public keyring in *home*
        ("" when it has none)."""
        base = self.home / home if home else self.home
        for name in _KEYRING_FILES:
            try:
                st = (base / name).stat()
            except FileNotFoundError:
                continue
            return f"{name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
        return ""

    def stamp(self, home: str = "") -> str | None:
        row = self.db.execute("SELECT stamp FROM homes WHERE home = ?", (home,)).fetchone()
        return row[0] if row else None

    def in_step(self, home: str = "") -> bool:
        """True when *home*'s keyring is as it was after the store's last update."""
        return self.stamp(home) == self.keyring_stamp(home)

    def stale(self) -> list[str]:
        """The homes whose keyring changed behind the store's back (or that
        went away).  One stat a home, one query."""
        known = dict(self.db.execute("SELECT home, stamp FROM homes"))
        out = [h for h in self.homes() if known.pop(h, None) != self.keyring_stamp(h)]
        return out + sorted(known)

    # -- writing --------------------------------------------------------------------
    def replace(self, home: str, keys: Iterable[tuple[openpgp.PublicKey, bytes, tuple[str, ...]]],
                stamp: str, primaries: Iterable[str] | None = None,
                digests: dict[str, str] | None = None) -> None:
        """In one transaction: forget every key of the certificates
        *primaries* in *home* (None: every key of *home*), store *keys*
        (each with its public key packet's body and, for a primary, its
        user ids), record the certificate *digests* and *home*'s keyring
        *stamp*.  O(len(keys) log n)."""
        self._cache.clear()
        self._owners.clear()
        with self._transaction():
            keys = list(keys)
            if primaries is None:
                self.db.execute("DELETE FROM keys WHERE home = ?", (home,))
                self.db.execute("DELETE FROM certificates WHERE home = ?", (home,))
                self.db.execute("DELETE FROM addresses WHERE home = ?", (home,))
            else:
                rows = [(home, p) for p in primaries]
                self.db.executemany("DELETE FROM keys WHERE home = ? AND primary_fingerprint = ?", rows)
                self.db.executemany("DELETE FROM addresses WHERE home = ? AND primary_fingerprint = ?",
                                    rows)
            self.db.executemany("INSERT INTO addresses VALUES (?, ?, ?)",
                                [(a, k.primary_fingerprint, home) for k, _, uids in keys
                                 for a in dict.fromkeys(uid_addresses(uids))])
            self.db.executemany(
                "INSERT OR REPLACE INTO keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(home, k.fingerprint, k.keyid, k.primary_fingerprint, body, k.expires,
                  int(k.revoked), int(k.can_sign), int(k.cross_certified), "\n".join(uids))
                 for k, body, uids in keys])
            if digests:
                self.db.executemany("INSERT OR REPLACE INTO certificates VALUES (?, ?, ?)",
                                    [(f, d, home) for f, d in digests.items()])
            if stamp or home == "":
                self.db.execute("INSERT OR REPLACE INTO homes VALUES (?, ?)", (home, stamp))
            else:                                 # a shard that went away
                self.db.execute("DELETE FROM homes WHERE home = ?", (home,))

    def digest(self, primary: str) -> str | None:
        """SHA-256 of the certificate last imported for *primary*, if any."""
        row = self.db.execute("SELECT digest FROM certificates WHERE fingerprint = ?",
                              (primary,)).fetchone()
        return row[0] if row else None

    def home_of(self, primary: str) -> str | None:
        """The home holding certificate *primary* ('' the main home), or None
        when the store does not know it.  O(log n)."""
        row = self.db.execute("SELECT home FROM keys WHERE primary_fingerprint = ? LIMIT 1",
                              (primary.upper(),)).fetchone()
        if row is None:
            row = self.db.execute("SELECT home FROM certificates WHERE fingerprint = ?",
                                  (primary.upper(),)).fetchone()
        return row[0] if row else None

    def addresses(self, primary: str) -> tuple[str, ...]:
        """The email addresses of certificate *primary*'s user ids, lower-case,
        in gpg's order.  O(log n)."""
        return tuple(a for (a,) in self.db.execute(
            "SELECT address FROM addresses WHERE primary_fingerprint = ? ORDER BY rowid",
            (primary.upper(),)))

    def certificates_with(self, address: str) -> set[str]:
        """The certificates with a user id of email *address*.  O(log n)."""
        try:
            address.encode("utf-8")
        except UnicodeEncodeError:        # undecodable mail header bytes: no user id has them
            return set()
        return {p for (p,) in self.db.execute(
            "SELECT primary_fingerprint FROM addresses WHERE address = ?", (address.lower(),))}

    def uids(self, primary: str) -> tuple[str, ...]:
        """The user ids gpg lists for certificate *primary*.  O(log n)."""
        row = self.db.execute("SELECT uids FROM keys WHERE fingerprint = ? AND primary_fingerprint = ?",
                              (primary.upper(), primary.upper())).fetchone()
        return tuple(row[0].split("\n")) if row and row[0] else ()

    def _transaction(self):
        db = self.db

        class _T:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, value, tb):
                db.execute("COMMIT" if kind is None else "ROLLBACK")
        return _T()

    # -- reading --------------------------------------------------------------------
    def key(self, keyid_or_fpr: str) -> openpgp.PublicKey | None:
        """The key with this fingerprint (40 hex) or key id (16 hex).  O(log n)."""
        k = keyid_or_fpr.upper()
        hit = self._cache.get(k)
        if hit is not None:
            return hit
        column = "fingerprint" if len(k) > 16 else "keyid"
        # (a key in two certificates: the one stored last, as a Verifier's
        # tables keep the last given; signatures by it are refused anyway)
        row = self.db.execute(f"SELECT * FROM keys WHERE {column} = ? ORDER BY rowid DESC LIMIT 1",
                              (k,)).fetchone()
        if row is None:
            return None
        if len(self._cache) >= _CACHE:
            self._cache.clear()               # memory stays bounded at any membership
        key = self._cache[k] = _key_of(row)
        return key

    def certificate(self, primary: str) -> list[openpgp.PublicKey]:
        """Every key of certificate *primary* (primary first), as gpg judged it."""
        rows = self.db.execute("SELECT * FROM keys WHERE primary_fingerprint = ? "
                               "ORDER BY fingerprint != primary_fingerprint, rowid", (primary.upper(),))
        return [_key_of(row) for row in rows]

    def owners(self, keyid: str) -> frozenset[str]:
        """The primary fingerprints of every certificate holding a key with
        this id (kept after the first read, as keys are, until this store
        writes keys: the verifier asks at every signature)."""
        k = keyid.upper()
        hit = self._owners.get(k)
        if hit is not None:
            return hit
        if len(self._owners) >= _CACHE:
            self._owners.clear()
        found = self._owners[k] = frozenset(p for (p,) in self.db.execute(
            "SELECT DISTINCT primary_fingerprint FROM keys WHERE keyid = ?", (k,)))
        return found

    def __len__(self) -> int:
        return self.db.execute("SELECT count(DISTINCT fingerprint) FROM keys").fetchone()[0]

    def __iter__(self) -> Iterator[openpgp.PublicKey]:
        for row in self.db.execute("SELECT * FROM keys ORDER BY rowid"):
            yield _key_of(row)


def _key_of(row) -> openpgp.PublicKey:
    _home, fpr, _keyid, primary, packet, expires, revoked, can_sign, cross_certified, _uids = row
    (key,) = openpgp.parse_keys(_public_key_packet(packet))
    key.primary_fingerprint = primary
    key.expires, key.revoked, key.can_sign = expires, bool(revoked), bool(can_sign)
    key.cross_certified = bool(cross_certified)
    return key


def _public_key_packet(body: bytes) -> bytes:
    """An old-format key packet around *body*, for parse_keys (a subkey's
    body too: its fingerprint is the same whatever the tag)."""
    return bytes((0x80 | openpgp.TAG_PUBLIC_KEY << 2 | 2,)) + len(body).to_bytes(4, "big") + body


class StoreVerifier(openpgp.Verifier):
    """An ``openpgp.Verifier`` whose keys are those of a ``KeyStore``, looked up
    when a signature names them: O(1) to build, memory for the keys used."""

    def __init__(self, store: KeyStore):
        super().__init__([])
        self.store = store
        self._by_fpr = _ByFingerprint(store)
        self._by_keyid = _ByFingerprint(store)
        self._claimed = _Owners(store)

    def __len__(self) -> int:
        return len(self.store)

    def keys(self) -> list[openpgp.PublicKey]:
        return list(self.store)

    def key(self, keyid_or_fpr: str) -> openpgp.PublicKey | None:
        return self.store.key(keyid_or_fpr)


class _ByFingerprint:
    """What Verifier.verify asks of its key tables (``get``), from the store."""

    def __init__(self, store: KeyStore):
        self.store = store

    def get(self, k, default=None):
        if not k:
            return default
        key = self.store.key(k)
        return default if key is None else key

    def __getitem__(self, k):
        key = self.get(k)
        if key is None:
            raise KeyError(k)
        return key

    def __contains__(self, k) -> bool:
        return self.get(k) is not None

    def __len__(self) -> int:
        return len(self.store)

    def values(self):
        return list(self.store)


class _Owners:
    """Which certificates claim a key id (``Verifier._claimed``), from the store."""

    def __init__(self, store: KeyStore):
        self.store = store

    def get(self, keyid, default=()):
        return self.store.owners(keyid) or default
