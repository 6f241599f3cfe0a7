"""Real GnuPG key fixtures for tests and the demo, made fast and reusable.

Like real traders, fixture keys live in a *signing home* (secret keys,
one per test run or demo) and are *published* into a pit's keyring
(public keys only).  ``make_keys`` generates into the signing home;
``publish`` imports the public keys into a pit's GnuPG home.  Generation
costs gpg time (ed25519 ~0.1 s, rsa3072 ~1-3 s), so with ``cache=`` a
spec list is generated once and copied afterwards.

Besides plain keys it makes the awkward ones a verifier must recognise
(the third element of a spec):

* ``"expired"``: created 30 days ago (gpg ``--faked-system-time``) with a
  one-day expiry; it can still sign at ``signing_time(home, name)``;
* ``"expired-later"``: created 30 days ago without expiry, so it signs at
  ``signing_time`` (day 5); the *published* key carries a later self-
  signature setting a one-day expiry: a signature made after expiry;
* ``"revoked"``: the signing home keeps it usable; the published key
  carries the revocation certificate gpg made at generation;
* ``"subkey"``: a primary plus a signing subkey, which gpg signs with.

Usage::

    fprs = make_keys(signer_home, [("alice", "ed25519"), ("bob", "rsa3072"),
                                   ("old", "ed25519", "expired")])
    pit_keyring = publish(signer_home, pit_home)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

from pit.keyring import Keyring

__all__ = ["make_keys", "publish", "info", "signing_time", "subkey", "stop_agents",
           "certificate", "KINDS", "DOMAIN"]

DOMAIN = "pit.test"
DAY = 86400
KINDS = ("", "expired", "expired-later", "revoked", "subkey")
_META = "pit-testkeys.json"


def _spec(item: Sequence[str]) -> tuple[str, str, str]:
    name, algo, *rest = item
    kind = rest[0] if rest else ""
    if kind not in KINDS:
        raise ValueError(f"test key {name}: kind {kind!r} is not one of {KINDS}")
    return name, algo, kind


def _generate(keyring: Keyring, name: str, algo: str, kind: str) -> dict:
    email = f"{name}@{DOMAIN}"
    past = int(time.time()) - 30 * DAY
    info = {"algo": algo, "kind": kind, "sign_at": None}
    if kind == "expired":
        info["fpr"] = keyring.generate(name, email, algo, expire="1d", at=past)
        info["sign_at"] = past + 3600
    elif kind == "expired-later":
        info["fpr"] = keyring.generate(name, email, algo, at=past)
        info["sign_at"] = past + 5 * DAY
        # Publish the key as it is after a later self-signature (made at
        # day 0 + 1 h) set a one-day expiry, without touching the signer's copy.
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(keyring.home, Path(tmp) / "h", ignore=shutil.ignore_patterns("S.*"))
            other = Keyring(Path(tmp) / "h")
            other.set_expire(info["fpr"], "1d", at=past + 3600)
            info["public"] = other.export(info["fpr"])
            other.stop_agent()
    else:
        info["fpr"] = keyring.generate(name, email, algo)
        if kind == "subkey":
            info["subkey"] = keyring.add_signing_subkey(info["fpr"], algo)
    if "public" not in info:
        info["public"] = keyring.export(info["fpr"])
    if kind == "revoked":
        cert = (keyring.home / "openpgp-revocs.d" / f"{info['fpr']}.rev").read_text()
        info["revocation"] = cert.replace(":-----BEGIN", "-----BEGIN")
    return info


def make_keys(homedir: str | Path, specs: Iterable[Sequence[str]],
              cache: str | Path | None = None) -> dict[str, str]:
    """Generate keys into the signing home ``homedir``; returns ``{name: fpr}``.

    ``specs`` are ``(name, algo)`` or ``(name, algo, kind)``: ``algo`` is
    ``"ed25519"`` or ``"rsa3072"``, ``kind`` one of ``KINDS``.  Keys have no
    passphrase and the uid ``name <name@pit.test>``.  With ``cache``, the
    first call for a spec list generates into ``cache/<digest>`` and every
    call copies that home: O(copy) instead of O(gpg keygen).
    """
    specs = [_spec(s) for s in specs]
    home = Path(homedir)
    if cache is not None:
        digest = hashlib.sha256(json.dumps(specs).encode()).hexdigest()[:16]
        cached = Path(cache) / digest
        if not (cached / _META).exists():
            if cached.exists():
                shutil.rmtree(cached)
            make_keys(cached, specs)
            Keyring(cached).stop_agent()
        if home.exists():
            shutil.rmtree(home)
        # Agent sockets are per home and must not be copied.
        shutil.copytree(cached, home, ignore=shutil.ignore_patterns("S.*", "*.lock"))
        home.chmod(0o700)
        return {name: info["fpr"] for name, info in _meta(home).items()}
    keyring = Keyring(home)
    meta = {name: _generate(keyring, name, algo, kind) for name, algo, kind in specs}
    (home / _META).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return {name: info["fpr"] for name, info in meta.items()}


def _meta(home: Path) -> dict:
    path = Path(home) / _META
    if not path.exists():
        raise FileNotFoundError(f"{home} was not made by pit.testkeys.make_keys (no {_META})")
    return json.loads(path.read_text())


def info(homedir: str | Path) -> dict[str, dict]:
    """Everything ``make_keys`` recorded, by name: ``fpr``, ``algo``,
    ``kind``, ``sign_at``, ``public`` (the published armoured key),
    ``revocation`` (revoked kind), ``subkey`` (subkey kind)."""
    return _meta(Path(homedir))


def signing_time(homedir: str | Path, name: str) -> int | None:
    """The faked time key ``name`` must sign at (None: sign now)."""
    return _meta(Path(homedir))[name]["sign_at"]


def subkey(homedir: str | Path, name: str) -> str | None:
    """The signing subkey fingerprint of a ``"subkey"`` key, else None."""
    return _meta(Path(homedir))[name].get("subkey")


def publish(homedir: str | Path, pit_home: str | Path,
            names: Iterable[str] | None = None) -> Keyring:
    """Import the published public keys (revocations, later expiries included)
    from signing home ``homedir`` into the GnuPG home ``pit_home``.

    ``names`` limits which keys are published (default: all).  Returns the
    pit's ``Keyring``.  One gpg import per key.
    """
    meta = _meta(Path(homedir))
    keyring = Keyring(pit_home)
    for name in (meta if names is None else names):
        info = meta[name]
        keyring.import_key(info["public"])
        if "revocation" in info:
            keyring.import_revocation(info["revocation"])
    return keyring


def stop_agents(root: str | Path) -> int:
    """Stop the gpg-agents of every GnuPG home at or under ``root``.

    For test teardown: gpg starts one agent per home that signs or makes
    keys, and they outlive the test otherwise.  Returns how many homes
    were visited.  O(files under root).
    """
    root = Path(root)
    from pit.keystore import SHARDS
    homes = {p.parent for p in root.rglob("pubring.kbx")} if root.exists() else set()
    homes = {h for h in homes if h.parent.name != SHARDS}      # a keyring's shards run no agent
    for home in sorted(homes):
        Keyring(home).stop_agent()
    return len(homes)


def certificate(name: str, created: int = 1_700_000_000) -> tuple[str, "Signer"]:
    """An ed25519 certificate for ``name <name@pit.test>`` made in process:
    ``(armoured public key, Signer)``.  Deterministic (the secret key is a
    hash of the name), no gpg run: ~0.1 ms a key, for keyrings of a
    million members.  The certificate is what gpg makes (a v4 primary key,
    one user ID, a positive self-certification); gpg imports it and
    ``pit.openpgp`` verifies its signatures.  O(1).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from pit import openpgp
    from pit.signer import SecretKey, Signer, _mpi_bytes, _packet
    private = Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"pit-testkey:{name}".encode()).digest())
    point = b"\x40" + private.public_key().public_bytes_raw()
    body = (bytes((4,)) + created.to_bytes(4, "big") + bytes((openpgp.ALGO_EDDSA, len(openpgp.ED25519_OID)))
            + openpgp.ED25519_OID + _mpi_bytes(point))
    fpr = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
    signer = Signer([SecretKey(fpr, fpr, openpgp.ALGO_EDDSA, created, private)])
    uid = f"{name} <{name}@{DOMAIN}>".encode()
    signed = (b"\x99" + len(body).to_bytes(2, "big") + body
              + b"\xb4" + len(uid).to_bytes(4, "big") + uid)
    cert = (_packet(openpgp.TAG_PUBLIC_KEY, body) + _packet(openpgp.TAG_USER_ID, uid)
            + signer.signature_packet(signed, 0x13, at=created))
    return openpgp.armor("PUBLIC KEY BLOCK", cert), signer
