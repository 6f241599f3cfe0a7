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

The store is ``pit-keys.sqlite`` in the GnuPG home.  It records the size,
change time and inode of gpg's public keyring as it was after the store's
last update; when they differ (a key imported or revoked with gpg by
hand), the store is rebuilt from one ``gpg --export`` and one listing of
the whole keyring, neither of which names keys on its command line.
O(keyring) then, O(1) otherwise.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from pit import openpgp

__all__ = ["KeyStore", "STORE_NAME"]

STORE_NAME = "pit-keys.sqlite"
_KEYRING_FILES = ("pubring.kbx", "pubring.gpg")
_CACHE = 100_000          # keys kept read (~0.5 KB each); then read again from SQLite

_SCHEMA_VERSION = "2"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    fingerprint TEXT NOT NULL,             -- this key's own, upper-case hex
    keyid TEXT NOT NULL,                   -- its last 16 hex digits
    primary_fingerprint TEXT NOT NULL,     -- the certificate's
    packet BLOB NOT NULL,                  -- the public key packet's body
    expires INTEGER,                       -- gpg's judgement, primary and subkey combined
    revoked INTEGER NOT NULL,
    can_sign INTEGER NOT NULL,
    cross_certified INTEGER NOT NULL,      -- a subkey's binding is back-signed
    PRIMARY KEY (fingerprint, primary_fingerprint)   -- a key may be in two certificates
);
CREATE INDEX IF NOT EXISTS keys_keyid ON keys (keyid);
CREATE INDEX IF NOT EXISTS keys_primary ON keys (primary_fingerprint);
CREATE TABLE IF NOT EXISTS certificates (
    fingerprint TEXT PRIMARY KEY,          -- primary fingerprint
    digest TEXT NOT NULL                   -- SHA-256 of the last certificate imported for it
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


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
                             "DELETE FROM meta;")
            db.executescript(_SCHEMA)
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
        return db

    def close(self) -> None:
        self.db.close()

    # -- is the store the keyring's? ----------------------------------------------
    def keyring_stamp(self) -> str:
        """Size, change time and inode of gpg's public keyring ("" when none)."""
        for name in _KEYRING_FILES:
            try:
                st = (self.home / name).stat()
            except FileNotFoundError:
                continue
            return f"{name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
        return ""

    def stamp(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = 'keyring'").fetchone()
        return row[0] if row else None

    def in_step(self) -> bool:
        """True when the keyring is as it was after the store's last update."""
        return self.stamp() == self.keyring_stamp()

    # -- writing --------------------------------------------------------------------
    def replace(self, keys: Iterable[tuple[openpgp.PublicKey, bytes]], stamp: str,
                primaries: Iterable[str] | None = None,
                digests: dict[str, str] | None = None) -> None:
        """In one transaction: forget every key of the certificates
        *primaries* (None: of all certificates), store *keys* (each with
        its public key packet's body), record the certificate *digests*
        and the keyring's *stamp*.  O(len(keys) log n)."""
        self._cache.clear()
        with self._transaction():
            if primaries is None:
                self.db.execute("DELETE FROM keys")
                self.db.execute("DELETE FROM certificates")
            else:
                self.db.executemany("DELETE FROM keys WHERE primary_fingerprint = ?",
                                    [(p,) for p in primaries])
            self.db.executemany(
                "INSERT OR REPLACE INTO keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(k.fingerprint, k.keyid, k.primary_fingerprint, body, k.expires,
                  int(k.revoked), int(k.can_sign), int(k.cross_certified)) for k, body in keys])
            if digests:
                self.db.executemany("INSERT OR REPLACE INTO certificates VALUES (?, ?)",
                                    list(digests.items()))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('keyring', ?)", (stamp,))

    def digest(self, primary: str) -> str | None:
        """SHA-256 of the certificate last imported for *primary*, if any."""
        row = self.db.execute("SELECT digest FROM certificates WHERE fingerprint = ?",
                              (primary,)).fetchone()
        return row[0] if row else None

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

    def owners(self, keyid: str) -> set[str]:
        """The primary fingerprints of every certificate holding a key with this id."""
        return {p for (p,) in self.db.execute(
            "SELECT DISTINCT primary_fingerprint FROM keys WHERE keyid = ?", (keyid.upper(),))}

    def __len__(self) -> int:
        return self.db.execute("SELECT count(DISTINCT fingerprint) FROM keys").fetchone()[0]

    def __iter__(self) -> Iterator[openpgp.PublicKey]:
        for row in self.db.execute("SELECT * FROM keys ORDER BY rowid"):
            yield _key_of(row)


def _key_of(row) -> openpgp.PublicKey:
    fpr, _keyid, primary, packet, expires, revoked, can_sign, cross_certified = row
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
