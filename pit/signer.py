"""In-process OpenPGP signing (ed25519 and RSA), for bulk work.

Signing through gpg costs one process per message (tens to about a hundred
signatures a second), which is too slow to build benchmark archives or the
demo's burst of thousands of orders.  A ``Signer`` exports the secret key
from a GnuPG home once (``gpg --export-secret-keys``; pit keys carry no
passphrase), reads the v4 secret key packet into a ``cryptography``
private key, and then signs in process:

* ``clearsign(text)``: an inline clearsigned block exactly as gpg writes
  it: canonical text (0x01) signature over the cleartext with trailing
  whitespace cut and CRLF line endings, dash-escaped lines, ``Hash:``
  armour header, CRC-24 armour checksum;
* ``detach_sign(data)``: an armoured detached binary (0x00) signature,
  for PGP/MIME (the caller passes the part already made CRLF).

Every signature carries what gpg 2.2 puts in its own: hashed signature
creation time (subpacket 2) and issuer fingerprint (33), unhashed issuer
key id (16).  Stock gpg verifies them (``tests/test_signer.py`` checks with
a real gpg process and with ``pit.openpgp``).

A ``Signer`` has the signing methods of ``pit.keyring.Keyring``
(``clearsign(text, fpr, at=None)``, ``detach_sign(data, fpr, at=None)``),
so it can be passed where a keyring is expected, e.g. to
``pit.signed.compose_clearsigned(headers, text, signer, fpr)``.

Like gpg, the signing key is the newest valid signing subkey if there is
one, else the primary key (which must be able to sign).
"""

from __future__ import annotations

import hashlib
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from pit import openpgp
from pit.openpgp import ALGO_EDDSA, ALGO_RSA, ALGO_RSA_SIGN, ED25519_OID, OpenPGPError

__all__ = ["Signer", "SignerError", "secret_keys", "SecretKey", "KeySigner", "RECHECK_SECONDS"]

RECHECK_SECONDS = 300   # how long a KeySigner trusts its look at the key's validity

TAG_SECRET_KEY = 5
TAG_SECRET_SUBKEY = 7

# OpenPGP hash id, armour "Hash:" name, hashlib name, cryptography class.
_HASHES = {
    "sha256": (8, "SHA256", hashes.SHA256),
    "sha512": (10, "SHA512", hashes.SHA512),
}


class SignerError(ValueError):
    """A key that cannot be used for in-process signing (says which and why)."""


class SecretKey:
    """One v4 secret key or subkey, its fingerprint, and a private key to sign with."""

    def __init__(self, fingerprint: str, primary_fingerprint: str, algo: int,
                 created: int, private):
        self.fingerprint = fingerprint
        self.primary_fingerprint = primary_fingerprint
        self.algo = algo
        self.created = created
        self.private = private

    @property
    def keyid(self) -> str:
        return self.fingerprint[-16:]

    def __repr__(self) -> str:
        return f"SecretKey({self.fingerprint}, algo {self.algo})"


def _mpi_int(body: bytes, pos: int, what: str) -> tuple[int, int]:
    try:
        value, pos = openpgp._mpi(body, pos)
    except OpenPGPError:
        raise SignerError(f"secret key packet: truncated {what}") from None
    return int.from_bytes(value, "big"), pos


