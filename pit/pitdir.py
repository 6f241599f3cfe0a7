"""A local pit is a directory.  This module knows its layout and its
configuration file, and nothing else.

    <pit>/pit.conf        name, addresses, notary and operator keys, limits
    <pit>/archives/       the mbox archive (pit/archive.py)
    <pit>/rejects/        the reject record: rejects.mbox, every refused message and why
    <pit>/incoming/       a maildir: mail waiting for the notary (new/, cur/, tmp/)
    <pit>/outbox/         notices for senders, as mbox, when there is no mail system
    <pit>/gnupg/          the pit's keyring: members' public keys, the notary's key pair
    <pit>/filters.gnupg/  the signing keys of the pit's own filters (specialists, ...)
    <pit>/checkpoints/    the newest checkpoint of each filter, as text (a cache)

A replica (``pit mirror``, pit.replica) is a directory with ``archives/``
and a ``replica.conf`` instead of ``pit.conf``: the commands that only read
the record (audit, search, replay, book, ...) take it as a pit; it has no
keys and no incoming mail, and the notary refuses it.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path

__all__ = ["Pit", "PitError", "DEFAULTS", "slug", "note_checkpoint"]

DEFAULTS = {
    "max_message_size": "262144",   # bytes; a signed order is about 1 KB
    "max_filter_message_size": "268435456",   # a filter's report or checkpoint: 256 MiB
    # a record larger than this is archived but not posted to the Mailman
    # list: Postfix's default message_size_limit is 10,240,000 bytes, and
    # each list copy it refuses counts as a bounce of every member
    "max_list_message_size": "10000000",
    "rate_limit": "1000",           # accepted messages per member per interval
    "rate_interval": "60",          # seconds
    "seal_every": "1000",           # records per seal at most
    "seal_seconds": "5",            # and at most this long before a record is sealed
    "signature_max_age": "259200",  # seconds: older signatures are refused (0: no limit)
    "signature_clock_skew": "300",  # seconds a signature may be dated ahead of the notary
    "domain": "pit.localhost",
}


class PitError(Exception):
    """Not a pit, or a pit that cannot be used as asked."""


class Pit:
    """Paths and settings of one local pit."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.conf_path = self.root / "pit.conf"
        self.is_replica = False
        if not self.conf_path.exists():
            replica = self.root / "replica.conf"
            if not replica.exists():
                raise PitError(f"{self.root}: not a pit (no pit.conf, no replica.conf); create "
                               "one with 'pit init', or a replica with 'pit mirror'")
            self.conf_path, self.is_replica = replica, True
        self._conf = None

    @property
    def conf(self):
        """pit.conf, read on first use: most commands need none of the
        settings (docs/pit-book.md, "Start-up")."""
        if self._conf is None:
            import configparser
            cp = configparser.ConfigParser()
            # read_file, not read: read() skips a file it cannot open, and a
            # pit.conf its user may not read would pass for an empty one
            with open(self.conf_path, encoding="utf-8") as f:
                cp.read_file(f)
            self._conf = cp
        return self._conf

    # Read once, as pit.conf is (conf): the notary asks at every message.
    @cached_property
    def name(self) -> str:
        return self.conf.get("pit", "name", fallback="")

    @cached_property
    def notary(self) -> str:
        return self.conf.get("pit", "notary", fallback="")

    @cached_property
    def operator(self) -> str:
        return self.conf.get("pit", "operator", fallback="")

    def get(self, key: str) -> str:
        return self.conf.get("pit", key, fallback=DEFAULTS.get(key, ""))

    def getint(self, key: str) -> int:
        return int(self.get(key))

    def not_a_replica(self) -> "Pit":
        """This pit, where its log is written (its notary, its maildir, its
        filters' posts); PitError on a replica, which holds a copy of the
        log and public material only."""
        if self.is_replica:
            raise PitError(f"{self.root}: a replica (replica.conf): only the pit's notary "
                           "writes its log")
        return self

    # -- layout -----------------------------------------------------------------
    archives = property(lambda self: self.root / "archives")
    rejects = property(lambda self: self.root / "rejects")
    incoming = property(lambda self: self.root / "incoming")
    outbox = property(lambda self: self.root / "outbox")
    gnupg = property(lambda self: self.root / "gnupg")
    filters_gnupg = property(lambda self: self.root / "filters.gnupg")
    checkpoints = property(lambda self: self.root / "checkpoints")

    @property
    def domain(self) -> str:
        return self.get("domain")

    @property
    def address(self) -> str:
        """The pit's posting address."""
        return f"{self.name}@{self.domain}"

    @property
    def notary_address(self) -> str:
        return f"{self.name}-notary@{self.domain}"

    @staticmethod
    def create(root: str | os.PathLike, name: str, **settings: str) -> "Pit":
        root = Path(root)
        if (root / "pit.conf").exists():
            raise PitError(f"{root}: a pit already exists here")
        for sub in ("archives", "rejects", "incoming/new", "incoming/cur", "incoming/tmp",
                    "outbox", "checkpoints"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("gnupg", "filters.gnupg"):
            (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        import configparser
        cp = configparser.ConfigParser()
        cp["pit"] = {"name": name, **{k: str(v) for k, v in settings.items()}}
        with open(root / "pit.conf", "w") as f:
            cp.write(f)
        return Pit(root)

    def set(self, **settings: str) -> None:
        for k, v in settings.items():
            self.conf.set("pit", k, str(v))
        tmp = self.conf_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            self.conf.write(f)
        os.replace(tmp, self.conf_path)
        self.__init__(self.root)


def slug(name: str) -> str:
    """A filter name as a file and address part: "specialist ACME" -> "specialist-acme"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def note_checkpoint(pit: Pit, name: str, record: int, covered: int) -> None:
    """Write in ``checkpoints/index`` that filter *name*'s newest checkpoint
    is record *record*, covering records up to *covered*."""
    idx = pit.checkpoints / "index"
    lines = [ln for ln in (idx.read_text().splitlines() if idx.exists() else [])
             if ln.split(" ")[0] != slug(name)]
    lines.append(f"{slug(name)} {record} {covered}")
    tmp = idx.with_suffix(".tmp")
    tmp.write_text("\n".join(sorted(lines)) + "\n")
    os.replace(tmp, idx)
