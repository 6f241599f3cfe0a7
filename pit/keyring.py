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
import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pit import openpgp
from pit.keystore import SHARDS, KeyStore, StoreVerifier, homes
from pit.openpgp import Verdict

__all__ = ["Keyring", "KeyringError", "KeyInfo", "Verdict", "ALGORITHMS", "gpg_home",
           "certificate_fingerprint", "shard_of"]

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
# and none for a system user); a Unix socket path has room for 107 bytes
# and the longest name is "S.gpg-agent.browser", but gpg-agent refuses a
# socket path of 107 (a home of 87 characters fails, 86 works): 106 is the
# most it takes.  A home whose path is longer than this is reached through
# a short symbolic link instead.
_SOCKET_ROOM = 106 - len("/S.gpg-agent.browser")


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
             input: bytes | None = None, check: bool = True,
             home: str = "") -> subprocess.CompletedProcess:
        """gpg subcommands python-gnupg has no method for (--quick-set-expire),
        and every run in a shard (*home* 'shards/XYZ'), which starts no agent."""
        # Keys here have no passphrase; loopback keeps the agent from
        # looking for a terminal to ask on.
        cmd = [self.gpgbinary, "--homedir", self._gpg_path(home), "--batch", "--yes",
               "--pinentry-mode", "loopback", "--passphrase", "", *self._options]
        if home:
            cmd.append("--no-autostart")
        if at is not None:
            cmd += ["--faked-system-time", f"{int(at)}!"]
        proc = subprocess.run(cmd + args, input=input, capture_output=True)
        if check and proc.returncode != 0:
            raise KeyringError(f"{what} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
        return proc

    def close(self) -> None:
        """Close the verifier's store if it was opened (its SQLite file at
        rest, not left for the garbage collector to close)."""
        if self._store is not None:
            self._store.close()
            self._store = None

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
        home = self._find(fpr)
        # gpg prefixes the armour with ':' so that it is not imported by accident
        binary = openpgp.dearmor(path.read_bytes().replace(b":-----BEGIN", b"-----BEGIN"))[1]
        in_step = self.store.in_step(home)
        self._run(["--import"], f"importing the revocation of {fpr}", input=binary, home=home)
        self._refresh_keys(home, [fpr], {}, in_step)

    # ----------------------------------------------------- the shard homes

    def _home_for(self, fpr: str) -> str:
        """The home ('' main, 'shards/XYZ') holding certificate *fpr*, as the
        store knows it; a certificate it does not know goes to its shard."""
        known = self.store.home_of(fpr)
        return known if known is not None else shard_of(fpr)

    def _find(self, fpr: str) -> str:
        """Where to look for certificate *fpr*: as ``_home_for``, without
        opening the store of a home that has no shards (a signing home)."""
        if not (self.home / SHARDS).is_dir():
            return ""
        home = self._home_for(fpr)
        return home if (self.home / home).is_dir() else ""

    def home_for(self, fpr: str) -> Path:
        """The GnuPG home directory that holds certificate *fpr* (the main
        home when none does): what to give ``gpg --homedir`` to check a
        signature by it by hand.  O(log n)."""
        home = self._find(fpr)
        return self.home / home if home else self.home

    def home_for_signature(self, sig: bytes) -> Path:
        """The GnuPG home holding the key that signature *sig* (binary or
        armoured, or a clearsigned block) names; the main home when none does."""
        if b"-----BEGIN PGP SIGNED MESSAGE-----" in sig[:4096]:
            sig = _signature_in_clearsigned(sig)
        home = self._signer_home(sig)
        return self.home / home if home else self.home

    def _gpg_path(self, home: str) -> str:
        # a shard runs no agent (--no-autostart), so its path needs no socket room
        return os.path.join(self.gpg_home, home) if home else self.gpg_home

    def _make_shard(self, home: str) -> None:
        """Make shard *home* if it is not there: a GnuPG home with its keybox
        and trustdb (gpg with ``--trust-model always`` makes no trustdb, then
        stops with "Fatal: can't open trustdb.gpg" importing a revocation)."""
        path = self.home / home
        if (path / "trustdb.gpg").exists():
            return
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        cmd = [self.gpgbinary, "--homedir", self._gpg_path(home), "--batch", "--no-autostart",
               "--trust-model", "pgp", "--check-trustdb"]
        proc = subprocess.run(cmd, capture_output=True)
        if proc.returncode != 0:
            raise KeyringError(f"making GnuPG home {path} failed: "
                               f"{proc.stderr.decode('utf-8', 'replace').strip()}")

    def _main_in_step(self) -> None:
        """Before placing certificates: the store knows what the main home
        holds (a key imported there by hand is updated there, not copied to
        a shard).  One stat when nothing changed."""
        if not self.store.in_step(""):
            self._refresh_home("")

    def import_key(self, armored: str | bytes, expect: str | None = None) -> str:
        """Import one public key (armoured); returns its primary fingerprint.

        Refuses anything but exactly one certificate, and keys whose
        primary algorithm the pit cannot verify in process.  The key goes
        to the home the store says holds it, else to its shard.  The store
        (``load_verifier``) learns the key at once.  A certificate imported
        before, byte for byte, is not given to gpg again.  With *expect*, a
        certificate of another key is refused before gpg sees it (the key
        block of a member request naming *expect*).  Three gpg runs,
        each O(1) in the number of keys here on its command line and over a
        shard of O(keys / 4096) keys.
        """
        fpr, binary = _one_certificate(armored)
        if expect is not None and fpr != expect.upper():
            raise KeyringError(f"it is key {fpr}, the request names {expect}")
        digest = hashlib.sha256(binary).hexdigest()
        self._main_in_step()
        home = self._home_for(fpr)
        in_step = self.store.in_step(home)
        if in_step and self.store.digest(fpr) == digest:
            return fpr
        imported, reasons = self._import(home, binary)
        if fpr not in imported:
            raise KeyringError(f"gpg did not import key {fpr}: {reasons.get(fpr[-16:], '?')}")
        self._refresh_keys(home, [fpr], {fpr: digest}, in_step)
        return fpr

    def import_revocation(self, armored: str | bytes) -> str:
        """Import a revocation certificate (``gpg --gen-revoke``'s, or the one
        gpg made at key generation) into the home of the key it revokes;
        returns that key's fingerprint.  The store learns it at once."""
        data = armored.encode("ascii", "replace") if isinstance(armored, str) else armored
        try:
            binary = openpgp.dearmor(data.replace(b":-----BEGIN", b"-----BEGIN"))[1]
            sig = openpgp.signature_packet(binary)
        except openpgp.OpenPGPError as exc:
            raise KeyringError(f"not a revocation certificate: {exc}") from None
        key = self.store.key(sig.issuer_fpr or sig.issuer_keyid or "")
        if key is None:
            raise KeyringError(f"no key {sig.issuer_keyid} here to revoke")
        fpr = key.primary_fingerprint
        home = self._home_for(fpr)
        in_step = self.store.in_step(home)
        self._run(["--import"], f"importing the revocation of {fpr}", input=binary, home=home)
        self._refresh_keys(home, [fpr], {}, in_step)
        return fpr

    def _import(self, home: str, binary: bytes) -> tuple[set[str], dict[str, str]]:
        """``gpg --import`` of *binary* into *home*: (fingerprints gpg
        imported, {key id: gpg's reason} for what it did not)."""
        if home:
            self._make_shard(home)
        proc = self._run(["--status-fd", "1", "--import"], "importing keys", input=binary,
                         check=False, home=home)
        imported = set()
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            if line.startswith("[GNUPG:] IMPORT_OK "):
                imported.add(line.split()[-1].upper())
        reasons: dict[str, str] = {}
        for line in proc.stderr.decode("utf-8", "replace").splitlines():
            head, sep, why = line.partition(": ")
            if head == "gpg" and why.startswith("key ") and ":" in why[4:]:
                keyid, _, why = why[4:].partition(":")
                reasons.setdefault(keyid.strip().upper()[-16:], why.strip())
        if not imported and proc.returncode != 0 and not reasons:
            raise KeyringError(f"importing keys failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
        return imported, reasons

    def import_keys(self, certificates: Iterable[str | bytes]) -> list[str | KeyringError]:
        """Import many public keys (an operator moving a membership in): for
        each armoured certificate, its primary fingerprint, or the
        KeyringError saying why it was not imported.  One gpg import per
        home touched (shards in parallel, one per core), then the store
        learns each home's keys from one export and listing of that home.
        O(total size) in process, plus gpg's imports: O(shard) a key.
        """
        out: list[str | KeyringError] = []
        self._main_in_step()
        todo: dict[str, dict[str, tuple[bytes, str]]] = {}      # home -> fpr -> (binary, digest)
        in_step: dict[str, bool] = {}
        for armored in certificates:
            try:
                fpr, binary = _one_certificate(armored)
            except KeyringError as e:
                out.append(e)
                continue
            out.append(fpr)
            digest = hashlib.sha256(binary).hexdigest()
            home = self._home_for(fpr)
            if home not in in_step:
                in_step[home] = self.store.in_step(home)
            if not (in_step[home] and self.store.digest(fpr) == digest):
                todo.setdefault(home, {})[fpr] = (binary, digest)   # not imported, byte for byte
        if not todo:
            return out

        def one(home: str):
            certs = todo[home]
            imported, reasons = self._import(home, b"".join(b for b, _ in certs.values()))
            got = sorted(f for f in certs if f in imported)
            whole = not in_step[home] or len(got) > _FEW
            read = self._read(home, None if whole else got) if got else None
            return home, imported, reasons, got, read

        from concurrent.futures import ThreadPoolExecutor
        failed: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(len(todo), os.cpu_count() or 1))) as pool:
            for home, imported, reasons, got, read in pool.map(one, sorted(todo)):
                certs = todo[home]
                for fpr in certs:
                    if fpr not in imported:
                        failed[fpr] = reasons.get(fpr[-16:], "?")
                if read is not None:
                    self._write(home, read, got, {f: certs[f][1] for f in got})
        for i, fpr in enumerate(out):
            if isinstance(fpr, str) and fpr in failed:
                out[i] = KeyringError(f"gpg did not import key {fpr}: {failed[fpr]}")
        return out

    def export(self, fpr: str) -> str:
        """The armoured public key ``fpr`` (with its subkeys and revocations)."""
        for home in dict.fromkeys((self._find(fpr), "")):
            data = self._run(["--armor", "--export", fpr], f"exporting {fpr}", home=home,
                             check=False).stdout
            if data:
                return data.decode("ascii")
        raise KeyringError(f"no public key {fpr} to export")

    def export_secret(self, fpr: str) -> str:
        """The armoured secret key ``fpr`` (keys here have no passphrase)."""
        text = self.gpg.export_keys(fpr, secret=True, expect_passphrase=False)
        if not text:
            raise KeyringError(f"no secret key {fpr} to export")
        return text

    def keys(self) -> list[KeyInfo]:
        """Every public key with gpg's view of its validity: one gpg run a
        home (the main one and every shard).  O(keyring): for a few keys
        use ``key``, or the store."""
        out = []
        for home in homes(self.home):
            proc = self._run(["--with-colons", "--fixed-list-mode", "--list-keys"],
                             "listing keys", home=home)
            out += _parse_colons(proc.stdout.decode("utf-8", "replace"))
        return out

    def key(self, fpr: str) -> KeyInfo:
        """gpg's listing of certificate *fpr*: one gpg run naming it."""
        return self._key(fpr)

    def _key(self, fpr: str) -> KeyInfo:
        for home in dict.fromkeys((self._find(fpr), "")):
            proc = self._run(["--with-colons", "--fixed-list-mode", "--list-keys", fpr],
                             f"listing {fpr}", home=home, check=False)
            for key in _parse_colons(proc.stdout.decode("utf-8", "replace")):
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
            if isinstance(data, str):
                data = data.encode("utf-8")
            sig_bytes = _signature_in_clearsigned(data)
            home = self._signer_home(sig_bytes)
            proc = self._run(["--status-fd", "2", "--verify"], "verifying", input=data,
                             check=False, home=home)
        else:
            raw = signature.encode("ascii") if isinstance(signature, str) else signature
            sig_bytes = raw
            home = self._signer_home(raw)
            with tempfile.NamedTemporaryFile(dir=self.home, suffix=".sig") as tmp:
                tmp.write(raw)
                tmp.flush()
                proc = self._run(["--status-fd", "2", "--verify", tmp.name, "-"], "verifying",
                                 input=data, check=False, home=home)
        return self._verdict_from_status(proc.stderr.decode("utf-8", "replace"), sig_bytes, home)

    def _signer_home(self, sig_bytes: bytes | None) -> str:
        """The home holding the key a signature names (the store says), else
        the main home: gpg judges the signature there."""
        try:
            if sig_bytes.lstrip().startswith(b"-----BEGIN"):
                sig_bytes = openpgp.dearmor(sig_bytes)[1]
            sig = openpgp.signature_packet(sig_bytes)
        except (openpgp.OpenPGPError, AttributeError):
            return ""
        if not (self.home / SHARDS).is_dir():
            return ""
        key = self.store.key(sig.issuer_fpr or sig.issuer_keyid or "")
        return self._find(key.primary_fingerprint) if key is not None else ""

    def _verdict_from_status(self, stderr: str, sig_bytes: bytes | None, home: str = "") -> Verdict:
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
                    known["fingerprint"] = self._primary_of(keyid, home)
                detail = f"gpg: {word} {keyid}"
                return Verdict(verdict == "good", verdict, detail=detail, **known)
        if "ERRSIG" in status:
            fields = status["ERRSIG"]
            if len(fields) > 5 and fields[5] == "9" or "NO_PUBKEY" in status:
                return Verdict.failed("unknown-key", f"gpg: no public key {fields[0]}", **known)
            if len(fields) > 5 and fields[5] in _GPG_INVALID:
                if "fingerprint" not in known:
                    known["fingerprint"] = self._primary_of(fields[0], home)
                return Verdict.failed("invalid", f"gpg: {_GPG_INVALID[fields[5]]} ({fields[0]})", **known)
            return Verdict.failed("malformed", f"gpg: ERRSIG {' '.join(fields)}", **known)
        if "NODATA" in status or "BADARMOR" in status:
            return Verdict.failed("malformed", "gpg found no valid OpenPGP data", **known)
        return Verdict.failed("malformed", "gpg reported no signature verdict", **known)

    def _primary_of(self, keyid: str, home: str = "") -> str | None:
        keyid = keyid.upper()
        owners = self.store.owners(keyid[-16:])
        if len(owners) == 1:
            return next(iter(owners))
        proc = self._run(["--with-colons", "--fixed-list-mode", "--list-keys"], "listing keys",
                         home=home, check=False)
        for key in _parse_colons(proc.stdout.decode("utf-8", "replace")):
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
        """The in-process verifier of every public key here (main home and
        shards).

        Its keys come from the store (``pit.keystore``), which
        ``import_key`` and ``import_keys`` keep in step with gpg: O(homes)
        stats whatever the number of keys, and the same verifier sees keys
        imported after it was made.  A home changed behind the store's back
        (gpg by hand) is read again first: one export and one listing of
        that home, O(its size).  Expiry and revocation are gpg's judgement;
        a subkey inherits its primary's.
        """
        for home in self.store.stale():
            self._refresh_home(home)
        return StoreVerifier(self.store)

    def refresh_store(self) -> None:
        """Rebuild the store from gpg's export and listing of every home.
        Two gpg runs a home, neither naming a key.  O(size of the keyring)."""
        for home in dict.fromkeys(self.store.homes() + self.store.stale()):
            self._refresh_home(home)

    def _refresh_home(self, home: str, digests: dict[str, str] | None = None) -> None:
        self._write(home, self._read(home, None), None, digests)

    def _read(self, home: str, fprs: list[str] | None):
        """gpg's view of *home* (``fprs`` None) or of its certificates
        *fprs*: (stamp before reading, judged keys).  Two gpg runs."""
        if home and not (self.home / home).is_dir():
            return "", []                 # a shard that went away
        stamp = self.store.keyring_stamp(home)
        names = list(fprs or ())
        exported = self._run(["--export", *names], "exporting keys", home=home).stdout
        listing = _parse_colons(self._run(["--with-colons", "--fixed-list-mode", "--list-keys", *names],
                                          "listing keys", home=home,
                                          check=bool(names)).stdout.decode("utf-8", "replace"))
        if not stamp:
            stamp = self.store.keyring_stamp(home)     # gpg made the keyring just now
        return stamp, _judged(exported, listing)

    def _write(self, home: str, read, fprs: list[str] | None, digests: dict[str, str] | None) -> None:
        stamp, keys = read
        self.store.replace(home, keys, stamp, primaries=fprs, digests=digests)

    def _refresh_keys(self, home: str, fprs: list[str], digests: dict[str, str],
                      was_in_step: bool) -> None:
        """Bring the store's rows for certificates *fprs* of *home* up to
        date after an import.  A few keys: their own export and listing, O(1)
        in the size of the keyring (bounded command line); many, or a home
        that was out of step before: that whole home once."""
        if not was_in_step or len(fprs) > _FEW:
            self._write(home, self._read(home, None), None, digests)
        else:
            self._write(home, self._read(home, fprs), fprs, digests)