def _parse_secret(body: bytes, primary: str | None) -> SecretKey:
    """One secret key packet body (v4, unprotected) -> SecretKey.  O(len(body))."""
    if len(body) < 6 or body[0] != 4:
        raise SignerError(f"secret key packet version {body[:1].hex() or '?'} is not supported (only v4)")
    created = int.from_bytes(body[1:5], "big")
    algo = body[5]
    pos = 6
    if algo in (ALGO_RSA, ALGO_RSA_SIGN):
        n, pos = _mpi_int(body, pos, "RSA modulus")
        e, pos = _mpi_int(body, pos, "RSA exponent")
    elif algo == ALGO_EDDSA:
        oid_len = body[pos]
        oid = body[pos + 1:pos + 1 + oid_len]
        if oid != ED25519_OID:
            raise SignerError(f"EdDSA key on curve OID {oid.hex()} is not ed25519")
        point, pos = openpgp._mpi(body, pos + 1 + oid_len)
    else:
        raise SignerError(f"key algorithm {algo} is not ed25519 or RSA")
    public_body = body[:pos]
    fpr = hashlib.sha1(b"\x99" + len(public_body).to_bytes(2, "big") + public_body).hexdigest().upper()
    if pos >= len(body):
        raise SignerError(f"key {fpr}: no secret part (a stub: the secret key is not in this home)")
    usage = body[pos]
    if usage != 0:
        raise SignerError(f"key {fpr}: secret key is passphrase-protected (S2K usage {usage}); "
                          "pit keys are made without a passphrase")
    pos += 1
    secret_start = pos
    if algo == ALGO_EDDSA:
        seed, pos = _mpi_int(body, pos, "ed25519 secret")
        private = Ed25519PrivateKey.from_private_bytes(seed.to_bytes(32, "big"))
        public = private.public_key().public_bytes_raw()
        if point != b"\x40" + public:
            raise SignerError(f"key {fpr}: ed25519 secret does not match its public key")
    else:
        d, pos = _mpi_int(body, pos, "RSA d")
        p, pos = _mpi_int(body, pos, "RSA p")
        q, pos = _mpi_int(body, pos, "RSA q")
        _u, pos = _mpi_int(body, pos, "RSA u")
        if p * q != n:
            raise SignerError(f"key {fpr}: RSA p*q is not the modulus")
        # OpenPGP's u is p^-1 mod q; cryptography wants q^-1 mod p: recompute.
        private = rsa.RSAPrivateNumbers(
            p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
            rsa.RSAPublicNumbers(e, n)).private_key()
    checksum = sum(body[secret_start:pos]) & 0xFFFF
    if body[pos:pos + 2] != checksum.to_bytes(2, "big"):
        raise SignerError(f"key {fpr}: secret key checksum does not match (damaged export)")
    return SecretKey(fpr, primary or fpr, algo, created, private)


def secret_keys(data: bytes) -> list[SecretKey]:
    """Every secret key and subkey in binary ``gpg --export-secret-keys`` output.

    Raises ``SignerError`` for protected, stub or unsupported keys, naming
    the key.  O(len(data)).
    """
    keys: list[SecretKey] = []
    primary = None
    try:
        for tag, body, _whole in openpgp.iter_packets(data):
            if tag == TAG_SECRET_KEY:
                key = _parse_secret(body, None)
                primary = key.fingerprint
                keys.append(key)
            elif tag == TAG_SECRET_SUBKEY:
                if primary is None:
                    raise SignerError("secret subkey packet before any primary key")
                try:
                    keys.append(_parse_secret(body, primary))
                except SignerError:
                    continue        # e.g. an encryption subkey of another algorithm
    except OpenPGPError as exc:
        raise SignerError(f"not an OpenPGP secret key export: {exc}") from None
    return keys


def _subpacket(kind: int, value: bytes) -> bytes:
    length = len(value) + 1          # all ours are short: one length octet
    return bytes((length, kind)) + value


def _mpi_bytes(value: bytes) -> bytes:
    value = value.lstrip(b"\0")
    bits = len(value) * 8 - (8 - value[0].bit_length()) if value else 0
    return bits.to_bytes(2, "big") + value


def _packet(tag: int, body: bytes) -> bytes:
    """New-format packet header (RFC 4880 4.2.2)."""
    n = len(body)
    if n < 192:
        length = bytes((n,))
    elif n < 8384:
        n -= 192
        length = bytes(((n >> 8) + 192, n & 0xFF))
    else:
        length = b"\xff" + n.to_bytes(4, "big")
    return bytes((0xC0 | tag,)) + length + body


def _dash_escape(line: str) -> str:
    # gpg escapes lines starting with '-' (required) and 'From ' (so mbox
    # tools do not mangle them); the verifier undoes any '- ' prefix.
    return "- " + line if line.startswith(("-", "From ")) else line


