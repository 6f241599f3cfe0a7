"""What was signed in a mail message, exactly as the signature covers it.

Traders' mail clients sign in two ways, and ``extract`` finds both:

* **inline clearsigned** (``-----BEGIN PGP SIGNED MESSAGE-----``): the body
  may be plain 7bit/8bit (the hot path: a byte search for the armour
  lines, no ``email`` parsing), quoted-printable or base64, or the first
  text part of a multipart/mixed message (some webmail plugins).  The
  signed bytes are the cleartext as gpg hashes it: dash-escapes undone,
  trailing spaces, tabs and CRs cut from every line, lines joined with
  CRLF, and the line ending before the signature armour left out;
* **PGP/MIME** (RFC 3156 ``multipart/signed`` with
  ``protocol="application/pgp-signature"``): the signed bytes are the
  first part's exact bytes between the boundary lines, sliced from the
  original message (never re-serialised), with every line ending made
  CRLF.  The CRLF before the next boundary belongs to that boundary, so a
  part that ends without a newline is signed without one.

Anything outside the signed part (other headers, footers, other parts) is
ignored.  A leading mbox ``From `` line and CRLF input are accepted.  A
message with no signature, or a broken one, raises ``SignedError`` whose
``status`` is ``"unsigned"`` or ``"malformed"`` and whose message says why.

``compose_clearsigned`` and ``compose_pgp_mime`` write messages the way
Thunderbird and Evolution do; ``pit order`` and the tests use them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping

# The email package (15-20 ms to import) is imported only where a MIME
# structure needs it: a plain clearsigned body, which is what the pit's own
# checkpoints and reports are, is read with byte searches, so a filter that
# reads its checkpoint starts without it.  ``signed.email`` and
# ``signed.BytesHeaderParser`` still exist (module __getattr__), imported on
# first use.


def __getattr__(name: str):
    if name == "email":
        import email
        import email.parser
        import email.policy
        globals()["email"] = email
        return email
    if name == "BytesHeaderParser":
        from email.parser import BytesHeaderParser
        globals()["BytesHeaderParser"] = BytesHeaderParser
        return BytesHeaderParser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _lazy(name: str):
    """A lazily imported global (see __getattr__), as patched if patched."""
    value = globals().get(name)
    return value if value is not None else __getattr__(name)

from pit import openpgp
from pit.openpgp import OpenPGPError, Verdict
from pit.record import Record, field

__all__ = ["Signed", "SignedError", "extract", "compose_clearsigned",
           "compose_pgp_mime", "canonical_cleartext", "canonical_crlf"]

CLEARSIGN_BEGIN = b"-----BEGIN PGP SIGNED MESSAGE-----"
SIGNATURE_BEGIN = b"-----BEGIN PGP SIGNATURE-----"
SIGNATURE_END = b"-----END PGP SIGNATURE-----"

# OpenPGP armour "Hash:" names -> hash algorithm ids (RFC 4880 9.4).
_ARMOR_HASHES = {b"SHA1": 2, b"SHA256": 8, b"SHA384": 9, b"SHA512": 10, b"SHA224": 11,
                 b"MD5": 1, b"RIPEMD160": 3}


class SignedError(ValueError):
    """No usable signature in a message.  ``status``: "unsigned" or "malformed"."""

    def __init__(self, status: str, reason: str):
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason

    def verdict(self) -> Verdict:
        """The same failure as a verification verdict."""
        return Verdict.failed(self.status, self.reason)


class Signed(Record, frozen=True):
    """The signed content of one message.

    ``text`` is what the trader signed, decoded, with LF line endings and
    a final newline (what the order parser reads).  ``signed_bytes`` is
    exactly what the signature's hash covers.  ``signature`` is the binary
    signature packet.  ``gpg_input`` is what stock gpg verifies: the
    clearsigned block (``kind == "clearsigned"``) or the armoured
    detached signature (``kind == "pgp-mime"``, to verify against
    ``signed_bytes``).
    """

    kind: str
    text: str
    signed_bytes: bytes
    signature: bytes
    gpg_input: bytes
    parsed: openpgp.Signature = field(repr=False, compare=False)

    @property
    def sig_id(self) -> str:
        """SHA-256 hex of the signature packet (the Verdict's ``sig_id``)."""
        return self.parsed.sig_id

    def verify(self, verifier: openpgp.Verifier, now: int | None = None) -> Verdict:
        """Verify in process.  O(len(signed_bytes)) plus one signature check."""
        return verifier.verify(self.signed_bytes, self.parsed, now=now)

    def verify_gpg(self, keyring) -> Verdict:
        """Verify with stock gpg through ``pit.keyring.Keyring`` (slow reference)."""
        if self.kind == "clearsigned":
            return keyring.verify_gpg(self.gpg_input)
        return keyring.verify_gpg(self.signed_bytes, self.gpg_input)


# ------------------------------------------------------------- helpers

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_UNFOLD = re.compile(rb"\r?\n[ \t]+")
_LINE_END = re.compile(rb"\r?\n")


def canonical_crlf(data: bytes) -> bytes:
    """Every line ending (LF or CRLF) as CRLF (RFC 3156 5).  O(n)."""
    return _LINE_END.sub(b"\r\n", data)


def canonical_cleartext(lines: Iterable[bytes]) -> bytes:
    """The bytes gpg hashes for clearsigned text lines (already dash-unescaped).

    Trailing spaces, tabs, CRs and LFs are cut from each line (gpg's
    ``trim_trailing_chars(" \\t\\r\\n")``) and lines are joined with CRLF,
    no line ending after the last.  O(n).
    """
    return b"\r\n".join(line.rstrip(b" \t\r\n") for line in lines)


def _split_head(msg: bytes) -> tuple[bytes, bytes]:
    """(header block, body); skips a leading mbox ``From `` line."""
    if msg.startswith(b"From "):
        nl = msg.find(b"\n")
        msg = msg[nl + 1:] if nl >= 0 else b""
    if msg.startswith(b"\n") or msg.startswith(b"\r\n"):
        return b"", msg[1:] if msg.startswith(b"\n") else msg[2:]
    m = _BLANK_LINE.search(msg)
    if m is None:
        return msg, b""
    return msg[:m.start()], msg[m.end():]


def _header(head: bytes, name: bytes) -> bytes | None:
    """The (unfolded) value of header ``name`` in a header block, or None."""
    low = name.lower() + b":"
    for line in _UNFOLD.sub(b" ", head).split(b"\n"):
        if line[:len(low)].lower() == low:
            return line[len(low):].strip()
    return None


def _charset(content_type: bytes | None) -> str:
    if content_type:
        m = re.search(rb'charset\s*=\s*"?([A-Za-z0-9_.:+-]+)"?', content_type, re.I)
        if m:
            return m.group(1).decode("ascii").lower()
    return "utf-8"


def _decode(data: bytes, charset: str, what: str) -> str:
    # us-ascii is what most clients declare for 7bit text; UTF-8 is a
    # superset, and refusing 8-bit bytes mislabelled as ascii helps nobody.
    if charset in ("us-ascii", "ascii"):
        charset = "utf-8"
    try:
        return data.decode(charset)
    except LookupError:
        raise SignedError("malformed", f"{what}: unknown charset {charset!r}") from None
    except UnicodeDecodeError as exc:
        raise SignedError("malformed", f"{what}: bytes are not valid {charset} ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:                 # some codecs refuse input their own way
        raise SignedError("malformed", f"{what}: not decodable as {charset} ({exc})") from None


def _lines(data: bytes) -> list[bytes]:
    """Split on LF; a CR before the LF stays with the line (trimmed later)."""
    return data.split(b"\n")


# ----------------------------------------------------------- clearsigned

def _clearsigned(body: bytes, charset: str, where: str) -> Signed:
    """Parse the first clearsigned block in ``body`` (already transfer-decoded)."""
    start = body.find(CLEARSIGN_BEGIN)
    while start > 0 and body[start - 1:start] != b"\n":
        start = body.find(CLEARSIGN_BEGIN, start + 1)
    if start < 0:
        raise SignedError("unsigned", f"no '-----BEGIN PGP SIGNED MESSAGE-----' line in {where}")
    lines = _lines(body[start:])
    if lines[0].rstrip() != CLEARSIGN_BEGIN:
        raise SignedError("malformed", f"{where}, line 1 of the signed block: text after the BEGIN line")
    hashes: set[int] = set()
    i = 1
    text_start = None
    while i < len(lines) and lines[i].strip():
        key, sep, value = lines[i].partition(b":")
        if not sep or key.strip() != b"Hash":
            # gpg: "invalid clearsig header" ends the armour headers, that
            # line is dropped and the text starts right after it (so such a
            # message almost always verifies as BAD, as it should).
            text_start = i + 1
            break
        for name in value.split(b","):
            hashes.add(_ARMOR_HASHES.get(name.strip().upper(), -1))
        i += 1
    if text_start is None:
        if i >= len(lines):
            raise SignedError("malformed", f"{where}: signed block ends inside its armour headers")
        text_start = i + 1                   # after the blank line
    i = text_start
    while i < len(lines) and not lines[i].startswith(SIGNATURE_BEGIN):
        i += 1
    if i >= len(lines):
        raise SignedError("malformed", f"{where}: no '-----BEGIN PGP SIGNATURE-----' after the signed text")
    text_lines = [line[2:] if line.startswith(b"- ") else line for line in lines[text_start:i]]
    signed_bytes = canonical_cleartext(text_lines)
    sig_end = i
    while sig_end < len(lines) and not lines[sig_end].startswith(SIGNATURE_END):
        sig_end += 1
    if sig_end >= len(lines):
        raise SignedError("malformed", f"{where}: no '-----END PGP SIGNATURE-----' line")
    armoured = b"\n".join(lines[i:sig_end + 1]) + b"\n"
    try:
        _label, packet = openpgp.dearmor(armoured)
        sig = openpgp.signature_packet(packet)
    except OpenPGPError as exc:
        raise SignedError("malformed", f"{where}: signature block: {exc}") from None
    # Like gpg: no "Hash:" header means MD5 (RFC 4880 7), which gpg refuses.
    if sig.hash_algo not in (hashes or {_ARMOR_HASHES[b"MD5"]}):
        raise SignedError("malformed", f"{where}: signature hash {sig.hash_name} is not the one the 'Hash:' header announces")
    text = _decode(signed_bytes, charset, where).replace("\r\n", "\n")
    gpg_input = b"\n".join(lines[:sig_end + 1]) + b"\n"
    return Signed("clearsigned", text + "\n" if text else "", signed_bytes, packet, gpg_input, sig)


# -------------------------------------------------------------- PGP/MIME

def _boundary_lines(body: bytes, boundary: bytes) -> list[re.Match]:
    pattern = re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$", re.M)
    return list(pattern.finditer(body))


def _pgp_mime(head: bytes, body: bytes) -> Signed:
    email = _lazy("email")
    ctype = _lazy("BytesHeaderParser")(policy=email.policy.compat32).parsebytes(head + b"\n\n")
    protocol = (ctype.get_param("protocol") or "").lower()
    if protocol != "application/pgp-signature":
        raise SignedError("unsigned", f"multipart/signed with protocol {protocol or 'missing'!r}, not application/pgp-signature")
    boundary = ctype.get_param("boundary")
    if not boundary:
        raise SignedError("malformed", "multipart/signed without a boundary parameter")
    marks = _boundary_lines(body, boundary.encode("utf-8"))
    if len(marks) < 3 or marks[0].group(1) or marks[1].group(1):
        raise SignedError("malformed", f"multipart/signed: expected two parts between '--{boundary}' lines, found {max(len(marks) - 1, 0)}")

    def part(first: re.Match, second: re.Match) -> bytes:
        start = body.find(b"\n", first.end()) + 1
        end = second.start()
        # The line ending before a boundary line belongs to the boundary.
        end -= 2 if body[end - 2:end] == b"\r\n" else 1
        return body[start:max(end, start)]

    content, sig_part = part(marks[0], marks[1]), part(marks[1], marks[2])
    signed_bytes = canonical_crlf(content)
    sig_msg = email.message_from_bytes(sig_part, policy=email.policy.compat32)
    if sig_msg.get_content_type() != "application/pgp-signature":
        raise SignedError("malformed", f"multipart/signed: second part is {sig_msg.get_content_type()}, not application/pgp-signature")
    armoured = sig_msg.get_payload(decode=True) or b""
    try:
        _label, packet = openpgp.dearmor(armoured)
        sig = openpgp.signature_packet(packet)
    except OpenPGPError as exc:
        raise SignedError("malformed", f"PGP/MIME signature part: {exc}") from None
    text = _first_text(email.message_from_bytes(content, policy=email.policy.compat32), "PGP/MIME signed part")
    return Signed("pgp-mime", text, signed_bytes, packet, armoured, sig)


def _first_text(msg, where: str) -> str:
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True) or b""
            text = _decode(payload, part.get_content_charset() or "utf-8", where)
            text = text.replace("\r\n", "\n")
            return text
    raise SignedError("malformed", f"{where} has no text part")


# --------------------------------------------------------------- extract

def extract(msg: bytes) -> Signed:
    """Find what was signed in the RFC 5322 message ``msg``.

    O(len(msg)).  A plain (7bit/8bit) clearsigned body is found with byte
    searches only; encoded bodies and MIME structures go through the
    ``email`` package, but signed bytes are always sliced from ``msg``.
    Raises ``SignedError`` ("unsigned" or "malformed", with the reason).
    """
    if not isinstance(msg, (bytes, bytearray)):
        raise TypeError("extract() takes the message as bytes")
    head, body = _split_head(bytes(msg))
    ctype = _header(head, b"content-type")
    cte = (_header(head, b"content-transfer-encoding") or b"7bit").lower()
    mtype = ctype.split(b";")[0].strip().lower() if ctype else b"text/plain"
    if mtype == b"text/plain":
        if cte in (b"7bit", b"8bit", b"binary"):
            return _clearsigned(body, _charset(ctype), "message body")
        if cte == b"quoted-printable":
            return _clearsigned(binascii.a2b_qp(body), _charset(ctype), "quoted-printable body")
        if cte == b"base64":
            try:
                decoded = base64.b64decode(re.sub(rb"\s+", b"", body), validate=True)
            except (binascii.Error, ValueError):
                raise SignedError("malformed", "base64 body does not decode") from None
            return _clearsigned(decoded, _charset(ctype), "base64 body")
        raise SignedError("malformed", f"unknown Content-Transfer-Encoding {cte.decode('ascii', 'replace')!r}")
    if mtype == b"multipart/signed":
        return _pgp_mime(head, body)
    if mtype.startswith(b"multipart/"):
        email = _lazy("email")
        whole = email.message_from_bytes(head + b"\n\n" + body, policy=email.policy.compat32)
        for part in whole.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True) or b""
                return _clearsigned(payload, part.get_content_charset() or "utf-8",
                                    f"{mtype.decode('ascii', 'replace')} first text part")
        raise SignedError("unsigned", f"{mtype.decode('ascii', 'replace')} message has no text/plain part")
    raise SignedError("unsigned", f"a {mtype.decode('ascii', 'replace')} message carries no OpenPGP signature")


