"""A pit's GnuPG home: the members' public keys and the notary's key pair.

GnuPG is the keyring of record (auditors check by hand with stock gpg),
and python-gnupg is how the pit drives it.  Each gpg call is a process
(~100-185 a second), so the hot path does not come through here: the
notary calls ``Keyring.load_verifier()`` once and then verifies in
process with ``pit.openpgp``.  ``verify_gpg`` stays as the reference the
in-process verifier is tested against.

This module answers "which key signed this, and is that key good".
Which fingerprint owns which accounts is membership, recorded in the
archive by the notary, not here.

Keys are generated without passphrase (``%no-protection``): a pit's
notary and filters sign unattended, and the trader demo keys are
fixtures.  The home is made mode 0700 as gpg insists.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pit import openpgp
from pit.keystore import KeyStore, StoreVerifier
from pit.openpgp import Verdict

__all__ = ["Keyring", "KeyringError", "KeyInfo", "Verdict", "ALGORITHMS", "gpg_home",
           "certificate_fingerprint"]

# Key kinds a pit accepts, as gpg's batch key-generation parameters.
ALGORITHMS = {
    "ed25519": "Key-Type: eddsa\nKey-Curve: ed25519\n",
    "rsa3072": "Key-Type: RSA\nKey-Length: 3072\n",
}
# The same, in the spelling of --quick-add-key.
_QUICK_ALGO = {"ed25519": "ed25519", "rsa3072": "rsa3072"}

# gpg's status keywords that carry a verdict, by priority of meaning.
_GPG_VERDICTS = {
    "GOODSIG": "good", "EXPSIG": "expired-signature", "EXPKEYSIG": "expired-key",
    "REVKEYSIG": "revoked-key", "BADSIG": "bad",
}

# ERRSIG return codes (libgpg-error) for a signature gpg will not check
# although it knows the key: the pit's "invalid".
_GPG_INVALID = {"39": "Time conflict", "125": "Wrong key usage"}


class KeyringError(RuntimeError):
    """A gpg operation on the pit's keyring failed; the message says which and why."""


# gpg-agent's sockets live in the GnuPG home (no /run/user/UID/gnupg here,
# and none for a system user); a Unix socket path has room for 107 bytes,
# the longest name is "S.gpg-agent.browser".  A home whose path is longer
# than this is reached through a short symbolic link instead.
_SOCKET_ROOM = 107 - len("/S.gpg-agent.browser")


def gpg_home(home: str | os.PathLike) -> str:
    """The path to give gpg and gpgconf as ``--homedir`` for GnuPG home *home*.

    *home* itself when its agent sockets fit in a Unix socket path; else a
    short symbolic link to it, ``<tmp>/pit-gnupg-<uid>/<hash of the real
    path>`` (the directory is the user's own, mode 0700, checked), so a pit
    works at any path length.  The same home always gets the same link, so
    ``gpgconf --homedir gpg_home(h) --kill gpg-agent`` reaches its agent.
    """
    text = os.fspath(home)
    if len(os.path.abspath(text)) <= _SOCKET_ROOM:
        return text
    import hashlib
    import stat
    real = os.path.realpath(text)
    base = os.path.join(tempfile.gettempdir(), f"pit-gnupg-{os.getuid()}")
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise KeyringError(f"{base} must be a directory of user {os.getuid()} with mode 0700 "
                           f"(it holds the short paths of long GnuPG homes)")
    link = os.path.join(base, hashlib.sha256(real.encode()).hexdigest()[:16])
    if os.path.islink(link) and os.readlink(link) == real:
        return link
    tmp = f"{link}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(real, tmp)
    os.replace(tmp, link)
    return link