class Signer:
    """Signs with one secret key, in process.

    Build it with ``Signer.from_keyring(keyring, fpr)`` (one gpg export)
    or ``Signer(keys)`` from ``secret_keys(...)``.  Each signature costs
    one hash of the data plus one private-key operation (ed25519: tens of
    microseconds; RSA-3072: about a millisecond).
    """

    def __init__(self, keys: list[SecretKey], hash_name: str = "sha256"):
        if hash_name not in _HASHES:
            raise SignerError(f"hash {hash_name!r} is not one of {sorted(_HASHES)}")
        if not keys:
            raise SignerError("no secret key to sign with")
        self.keys = keys
        self.fingerprint = keys[0].primary_fingerprint   # the certificate's
        self.key = keys[0]
        self.hash_name = hash_name
        self._hash_id, self._armor_name, self._hash_class = _HASHES[hash_name]

    @classmethod
    def from_keyring(cls, keyring, fpr: str, hash_name: str = "sha256") -> "Signer":
        """The signer for key ``fpr`` of ``pit.keyring.Keyring`` ``keyring``.

        Two gpg runs (a listing of key ``fpr``, its secret export), whatever
        else the keyring holds.  Picks the newest valid
        signing subkey, else the primary, as gpg does.  Raises
        ``SignerError`` naming the problem (no such secret key, passphrase,
        no signing-capable key).
        """
        from pit.keyring import KeyringError
        fpr = fpr.upper()
        try:
            info = keyring.key(fpr)
        except KeyringError:
            raise SignerError(f"no key {fpr} in {keyring.home}") from None
        try:
            armored = keyring.export_secret(fpr)
        except KeyringError as exc:
            raise SignerError(str(exc)) from None
        try:
            _label, data = openpgp.dearmor(armored)
        except OpenPGPError as exc:
            raise SignerError(f"secret export of {fpr}: {exc}") from None
        by_fpr = {k.fingerprint: k for k in secret_keys(data)}
        usable = [s for s in info.subkeys
                  if s.can_sign and not s.expired and not s.revoked and s.fingerprint in by_fpr]
        if usable:
            chosen = by_fpr[max(usable, key=lambda s: s.created).fingerprint]
        elif info.can_sign and fpr in by_fpr:
            chosen = by_fpr[fpr]
        else:
            raise SignerError(f"key {fpr} has no usable signing key with a secret part here")
        signer = cls([chosen], hash_name)
        signer.fingerprint = fpr
        return signer

    # ---------------------------------------------------------------- core

    def _check_fpr(self, fpr: str | None) -> None:
        if fpr is not None and fpr.upper() not in (self.fingerprint, self.key.fingerprint):
            raise SignerError(f"this signer holds key {self.fingerprint}, not {fpr}")

    def signature_packet(self, data: bytes, sig_type: int, at: int | None = None) -> bytes:
        """A v4 signature packet of type ``sig_type`` over exactly ``data``.

        ``data`` must already be what the type hashes (for 0x01, canonical
        text with CRLF line endings).  ``at`` is the creation time (epoch
        seconds; default now).  O(len(data)) plus one private-key operation.
        """
        key = self.key
        created = int(time.time()) if at is None else int(at)
        hashed = (_subpacket(openpgp.SUB_ISSUER_FPR, b"\x04" + bytes.fromhex(key.fingerprint))
                  + _subpacket(openpgp.SUB_CREATED, created.to_bytes(4, "big")))
        prefix = bytes((4, sig_type, key.algo, self._hash_id)) + len(hashed).to_bytes(2, "big") + hashed
        unhashed = _subpacket(openpgp.SUB_ISSUER, bytes.fromhex(key.keyid))
        h = hashlib.new(self.hash_name)
        h.update(data)
        h.update(prefix)
        h.update(b"\x04\xff" + len(prefix).to_bytes(4, "big"))
        digest = h.digest()
        if key.algo == ALGO_EDDSA:
            # Legacy EdDSA (algo 22) signs the digest itself as the message.
            raw = key.private.sign(digest)
            values = _mpi_bytes(raw[:32]) + _mpi_bytes(raw[32:])
        else:
            raw = key.private.sign(digest, padding.PKCS1v15(), Prehashed(self._hash_class()))
            values = _mpi_bytes(raw)
        body = prefix + len(unhashed).to_bytes(2, "big") + unhashed + digest[:2] + values
        return _packet(openpgp.TAG_SIGNATURE, body)

    # ------------------------------------------------------- the Keyring API

    def clearsign(self, text: str, fpr: str | None = None, at: int | None = None) -> str:
        """``text`` clearsigned, as ``gpg --clearsign`` writes it.

        The signature (type 0x01) covers the text's lines with trailing
        spaces and tabs cut, joined with CRLF, without the last line
        ending; lines starting with ``-`` or ``From `` are dash-escaped.
        A missing final newline is added.  ``fpr``, when given, must name
        this signer's key (it is there so a Signer can stand in for a
        Keyring).  O(len(text)).
        """
        self._check_fpr(fpr)
        from pit.signed import canonical_cleartext
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            line = text[:text.index("\r")].count("\n") + 1
            raise SignerError(f"text line {line} contains a bare carriage return")
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()                      # the final newline ends the last line
        packet = self.signature_packet(canonical_cleartext(l.encode("utf-8") for l in lines), 0x01, at)
        escaped = "".join(_dash_escape(l) + "\n" for l in lines)
        return (f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: {self._armor_name}\n\n"
                + escaped + openpgp.armor("SIGNATURE", packet))

    def detach_sign(self, data: bytes, fpr: str | None = None, at: int | None = None) -> str:
        """Armoured detached binary (type 0x00) signature of exactly ``data``.

        For PGP/MIME the caller passes the signed part with CRLF line
        endings (``pit.signed.compose_pgp_mime`` does).  O(len(data)).
        """
        self._check_fpr(fpr)
        if isinstance(data, str):
            data = data.encode("utf-8")
        return openpgp.armor("SIGNATURE", self.signature_packet(bytes(data), 0x00, at))