# --------------------------------------------------------------- compose

def _header_lines(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for name, value in items:
        if "\n" in value or "\r" in value:
            raise ValueError(f"header {name} contains a line break")
        out.append(f"{name}: {value}\n")
    return "".join(out)


def _text_lines(text: str) -> str:
    """``text`` with LF line endings and a final newline; refuses a bare CR,
    which has no place in canonical text (RFC 3156 5) and no order needs."""
    text = text.replace("\r\n", "\n")
    if "\r" in text:
        line = text[:text.index("\r")].count("\n") + 1
        raise ValueError(f"text line {line} contains a carriage return")
    return text if text.endswith("\n") else text + "\n"


def _needs_qp(text: str) -> bool:
    return (not text.isascii()
            or any(len(line) > 76 or line != line.rstrip(" \t") or line.startswith("From ")
                   for line in text.split("\n")))


def _qp(text: str) -> str:
    """Quoted-printable as mail clients write it, also protecting ``From ``."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True).decode("ascii")
    return "\n".join("=46" + line[1:] if line.startswith("From ") else line
                     for line in encoded.split("\n"))


def compose_clearsigned(headers, text: str, keyring, fpr: str, at: int | None = None) -> bytes:
    """An RFC 5322 message (LF line endings) whose body is ``text`` clearsigned by ``fpr``.

    ``headers`` is a mapping or ``(name, value)`` pairs (From, To, Subject,
    Date, Message-ID...).  ASCII bodies go 7bit; others quoted-printable.
    ``at`` signs at a faked time (tests).  A bare CR in ``text`` is refused
    (ValueError naming the line).  One gpg run.
    """
    text = _text_lines(text)
    signed = keyring.clearsign(text, fpr, at=at)
    encoding = "7bit" if signed.isascii() else "quoted-printable"
    body = signed if encoding == "7bit" else _qp(signed)
    return (_header_lines(headers) + "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            f"Content-Transfer-Encoding: {encoding}\n\n" + body).encode("utf-8")


def compose_pgp_mime(headers, text: str, keyring, fpr: str, at: int | None = None) -> bytes:
    """An RFC 3156 multipart/signed message (LF line endings) carrying ``text``.

    The signed part is text/plain, quoted-printable when the text is not
    plain ASCII, has long lines, trailing whitespace or a ``From `` line
    (RFC 3156 asks for encodings that survive transport unchanged).  The
    signature is a binary (0x00) detached signature over the part made
    CRLF; ``micalg`` names the hash gpg chose.  One gpg run.
    """
    text = _text_lines(text)
    if _needs_qp(text):
        part = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" + _qp(text)
    else:
        part = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n" + text
    part_bytes = part.encode("ascii")
    armoured = keyring.detach_sign(canonical_crlf(part_bytes), fpr, at=at)
    sig = openpgp.signature_packet(openpgp.dearmor(armoured)[1])
    import hashlib          # here: reading a signed text needs no hash (OpenSSL, ~2 ms)
    boundary = "pit-" + hashlib.sha256(part_bytes).hexdigest()[:24]
    return (_header_lines(headers) + "MIME-Version: 1.0\n"
            f"Content-Type: multipart/signed; micalg=pgp-{sig.hash_name};\n"
            ' protocol="application/pgp-signature";\n'
            f' boundary="{boundary}"\n\n'
            "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\n"
            f"--{boundary}\n{part}\n--{boundary}\n"
            'Content-Type: application/pgp-signature; name="signature.asc"\n'
            "Content-Description: OpenPGP digital signature\n"
            'Content-Disposition: attachment; filename="signature.asc"\n\n'
            f"{armoured}\n--{boundary}--\n").encode("ascii")


# ------------------------------------------------------------ command

def main(argv: list[str] | None = None) -> int:
    """``python -m pit.signed MESSAGE [OUTDIR]``: show what was signed.

    Prints the signed text and, with OUTDIR, writes the files stock gpg
    verifies (``clearsigned.asc``; or ``signed.bin`` and ``signature.asc``
    for PGP/MIME) and prints the gpg command.  Exit 1 if unsigned or
    malformed.  An auditor's shortcut; docs/verifying.md shows the same
    with standard tools only.
    """
    import argparse
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m pit.signed", description=main.__doc__.split("\n")[0])
    parser.add_argument("message", help="one RFC 5322 message (a file; '-' for stdin)")
    parser.add_argument("outdir", nargs="?", help="write the files gpg verifies here")
    args = parser.parse_args(argv)
    data = sys.stdin.buffer.read() if args.message == "-" else Path(args.message).read_bytes()
    try:
        content = extract(data)
    except SignedError as err:
        print(f"{args.message}: {err}", file=sys.stderr)
        return 1
    print(f"# {content.kind}, {content.parsed.hash_name}, issuer {content.parsed.issuer_fpr or content.parsed.issuer_keyid}, sig_id {content.sig_id}")
    sys.stdout.write(content.text)
    if args.outdir:
        out = Path(args.outdir)
        out.mkdir(parents=True, exist_ok=True)
        if content.kind == "clearsigned":
            (out / "clearsigned.asc").write_bytes(content.gpg_input)
            print(f"# gpg --status-fd 1 --verify {out / 'clearsigned.asc'}")
        else:
            (out / "signed.bin").write_bytes(content.signed_bytes)
            (out / "signature.asc").write_bytes(content.gpg_input)
            print(f"# gpg --status-fd 1 --verify {out / 'signature.asc'} {out / 'signed.bin'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
