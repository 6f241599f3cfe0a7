"""Shared fixtures: a small pit built once a session with pit.ops, copied
for each test that changes it, and helpers to sign requests as a member.

Keys are real GnuPG keys (pit.testkeys) in temp homes; every gpg-agent the
session starts is stopped at its end, so nothing is left running.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pit import mbox, ops, signed, testkeys
from pit.archive import Archive
from pit.keyring import Keyring
from pit.pitdir import Pit

PIT = "demo"
OTHER = "other"
# name, algorithm, kind (pit.testkeys): who signs in these tests
KEY_SPECS = [("alice", "ed25519"), ("bob", "ed25519"), ("carol", "ed25519"),
             ("mallory", "ed25519"), ("old", "ed25519", "expired"),
             ("gone", "ed25519", "revoked")]
# accounts each member of pit "demo" owns (mallory is nobody's member; carol
# is a member of pit "other" only)
DEMO_MEMBERS = {"alice": ["alice"], "bob": ["bob"], "old": ["old"], "gone": ["gone"]}
OTHER_MEMBERS = {"carol": ["carol"], "alice": ["alice"]}
DEMO_SETUP = [("Currency", "USD 0.01"), ("Currency", "EUR 0.01"),
              ("Instrument", "ACME USD tick 0.01 lot 1"),
              ("Instrument", "BTC EUR tick 0.5 lot 0.1")]

_HOMES: list[Path] = []


def _stop_agents(base: Path) -> None:
    """Stop the gpg-agent of every GnuPG home under *base* (ours only)."""
    for home in {p.parent for p in base.rglob("pubring.kbx")}:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                       capture_output=True, check=False)


@pytest.fixture(scope="session", autouse=True)
def _agents_stopped(tmp_path_factory):
    yield
    for base in _HOMES:
        _stop_agents(base)


@pytest.fixture(scope="session")
def keyhome(tmp_path_factory) -> Path:
    """The members' signing home (secret keys), made once a session."""
    base = tmp_path_factory.mktemp("signers")
    _HOMES.append(base)
    home = base / "home"
    testkeys.make_keys(home, KEY_SPECS)
    return home


class Kit:
    """One pit plus the members' signing home: sign, deliver, count."""

    def __init__(self, root: Path, keyhome: Path):
        self.root = Path(root)
        self.keyhome = keyhome
        self.ring = Keyring(keyhome)
        self._fprs = None

    @property
    def pit(self) -> Pit:
        return Pit(self.root)

    def fpr(self, name: str) -> str:
        if self._fprs is None:
            self._fprs = {n: i["fpr"] for n, i in testkeys._meta(self.keyhome).items()}
        return self._fprs[name]

    def sign(self, who: str, text: str, mime: bool = False, pit_address: str | None = None,
             extra_headers=()) -> bytes:
        """A whole email of *text* signed by test key *who* (at the time its
        kind needs), addressed to this pit."""
        at = testkeys.signing_time(self.keyhome, who)
        headers = [("From", f"{who}@{testkeys.DOMAIN}"), ("To", pit_address or self.pit.address),
                   ("Subject", "pit request"),
                   ("Message-ID", f"<{time.time_ns()}.{who}@{testkeys.DOMAIN}>"),
                   *extra_headers]
        compose = signed.compose_pgp_mime if mime else signed.compose_clearsigned
        return compose(headers, text, self.ring, self.fpr(who), at=at)

    def request(self, who: str, ref: str, key: str, value: str, account: str | None = None,
                pit: str = PIT, mime: bool = False) -> bytes:
        return self.sign(who, ops.request_text(pit, account or who, ref, key, value), mime=mime)

    def notary(self, **kw):
        from moderator.notary import Notary
        return Notary(self.root, **kw)

    def records(self) -> list[tuple[int, bytes]]:
        return list(Archive(self.root).read())

    def rejects(self) -> list[bytes]:
        p = self.root / "rejects" / "rejects.mbox"
        return list(mbox.iter_file(p)) if p.exists() else []

    def notices(self) -> list[bytes]:
        p = self.root / "outbox" / "notices.mbox"
        return list(mbox.iter_file(p)) if p.exists() else []

    def operator(self, key: str, value: str):
        return ops.operator_request(self.pit, key, value)


def _build(base: Path, keyhome: Path, name: str, members: dict, setup) -> Path:
    root = base / name
    pit = ops.init(root, name)
    kit = Kit(root, keyhome)
    for key, value in setup:
        d = ops.operator_request(pit, key, value)
        assert d.accepted, d.reason
    meta = testkeys._meta(keyhome)
    for who, accounts in members.items():
        _, d = ops.add_member(pit, meta[who]["public"], accounts)
        assert d.accepted, d.reason
        if "revocation" in meta[who]:
            kit_ring = Keyring(pit.gnupg)
            kit_ring.gpg.import_keys(meta[who]["revocation"])
    return root


@pytest.fixture(scope="session")
def template_pits(tmp_path_factory, keyhome) -> tuple[Path, Path]:
    """Pit "demo" (currencies, instruments, members) and pit "other", built
    once through pit.ops; tests copy them with :func:`kit`."""
    base = tmp_path_factory.mktemp("template")
    _HOMES.append(base)
    demo = _build(base, keyhome, PIT, DEMO_MEMBERS, DEMO_SETUP)
    other = _build(base, keyhome, OTHER, OTHER_MEMBERS, [("Currency", "USD 0.01")])
    _stop_agents(base)
    return demo, other


def copy_pit(src: Path, dst: Path) -> Path:
    # agent sockets belong to the source home and must not be copied
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("S.*", "*.lock"))
    return dst


@pytest.fixture
def kit(template_pits, keyhome, tmp_path) -> Kit:
    """A fresh copy of pit "demo" for one test."""
    _HOMES.append(tmp_path)
    return Kit(copy_pit(template_pits[0], tmp_path / PIT), keyhome)


@pytest.fixture
def other_kit(template_pits, keyhome, tmp_path) -> Kit:
    """A fresh copy of pit "other" for one test."""
    _HOMES.append(tmp_path)
    return Kit(copy_pit(template_pits[1], tmp_path / OTHER), keyhome)