class KeySigner:
    """Signs as ``keyring.clearsign(text, fpr)`` would, in process.

    For a long-running signer on the key's own host (the notary's seals, a
    filter daemon's reports): the secret key is read once into a
    :class:`Signer`, so a signature costs microseconds, not a gpg process.
    The key's validity (gpg's listing: expired, revoked, its expiry time)
    is looked at again every ``recheck`` seconds and at its expiry; a key
    that is not valid, or cannot be read in process, is left to gpg, which
    signs or refuses as it always did.  Has the Keyring signing methods
    (``clearsign``, ``detach_sign``), so it stands in for a keyring in
    ``pit.signed.compose_clearsigned``.  Thread-safe enough: a race builds
    the Signer twice."""

    def __init__(self, keyring, fpr: str, recheck: float = RECHECK_SECONDS):
        self.keyring, self.fpr, self.recheck = keyring, fpr.upper(), recheck
        self._signer: Signer | None = None
        self._until = 0.0

    def _current(self) -> Signer | None:
        from pit.keyring import KeyringError
        now = time.time()
        if now < self._until:
            return self._signer
        signer, until = None, now + self.recheck
        try:
            try:
                info = self.keyring.key(self.fpr)       # one gpg run naming it
            except KeyringError:
                info = None
            if info is not None and not info.expired and not info.revoked:
                signer = self._signer
                if signer is None or not any(k.fingerprint == signer.key.fingerprint
                                             and not k.expired and not k.revoked
                                             for k in (info, *info.subkeys)):
                    signer = Signer.from_keyring(self.keyring, self.fpr)
                until = min([until] + [k.expires for k in (info, *info.subkeys) if k.expires
                                       and k.fingerprint in (info.fingerprint, signer.key.fingerprint)])
        except (SignerError, KeyringError):
            signer = None
        self._signer, self._until = signer, until
        return signer

    def ready(self) -> "KeySigner":
        """Read the key now (two gpg runs), not at the first signature."""
        self._current()
        return self

    def clearsign(self, text: str, fpr: str | None = None, at: int | None = None) -> str:
        signer = self._current()
        if signer is None:
            return self.keyring.clearsign(text, fpr or self.fpr, at=at)
        return signer.clearsign(text, fpr, at)

    def detach_sign(self, data: bytes, fpr: str | None = None, at: int | None = None) -> str:
        signer = self._current()
        if signer is None:
            return self.keyring.detach_sign(data, fpr or self.fpr, at=at)
        return signer.detach_sign(data, fpr, at)