_TAG_SECRET_KEY, _TAG_SECRET_SUBKEY = 5, 7
_FEW = 64        # certificates refreshed by name, at most: a bounded gpg command line


def shard_of(fpr: str) -> str:
    """The shard home of certificate *fpr*: ``shards/`` and the first three
    hex digits of its fingerprint (4,096 homes; ~250 keys each at a million
    members, where a gpg import costs milliseconds)."""
    return f"{SHARDS}/{fpr[:3].upper()}"


def _judged(exported: bytes, listing: list[KeyInfo]) -> list[tuple[openpgp.PublicKey, bytes, tuple]]:
    """The keys of binary export *exported* that gpg lists, with gpg's
    judgement (*listing*) filled in, each with its key packet's body and
    (a primary) its user ids."""
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
        uids = primary.uids if own is primary else ()
        key.revoked = primary.revoked or own.revoked
        ends = [e for e in (primary.expires, own.expires) if e is not None]
        key.expires = min(ends) if ends else None
        if (primary.expired or own.expired) and key.expires is None:
            key.expires = 0               # gpg says expired: trust it
        key.can_sign = own.can_sign
        out.append((key, body, uids))
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
        tags = {tag for tag, _, _ in openpgp.iter_packets(binary)}
        if tags & {_TAG_SECRET_KEY, _TAG_SECRET_SUBKEY}:
            raise KeyringError("a secret key: a pit takes public keys only "
                               "(gpg --export, not --export-secret-keys); not imported")
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
    # at a line's start: a dash-escaped line of the text ("- -----BEGIN PGP
    # SIGNATURE-----") is not the signature
    found = re.search(rb"(?m)^-----BEGIN PGP SIGNATURE-----", block)
    if found is None:
        return None
    start = found.start()
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
