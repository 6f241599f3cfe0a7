"""Keys and signatures made by stock gpg over a matrix, for judging verifiers.

``build(algos, full=False)`` makes, in GnuPG homes with short paths under
/tmp (agent socket paths over ~100 characters fail), for each key
algorithm a certificate whose keys cover what a verifier must tell apart:

* ``primary``: the primary key (sign + certify);
* ``sub``: a signing subkey;
* ``sub-expired``: a signing subkey that expired (10 days after creation);
* ``sub-revoked``: a signing subkey revoked after it signed;
* ``sub-nobacksig``: a signing subkey whose published binding lacks its
  back signature (not cross-certified: gpg refuses its signatures, as a
  subkey anyone could have claimed);
* ``sub-nosign``: a subkey whose published binding signature grants no
  signing (authentication for ed25519, encryption for RSA), though its
  secret key did sign: the signature is made in the signing home, where the
  same key material is a signing subkey (gpg: "Wrong key usage").

Times are faked (``--faked-system-time``) from a base ``B`` 400 days ago.
Every signature is made by gpg, each at a chosen time: a normal time, an
hour *before* its key was made (``--ignore-time-conflict``: gpg says "Time
conflict" when checking), 30 days in the future.  Then every hash gpg will
sign with, critical and plain notations, a critical policy URL, a signature
that expires.  Each is made both clearsigned (type 0x01) and as a detached
binary signature over a PGP/MIME part (type 0x00), and each has a tampered
twin.  ``Case.gpg_status`` is what stock gpg says, read from its status
lines (never its exit code).

Every home's gpg-agent is stopped in ``Matrix.close`` (and in ``build`` on
any failure).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAY = 86400
QUICK = {"ed25519": "ed25519", "rsa2048": "rsa2048", "rsa3072": "rsa3072"}
HASHES_ALL = ("MD5", "SHA1", "RIPEMD160", "SHA224", "SHA256", "SHA384", "SHA512")
TEXT = "Pit: demo\nAccount: alice\nRef: {ref}\nOrder: buy 100 ACME at 12.50\n"


class Home:
    """One GnuPG home; every gpg run is a process with status lines."""

    def __init__(self, path: Path, agent: bool = True):
        self.path = Path(path)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A home that only imports and verifies needs no gpg-agent: none is
        # started, so none can outlive a run that is killed.
        self.agent = agent

    def gpg(self, *args: str, at: int | None = None, input: bytes | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["gpg", "--homedir", str(self.path), "--batch", "--yes", "--pinentry-mode",
               "loopback", "--passphrase", "", "--trust-model", "always", "--status-fd", "2"]
        if at is not None:
            cmd += ["--faked-system-time", f"{at}!"]
        if not self.agent:
            cmd.append("--no-autostart")
        p = subprocess.run(cmd + list(args), input=input, capture_output=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"gpg {' '.join(args)}: {p.stderr.decode('utf-8', 'replace')}")
        return p

    def listing(self) -> list[list[str]]:
        out = self.gpg("--with-colons", "--with-keygrip", "--fixed-list-mode", "--list-keys").stdout
        return [line.split(":") for line in out.decode().splitlines()]

    def keys(self) -> list[tuple[str, str, str]]:
        """(fingerprint, keygrip, capabilities) of every key, listing order."""
        out, cur = [], None
        for f in self.listing():
            if f[0] in ("pub", "sub"):
                cur = [None, None, f[11]]
                out.append(cur)
            elif f[0] == "fpr" and cur and cur[0] is None:
                cur[0] = f[9]
            elif f[0] == "grp" and cur and cur[1] is None:
                cur[1] = f[9]
        return [tuple(k) for k in out]

    def stop(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.path), "--kill", "all"],
                       capture_output=True, check=False)


@dataclass
class Case:
    """One signed message, its verdict by stock gpg, and how it was made."""
    algo: str
    key: str                     # primary, sub, sub-expired, ...
    when: str                    # normal, before-key, future, ...
    hash: str
    mode: str                    # clearsigned or pgp-mime
    extra: str                   # "", notation, critical-notation, ...
    tampered: bool
    message: bytes
    gpg_status: str = ""         # GOODSIG, BADSIG, ERRSIG 125, EXPKEYSIG, ...
    created: int | None = None

    @property
    def name(self) -> str:
        return "/".join(x for x in (self.algo, self.key, self.when, self.hash, self.mode,
                                    self.extra, "tampered" if self.tampered else "") if x)


@dataclass
class Matrix:
    base: int
    root: Path
    verify_home: Home
    homes: list[Home] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # combinations gpg would not sign

    def close(self) -> None:
        for h in self.homes:
            h.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _certificate(root: Path, algo: str, base: int, homes: list[Home]) -> tuple[Home, Home, dict]:
    """(signing home, published home, {key name: (fingerprint, created)})."""
    signer = Home(root / f"{algo}s")
    homes.append(signer)
    signer.gpg("--quick-gen-key", f"{algo} <{algo}@pit.test>", QUICK[algo], "sign,cert", "never", at=base)
    primary = signer.keys()[0][0]
    made = {"primary": (primary, base)}
    for i, (name, expire) in enumerate((("sub", "never"), ("sub-expired", "10d"),
                                        ("sub-revoked", "never"), ("sub-nobacksig", "never")),
                                       start=1):
        signer.gpg("--quick-add-key", primary, QUICK[algo], "sign", expire, at=base + i * DAY)
        made[name] = (signer.keys()[-1][0], base + i * DAY)
    published = Home(root / f"{algo}p")
    homes.append(published)
    shutil.copytree(signer.path, published.path, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("S.*", "*.lock"))
    # The same key material: a signing subkey for the signer, a subkey
    # that may not sign in the published certificate.
    at = base + 5 * DAY
    signer.gpg("--quick-add-key", primary, QUICK[algo], "sign", "never", at=at)
    fpr, grip, _caps = signer.keys()[-1]
    made["sub-nosign"] = (fpr, at)
    shutil.copy2(signer.path / "private-keys-v1.d" / f"{grip}.key",
                 published.path / "private-keys-v1.d" / f"{grip}.key")
    # sign off, then auth on (ed25519); RSA starts as sign + encrypt
    toggles = "S\nA\n" if algo == "ed25519" else "S\n"
    published.gpg("--expert", "--command-fd", "0", "--edit-key", primary, at=at,
                  input=f"addkey\n13\n{grip}\n{toggles}Q\n0\nsave\n".encode())
    caps = {k[0]: k[2] for k in published.keys()}
    if caps.get(fpr) not in ("a", "e"):
        raise RuntimeError(f"{algo}: the no-sign subkey was published with usage {caps.get(fpr)!r}")
    # Revoke the revoked subkey in the published certificate only, later.
    index = [k[0] for k in published.keys()].index(made["sub-revoked"][0])
    published.gpg("--command-fd", "0", "--edit-key", primary, at=base + 20 * DAY,
                  input=f"key {index}\nrevkey\ny\n0\n\ny\nsave\n".encode())
    return signer, published, made


def _packet(tag: int, body: bytes) -> bytes:
    """A new-format packet header (five-octet length) and ``body``."""
    return bytes([0xC0 | tag, 255]) + len(body).to_bytes(4, "big") + body


def strip_backsig(cert: bytes, subkey_fpr: str) -> bytes:
    """``cert`` with the primary-key binding signature (the "back
    signature", subpacket 32, which gpg writes in the unhashed area) taken
    out of the binding signatures of subkey ``subkey_fpr``: the binding
    still verifies, but the subkey is no longer cross-certified."""
    import hashlib
    out, in_subkey = [], False
    from pit import openpgp
    for tag, body, whole in openpgp.iter_packets(cert):
        if tag == openpgp.TAG_PUBLIC_SUBKEY:
            fpr = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
            in_subkey = fpr == subkey_fpr
        elif tag == openpgp.TAG_PUBLIC_KEY:
            in_subkey = False
        elif tag == openpgp.TAG_SIGNATURE and in_subkey and body[1] == 0x18:
            h = 6 + int.from_bytes(body[4:6], "big")
            ulen = int.from_bytes(body[h:h + 2], "big")
            area, pos, kept = body[h + 2:h + 2 + ulen], 0, b""
            while pos < len(area):
                first = area[pos]
                size, head = (first, 1) if first < 192 else (((first - 192) << 8) + area[pos + 1] + 192, 2) \
                    if first < 255 else (int.from_bytes(area[pos + 1:pos + 5], "big"), 5)
                if area[pos + head] & 0x7F != 32:
                    kept += area[pos:pos + head + size]
                pos += head + size
            assert len(kept) < len(area), "no back signature to strip"
            whole = _packet(tag, body[:h] + len(kept).to_bytes(2, "big") + kept + body[h + 2 + ulen:])
        out.append(whole)
    return b"".join(out)


def _gpg_status(stderr: bytes) -> str:
    """Stock gpg's verdict from its status lines: the first verdict keyword
    (and an ERRSIG's return code)."""
    for line in stderr.decode("utf-8", "replace").splitlines():
        if not line.startswith("[GNUPG:] "):
            continue
        words = line[9:].split()
        if words and words[0] in ("GOODSIG", "BADSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG"):
            return words[0]
        if words and words[0] == "ERRSIG":
            return f"ERRSIG {words[6] if len(words) > 6 else '?'}"
    return "NODATA"


def _mail(body: bytes, headers: bytes = b"") -> bytes:
    return b"From: alice@pit.test\nTo: demo@pit.test\nSubject: order\n" + headers + b"\n" + body


def _pgp_mime(part: bytes, armoured: bytes) -> bytes:
    return _mail(b"preamble\n--b1\n" + part + b"\n--b1\n"
                 b"Content-Type: application/pgp-signature\n\n" + armoured + b"\n--b1--\n",
                 b'MIME-Version: 1.0\nContent-Type: multipart/signed; micalg=pgp-sha256;'
                 b' protocol="application/pgp-signature"; boundary="b1"\n')


def _sign(signer: Home, work: Path, keyfpr: str, at: int, digest: str, mode: str,
          extra: list[str], ref: str) -> tuple[bytes, bytes] | None:
    """(message, tampered message), or None when gpg will not make it."""
    text = TEXT.format(ref=ref).encode()
    common = ["-u", keyfpr + "!", "--digest-algo", digest, "--ignore-time-conflict", "--ignore-valid-from", *extra]
    if mode == "clearsigned":
        p = signer.gpg(*common, "--clearsign", at=at, input=text, check=False)
        if p.returncode != 0 or not p.stdout:
            return None
        msg = _mail(p.stdout, b"Content-Type: text/plain; charset=utf-8\n")
    else:
        part = b"Content-Type: text/plain; charset=utf-8\n\n" + text
        canonical = part.replace(b"\n", b"\r\n")
        p = signer.gpg(*common, "--armor", "--detach-sign", at=at, input=canonical, check=False)
        if p.returncode != 0 or not p.stdout:
            return None
        msg = _pgp_mime(part, p.stdout)
    return msg, msg.replace(b"buy 100", b"buy 900", 1)


def _gpg_verify(home: Home, work: Path, msg: bytes) -> str:
    """Stock gpg's verdict on one message, the way docs/verifying.md checks one."""
    from pit import signed
    try:
        s = signed.extract(msg)
    except signed.SignedError:
        return "NODATA"
    if s.kind == "clearsigned":
        (work / "m.asc").write_bytes(s.gpg_input)
        p = home.gpg("--verify", str(work / "m.asc"), check=False)
    else:
        (work / "m.sig").write_bytes(s.gpg_input)
        (work / "m.part").write_bytes(s.signed_bytes)
        p = home.gpg("--verify", str(work / "m.sig"), str(work / "m.part"), check=False)
    return _gpg_status(p.stderr)


def build(algos=("ed25519", "rsa2048"), full: bool = False) -> Matrix:
    """Make the matrix (see the module docstring).

    ``full`` crosses every key, time, hash and mode; otherwise every key
    and time with SHA-256, and every hash with the primary key and the
    signing subkey at the normal time, which covers each dimension at a
    fraction of the gpg runs.
    """
    root = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    base = int(time.time()) - 400 * DAY
    homes: list[Home] = []
    verify_home = Home(root / "v", agent=False)
    homes.append(verify_home)
    matrix = Matrix(base, root, verify_home, homes)
    try:
        work = root / "w"
        work.mkdir()
        ref = itertools.count(1)
        for algo in algos:
            signer, published, made = _certificate(root, algo, base, homes)
            exported = strip_backsig(published.gpg("--export", made["primary"][0]).stdout,
                                     made["sub-nobacksig"][0])
            verify_home.gpg("--import", input=exported)
            times = {"normal": lambda c: c + 5 * DAY, "before-key": lambda c: c - 3600,
                     "future": lambda c: int(time.time()) + 30 * DAY}
            combos = []
            for key, when, digest, mode in itertools.product(
                    made, times, HASHES_ALL, ("clearsigned", "pgp-mime")):
                if not full and digest != "SHA256" and not (
                        when == "normal" and key in ("primary", "sub")):
                    continue
                combos.append((key, when, digest, mode, ""))
            extras = {"notation": ["--sig-notation", "note@pit.test=hello"],
                      "critical-notation": ["--sig-notation", "!crit@pit.test=1"],
                      "critical-policy-url": ["--sig-policy-url", "!https://pit.test/policy"],
                      "sig-expired": ["--default-sig-expire", "1d"]}
            for name in extras:
                for mode in ("clearsigned", "pgp-mime"):
                    combos.append(("sub", "normal", "SHA256", mode, name))
            for key, when, digest, mode, extra in combos:
                fpr, created = made[key]
                at = times[when](created)
                made_ = _sign(signer, work, fpr, at, digest, mode, extras.get(extra, []), str(next(ref)))
                if made_ is None:
                    matrix.skipped.append(f"{algo}/{key}/{when}/{digest}/{mode}/{extra}")
                    continue
                for tampered, msg in zip((False, True), made_):
                    matrix.cases.append(Case(algo, key, when, digest, mode, extra, tampered, msg,
                                             created=at))
            signer.stop()
            published.stop()
        for case in matrix.cases:
            case.gpg_status = _gpg_verify(verify_home, work, case.message)
    except BaseException:
        matrix.close()
        raise
    return matrix