@dataclass(frozen=True)
class KeyInfo:
    """One key (primary or subkey) as gpg lists it with ``--with-colons``."""

    fingerprint: str
    keyid: str
    algo: int
    created: int
    expires: int | None
    validity: str                 # gpg's field 2: 'e' expired, 'r' revoked, ...
    capabilities: str             # gpg's field 12, e.g. 'scSC' or 's'
    uids: tuple[str, ...] = ()
    subkeys: tuple["KeyInfo", ...] = field(default=())

    @property
    def expired(self) -> bool:
        return self.validity == "e"

    @property
    def revoked(self) -> bool:
        return self.validity == "r"

    @property
    def can_sign(self) -> bool:
        return "s" in self.capabilities


class Keyring:
    """A GnuPG home directory driven through python-gnupg.

    ``gpgbinary`` is the gpg program (``gpg`` 2.2 or later).  Every
    operation runs one gpg process, so each costs milliseconds: keep
    them off per-message paths (use ``load_verifier``).
    """

    def __init__(self, gnupghome: str | os.PathLike, gpgbinary: str = "gpg"):
        self.home = Path(gnupghome)
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        self.gpgbinary = gpgbinary
        self.gpg_home = gpg_home(self.home)      # short enough for gpg-agent's sockets
        # The pit decides membership itself; gpg's web of trust has no say.
        self._options = ["--trust-model", "always"]
        self.gpg = self._gpg()
        self._store: KeyStore | None = None

    def _gpg(self, at: int | None = None) -> "gnupg.GPG":
        import gnupg                      # here, not at the top: commands that never
                                          # touch gpg start faster without it
        options = list(self._options)
        if at is not None:
            options += ["--faked-system-time", f"{int(at)}!"]
        g = gnupg.GPG(gpgbinary=self.gpgbinary, gnupghome=self.gpg_home, options=options)
        g.encoding = "utf-8"
        return g

    def _run(self, args: list[str], what: str, at: int | None = None,
             input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """gpg subcommands python-gnupg has no method for (--quick-set-expire)."""
        # Keys here have no passphrase; loopback keeps the agent from
        # looking for a terminal to ask on.
        cmd = [self.gpgbinary, "--homedir", self.gpg_home, "--batch", "--yes",
               "--pinentry-mode", "loopback", "--passphrase", "", *self._options]
        if at is not None:
            cmd += ["--faked-system-time", f"{int(at)}!"]
        proc = subprocess.run(cmd + args, input=input, capture_output=True)
        if check and proc.returncode != 0:
            raise KeyringError(f"{what} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
        return proc

    def stop_agent(self) -> None:
        """Stop the gpg-agent that gpg started for this home, if any.

        Signing and key generation start an agent per GnuPG home; tests
        and temporary homes must not leave it running.
        """
        gpgconf = Path(self.gpgbinary).with_name("gpgconf") if os.sep in self.gpgbinary else "gpgconf"
        subprocess.run([str(gpgconf), "--homedir", self.gpg_home, "--kill", "gpg-agent"],
                       capture_output=True)

    # ------------------------------------------------------------ keys

    def generate(self, name: str, email: str, algo: str = "ed25519",
                 expire: str | None = None, at: int | None = None) -> str:
        """Make a passphrase-less signing key pair; returns its fingerprint.

        ``algo`` is ``"ed25519"`` or ``"rsa3072"``; ``expire`` is gpg's
        ``Expire-Date`` (``"1d"``, ``"2y"``, ISO date) or None for never;
        ``at`` (epoch seconds) creates the key at that faked time, which
        is how an already-expired key is made for tests.
        """
        if algo not in ALGORITHMS:
            raise KeyringError(f"key algorithm {algo!r} is not one of {sorted(ALGORITHMS)}")
        params = (ALGORITHMS[algo] + "Key-Usage: sign\n"
                  f"Name-Real: {name}\nName-Email: {email}\n"
                  f"Expire-Date: {expire or 0}\n%no-protection\n%commit\n")
        result = self._gpg(at).gen_key(params)
        if not result.fingerprint:
            raise KeyringError(f"generating a {algo} key for {email} failed: {result.stderr.strip()}")
        return result.fingerprint

    def add_signing_subkey(self, fpr: str, algo: str = "ed25519", at: int | None = None) -> str:
        """Add a signing subkey to key ``fpr``; returns the subkey's fingerprint."""
        before = {s.fingerprint for s in self._key(fpr).subkeys}
        self._run(["--quick-add-key", fpr, _QUICK_ALGO[algo], "sign", "never"],
                  f"adding a signing subkey to {fpr}", at=at)
        added = [s.fingerprint for s in self._key(fpr).subkeys if s.fingerprint not in before]
        if len(added) != 1:
            raise KeyringError(f"adding a signing subkey to {fpr}: gpg added {len(added)} keys")
        return added[0]

    def set_expire(self, fpr: str, expire: str, at: int | None = None) -> None:
        """Set the primary key's expiry (gpg ``--quick-set-expire``)."""
        self._run(["--quick-set-expire", fpr, expire], f"setting the expiry of {fpr}", at=at)

    def revoke(self, fpr: str) -> None:
        """Revoke key ``fpr`` with the revocation certificate gpg made at generation."""
        path = self.home / "openpgp-revocs.d" / f"{fpr}.rev"
        if not path.exists():
            raise KeyringError(f"no revocation certificate for {fpr} in {path.parent}")
        # gpg prefixes the armour with ':' so that it is not imported by accident.
        text = path.read_text().replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----",
                                        "-----BEGIN PGP PUBLIC KEY BLOCK-----")
        result = self.gpg.import_keys(text)
        if not getattr(result, "count", 0) and not result.results:
            raise KeyringError(f"importing the revocation of {fpr} failed: {result.stderr.strip()}")

    def import_key(self, armored: str | bytes) -> str:
        """Import one public key (armoured); returns its primary fingerprint.

        Refuses anything but exactly one certificate, and keys whose
        primary algorithm the pit cannot verify in process.  The store
        (``load_verifier``) learns the key at once.  A certificate imported
        before, byte for byte, is not given to gpg again.  Three gpg runs,
        each O(1) in the number of keys here on its command line.
        """
        fpr, binary = _one_certificate(armored)
        digest = hashlib.sha256(binary).hexdigest()
        in_step = self.store.in_step()
        if in_step and self.store.digest(fpr) == digest:
            return fpr
        text = armored if isinstance(armored, str) else armored.decode("ascii", "replace")
        result = self.gpg.import_keys(text)
        if fpr not in (result.fingerprints or []):
            raise KeyringError(f"gpg did not import key {fpr}: {result.stderr.strip()}")
        self._refresh_keys([fpr], {fpr: digest}, in_step)
        return fpr

    def import_keys(self, certificates: Iterable[str | bytes]) -> list[str | KeyringError]:
        """Import many public keys in one gpg run (an operator moving a
        membership in): for each armoured certificate, its primary
        fingerprint, or the KeyringError saying why it was not imported.
        The store then learns them all, from one export and listing of the
        whole keyring.  O(total size) in process, plus gpg's own import.
        """
        out: list[str | KeyringError] = []
        data, digests = [], {}
        in_step = self.store.in_step()
        for armored in certificates:
            try:
                fpr, binary = _one_certificate(armored)
            except KeyringError as e:
                out.append(e)
                continue
            out.append(fpr)
            digest = hashlib.sha256(binary).hexdigest()
            if not (in_step and self.store.digest(fpr) == digest):
                data.append(binary)       # not already imported, byte for byte
                digests[fpr] = digest
        if not data:
            return out
        proc = self._run(["--status-fd", "1", "--import"], "importing keys",
                         input=b"".join(data), check=False)
        imported = set()
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            if line.startswith("[GNUPG:] IMPORT_OK "):
                imported.add(line.split()[-1].upper())
        if not imported and proc.returncode != 0:
            raise KeyringError(f"importing keys failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
        for i, fpr in enumerate(out):
            if isinstance(fpr, str) and fpr in digests and fpr not in imported:
                out[i] = KeyringError(f"gpg did not import key {fpr}")
        self._refresh_keys(sorted(imported), {f: d for f, d in digests.items() if f in imported},
                           in_step)
        return out

    def export(self, fpr: str) -> str:
        """The armoured public key ``fpr`` (with its subkeys and revocations)."""
        text = self.gpg.export_keys(fpr)
        if not text:
            raise KeyringError(f"no public key {fpr} to export")
        return text

    def export_secret(self, fpr: str) -> str:
        """The armoured secret key ``fpr`` (keys here have no passphrase)."""
        text = self.gpg.export_keys(fpr, secret=True, expect_passphrase=False)
        if not text:
            raise KeyringError(f"no secret key {fpr} to export")
        return text

    def keys(self) -> list[KeyInfo]:
        """Every public key with gpg's view of its validity.  One gpg run."""
        proc = self._run(["--with-colons", "--fixed-list-mode", "--list-keys"], "listing keys")
        return _parse_colons(proc.stdout.decode("utf-8", "replace"))

    def _key(self, fpr: str) -> KeyInfo:
        for key in self.keys():
            if key.fingerprint == fpr.upper():
                return key
        raise KeyringError(f"no public key {fpr} in {self.home}")

    # ---------------------------------------------------------- signing

    def clearsign(self, text: str, fpr: str, at: int | None = None) -> str:
        """Clearsign ``text`` (UTF-8) with key ``fpr``; returns the armoured text."""
        result = self._gpg(at).sign(text, keyid=fpr, clearsign=True)
        if not result.data:
            raise KeyringError(f"clearsigning with {fpr} failed: {result.stderr.strip()}")
        return result.data.decode("utf-8")

    def detach_sign(self, data: bytes, fpr: str, at: int | None = None) -> str:
        """Armoured detached binary (type 0x00) signature of ``data``, for PGP/MIME."""
        result = self._gpg(at).sign(data, keyid=fpr, clearsign=False, detach=True)
        if not result.data:
            raise KeyringError(f"signing with {fpr} failed: {result.stderr.strip()}")
        return result.data.decode("ascii")

    # ------------------------------------------------------- verifying

    def verify_gpg(self, data: bytes, signature: bytes | str | None = None) -> Verdict:
        """Verify with gpg itself (slow: one process per call).

        With ``signature`` None, ``data`` is a clearsigned block; otherwise
        ``signature`` (armoured or binary) is a detached signature over the
        exact bytes ``data``.  The verdict is read from gpg's status lines;
        ``sig_id`` is the SHA-256 of the signature packet, as in-process.
        """
        if signature is None:
            result = self.gpg.verify(data)
            sig_bytes = _signature_in_clearsigned(data)
        else:
            raw = signature.encode("ascii") if isinstance(signature, str) else signature
            with tempfile.NamedTemporaryFile(dir=self.home, suffix=".sig") as tmp:
                tmp.write(raw)
                tmp.flush()
                result = self.gpg.verify_data(tmp.name, data)
            sig_bytes = raw
        return self._verdict_from_status(result.stderr or "", sig_bytes)

    def _verdict_from_status(self, stderr: str, sig_bytes: bytes | None) -> Verdict:
        known: dict = {}
        try:
            if sig_bytes is not None:
                if sig_bytes.lstrip().startswith(b"-----BEGIN"):
                    sig_bytes = openpgp.dearmor(sig_bytes)[1]
                sig = openpgp.signature_packet(sig_bytes)
                known = {"sig_id": sig.sig_id, "created": sig.created}
        except openpgp.OpenPGPError:
            pass
        status: dict[str, list[str]] = {}
        for line in stderr.splitlines():
            if line.startswith("[GNUPG:] "):
                word, _, rest = line[9:].partition(" ")
                status.setdefault(word, rest.split())
        if "VALIDSIG" in status:
            fields = status["VALIDSIG"]
            known["fingerprint"] = fields[9] if len(fields) > 9 else fields[0]
            known["created"] = int(fields[2])
        for word, verdict in _GPG_VERDICTS.items():
            if word in status:
                keyid = status[word][0]
                if "fingerprint" not in known:
                    known["fingerprint"] = self._primary_of(keyid)
                detail = f"gpg: {word} {keyid}"
                return Verdict(verdict == "good", verdict, detail=detail, **known)
        if "ERRSIG" in status:
            fields = status["ERRSIG"]
            if len(fields) > 5 and fields[5] == "9" or "NO_PUBKEY" in status:
                return Verdict.failed("unknown-key", f"gpg: no public key {fields[0]}", **known)
            if len(fields) > 5 and fields[5] in _GPG_INVALID:
                if "fingerprint" not in known:
                    known["fingerprint"] = self._primary_of(fields[0])
                return Verdict.failed("invalid", f"gpg: {_GPG_INVALID[fields[5]]} ({fields[0]})", **known)
            return Verdict.failed("malformed", f"gpg: ERRSIG {' '.join(fields)}", **known)
        if "NODATA" in status or "BADARMOR" in status:
            return Verdict.failed("malformed", "gpg found no valid OpenPGP data", **known)
        return Verdict.failed("malformed", "gpg reported no signature verdict", **known)

    def _primary_of(self, keyid: str) -> str | None:
        keyid = keyid.upper()
        for key in self.keys():
            for k in (key, *key.subkeys):
                if k.fingerprint.endswith(keyid):
                    return key.fingerprint
        return None

    # ------------------------------------------------ the verifier's store

    @property
    def store(self) -> KeyStore:
        """The verifier's keys (``pit.keystore``), opened on first use."""
        if self._store is None:
            self._store = KeyStore(self.home)
        return self._store

    def load_verifier(self) -> openpgp.Verifier:
        """The in-process verifier of every public key here.

        Its keys come from the store (``pit.keystore``), which
        ``import_key`` and ``import_keys`` keep in step with gpg: O(1)
        whatever the number of keys, and the same verifier sees keys
        imported after it was made.  When the keyring was changed behind
        the store's back (gpg by hand), the store is rebuilt first: one
        export and one listing of the whole keyring, O(size of the
        keyring).  Expiry and revocation are gpg's judgement; a subkey
        inherits its primary's.
        """
        if not self.store.in_step():
            self.refresh_store()
        return StoreVerifier(self.store)

    def refresh_store(self) -> None:
        """Rebuild the store from gpg's export and listing of every key.
        Two gpg runs, neither naming a key.  O(size of the keyring)."""
        stamp = self.store.keyring_stamp()
        exported = self._run(["--export"], "exporting the public keys").stdout
        listing = self.keys()
        self.store.replace(_judged(exported, listing), stamp)

    def _refresh_keys(self, fprs: list[str], digests: dict[str, str], was_in_step: bool) -> None:
        """Bring the store's rows for certificates *fprs* up to date after an
        import.  A few keys: their own export and listing, O(1) in the size
        of the keyring (bounded command line); many, or a store that was
        out of step before: the whole keyring once."""
        stamp = self.store.keyring_stamp()
        if not was_in_step or len(fprs) > _FEW:
            self.refresh_store()
            self.store.replace([], self.store.stamp() or stamp, primaries=[], digests=digests)
            return
        exported = self._run(["--export", *fprs], "exporting the imported keys").stdout
        listing = _parse_colons(self._run(["--with-colons", "--fixed-list-mode", "--list-keys", *fprs],
                                          "listing the imported keys").stdout.decode("utf-8", "replace"))
        self.store.replace(_judged(exported, listing), stamp, primaries=fprs, digests=digests)


_FEW = 64        # certificates refreshed by name, at most: a bounded gpg command line


def _judged(exported: bytes, listing: list[KeyInfo]) -> list[tuple[openpgp.PublicKey, bytes]]:
    """The keys of binary export *exported* that gpg lists, with gpg's
    judgement (*listing*) filled in, each with its key packet's body."""
    info: dict[str, tuple[KeyInfo, KeyInfo]] = {}
    for primary in listing:
        info[primary.fingerprint] = (primary, primary)
        for sub in primary.subkeys:
            info[sub.fingerprint] = (primary, sub)
    bodies = [body for tag, body, _ in openpgp.iter_packets(exported)
              if tag in (openpgp.TAG_PUBLIC_KEY, openpgp.TAG_PUBLIC_SUBKEY)] if exported else []
    keys = openpgp.parse_keys(exported) if exported else []
    out = []
    for key, body in zip(keys, bodies):
        if key.fingerprint not in info:
            continue                      # not listed by gpg: not valid to it
        primary, own = info[key.fingerprint]
        key.revoked = primary.revoked or own.revoked
        ends = [e for e in (primary.expires, own.expires) if e is not None]
        key.expires = min(ends) if ends else None
        if (primary.expired or own.expired) and key.expires is None:
            key.expires = 0               # gpg says expired: trust it
        key.can_sign = own.can_sign
        out.append((key, body))
    return out


def certificate_fingerprint(armored: str | bytes) -> str:
    """The primary fingerprint of one armoured certificate a pit can use,
    read in process (no gpg); KeyringError says why not.  O(len)."""
    return _one_certificate(armored)[0]


def _one_certificate(armored: str | bytes) -> tuple[str, bytes]:
    """(primary fingerprint, binary) of one armoured certificate a pit can
    use, or KeyringError saying why not."""
    data = armored.encode("ascii", "replace") if isinstance(armored, str) else armored
    try:
        _label, binary = openpgp.dearmor(data)
        keys = openpgp.parse_keys(binary)
    except openpgp.OpenPGPError as exc:
        raise KeyringError(f"not an OpenPGP public key: {exc}") from None
    primaries = [k for k in keys if k.fingerprint == k.primary_fingerprint]
    if len(primaries) != 1:
        raise KeyringError(f"expected one public key, found {len(primaries)}")
    if primaries[0].material is None:
        raise KeyringError(f"key {primaries[0].fingerprint} uses algorithm {primaries[0].algo}; "
                           "a pit accepts ed25519 and RSA keys")
    return primaries[0].fingerprint, binary


def _signature_in_clearsigned(block: bytes | str) -> bytes | None:
    """The binary signature in a clearsigned block, or None if unreadable."""
    if isinstance(block, str):
        block = block.encode("utf-8", "replace")
    start = block.find(b"-----BEGIN PGP SIGNATURE-----")
    if start < 0:
        return None
    try:
        return openpgp.dearmor(block[start:])[1]
    except openpgp.OpenPGPError:
        return None


def _parse_colons(text: str) -> list[KeyInfo]:
    """Parse ``gpg --with-colons --fixed-list-mode --list-keys`` output."""
    keys: list[dict] = []
    current: dict | None = None
    for line in text.splitlines():
        f = line.split(":")
        kind = f[0]
        if kind in ("pub", "sub"):
            current = {"keyid": f[4], "algo": int(f[3] or 0), "created": int(f[5] or 0),
                       "expires": int(f[6]) if f[6] else None, "validity": f[1],
                       "capabilities": f[11], "uids": [], "subkeys": [], "fingerprint": ""}
            if kind == "pub":
                keys.append(current)
            else:
                keys[-1]["subkeys"].append(current)
        elif kind == "fpr" and current is not None and not current["fingerprint"]:
            current["fingerprint"] = f[9]
        elif kind == "uid" and keys:
            keys[-1]["uids"].append(f[9])

    def build(d: dict) -> KeyInfo:
        return KeyInfo(d["fingerprint"], d["keyid"], d["algo"], d["created"], d["expires"],
                       d["validity"], d["capabilities"], tuple(d["uids"]),
                       tuple(build(s) for s in d["subkeys"]))

    return [build(k) for k in keys]
