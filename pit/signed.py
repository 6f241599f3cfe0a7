"""What was signed in a mail message, exactly as the signature covers it.

Traders' mail clients sign in two ways, and ``extract`` finds both:

* **inline clearsigned** (``-----BEGIN PGP SIGNED MESSAGE-----``): the body
  may be plain 7bit/8bit (the hot path: a byte search for the armour
  lines, no ``email`` parsing), quoted-printable or base64, or a text/plain
  part of a multipart message (some webmail plugins).  The signed bytes
  are the cleartext as gpg hashes it: dash-escapes undone, trailing
  spaces, tabs and CRs cut from every line, lines joined with CRLF, and
  the line ending before the signature armour left out;
* **PGP/MIME** (RFC 3156 ``multipart/signed`` with
  ``protocol="application/pgp-signature"``), at the top or nested in a
  multipart message (a list footer, an attachment beside it): the signed
  bytes are the signed part's exact bytes between the boundary lines,
  sliced from the original message (never re-serialised), with every line
  ending made CRLF.  The CRLF before the next boundary belongs to that
  boundary, so a part that ends without a newline is signed without one.

What you see is what you sign: the text read is a *text/plain* text that
the signature covers, and a reader's view of the same signed part must
not say otherwise.  So a message is refused as "ambiguous" (never silently
cut down) when it holds more than one signed block or part, when the
signed text is HTML only, when a signed part shows more than one text, or
when a multipart/alternative's other texts (the HTML a mail reader shows)
do not show the same words as the text/plain part, or hide text.
``format=flowed`` text (RFC 3676) is decoded after the signature check:
in full for PGP/MIME (the part's headers and its trailing spaces are
signed), space-stuffing only for clearsigned text (a soft line break is a
trailing space, which a cleartext signature does not cover).

Anything outside the signed part (other headers, footers, attachments,
unsigned parts) is not part of the order.  A leading mbox ``From `` line
and CRLF input are accepted.  A message with no signature, or a broken or
ambiguous one, raises ``SignedError`` whose ``status`` is ``"unsigned"``,
``"malformed"`` or ``"ambiguous"`` and whose message says why.

``compose_clearsigned`` and ``compose_pgp_mime`` write messages the way
Thunderbird and Evolution do; ``pit order`` and the tests use them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping

# The email package is imported only where a MIME structure needs it (the
# figure: docs/pit-book.md, "Start-up"): a plain clearsigned body, which is what the pit's own
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
from pit.openpgp import OpenPGPError, Verdict, canonical_crlf
from pit.record import Record, field

__all__ = ["Signed", "SignedError", "extract", "compose_clearsigned",
           "compose_pgp_mime", "compose_pgp_mime_part", "canonical_cleartext",
           "canonical_crlf", "unflow"]

CLEARSIGN_BEGIN = b"-----BEGIN PGP SIGNED MESSAGE-----"
SIGNATURE_BEGIN = b"-----BEGIN PGP SIGNATURE-----"
SIGNATURE_END = b"-----END PGP SIGNATURE-----"

# OpenPGP armour "Hash:" names -> hash algorithm ids (RFC 4880 9.4).
_ARMOR_HASHES = {b"SHA1": 2, b"SHA256": 8, b"SHA384": 9, b"SHA512": 10, b"SHA224": 11,
                 b"MD5": 1, b"RIPEMD160": 3}


class SignedError(ValueError):
    """No usable signature in a message.

    ``status``: "unsigned", "malformed", or "ambiguous": signed, but what
    a mail reader shows may not be what was signed (an HTML-only signed
    text, signed alternatives that differ, more than one signed block).
    """

    def __init__(self, status: str, reason: str):
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason

    def verdict(self) -> Verdict:
        """The same failure as a verification verdict ("ambiguous" is "malformed" there)."""
        return Verdict.failed(self.status if self.status in openpgp.STATUSES else "malformed",
                              self.reason)


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
    return _split_part(msg)


def _split_part(msg: bytes) -> tuple[bytes, bytes]:
    """(header block, body) of a message or MIME part."""
    if msg.startswith(b"\n") or msg.startswith(b"\r\n"):
        return b"", msg[1:] if msg.startswith(b"\n") else msg[2:]
    m = _BLANK_LINE.search(msg)
    if m is None:
        return msg, b""
    return msg[:m.start()], msg[m.end():]


def _header(head: bytes, name: bytes) -> bytes | None:
    """The (unfolded) value of header ``name`` in a header block, or None."""
    return _headers(head, name)[0]


def _headers(head: bytes, *names: bytes) -> list[bytes | None]:
    """:func:`_header` of each of *names*, the block unfolded once for all
    (and not at all when no line is folded: a fold is a line ending
    followed by a space or tab)."""
    if b"\n " in head or b"\n\t" in head:
        head = _UNFOLD.sub(b" ", head)
    lows = [name.lower() + b":" for name in names]
    found: list[bytes | None] = [None] * len(lows)
    for line in head.split(b"\n"):
        for i, low in enumerate(lows):
            if found[i] is None and line[:len(low)].lower() == low:
                found[i] = line[len(low):].strip()
    return found


def _param(content_type: bytes | None, name: bytes) -> str | None:
    """A Content-Type parameter (lower-case), read with a byte search."""
    if content_type:
        m = re.search(rb';\s*' + name + rb'\s*=\s*"?([A-Za-z0-9_.:+-]+)"?', content_type, re.I)
        if m:
            return m.group(1).decode("ascii").lower()
    return None


def _charset(content_type: bytes | None) -> str:
    return _param(content_type, b"charset") or "utf-8"


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


# ------------------------------------------------------- format=flowed

def unflow(text: str, delsp: bool = False, join: bool = True) -> str:
    """Text sent as ``format=flowed`` (RFC 3676) as its writer wrote it.  O(n).

    Space-stuffing is undone (one space after the quote marks), and with
    ``join`` a line ending in a space (a soft break; not the signature
    separator "-- ") is joined to the next line of the same quote depth,
    its trailing space deleted first when ``delsp``.  ``text`` has LF line
    endings; so has the result, with a final newline if ``text`` had one.
    """
    lines = text.split("\n")
    final = lines[-1] == ""
    if final:
        lines.pop()
    out: list[str] = []
    para: str | None = None
    para_depth = 0
    for line in lines:
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        soft = join and content.endswith(" ") and content != "-- "
        if soft and delsp:
            content = content[:-1]
        if para is not None and depth == para_depth:
            para += content
        else:
            if para is not None:
                out.append(_quoted(para_depth, para))
            para, para_depth = content, depth
        if not soft:
            out.append(_quoted(para_depth, para))
            para = None
    if para is not None:
        out.append(_quoted(para_depth, para))
    return "\n".join(out) + ("\n" if final else "")


def _quoted(depth: int, content: str) -> str:
    return ">" * depth + (" " if depth and content else "") + content


# -------------------------------------------------------- what is shown

# Styles that hide text (the style attribute, its spaces removed, lower case).
_HIDING_STYLE = re.compile(r"display:none|visibility:hidden|(?<![a-z-])(?:font-size|opacity|height|max-height):0"
                           r"(?:\.0*)?(?:px|em|rem|pt|%)?(?![\d.])")


class _HTMLText:
    """The words an HTML part shows, and whether it hides any (stdlib parser).

    Text in elements a reader never shows (script, style, head...) is
    ignored; text hidden by markup (``hidden``, ``display:none``,
    ``visibility:hidden``, zero size or opacity) sets ``hides_text``."""

    NOT_SHOWN = {"script", "style", "head", "title", "template"}
    VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed",
            "source", "track", "wbr", "param"}

    def __init__(self, html: str):
        from html.parser import HTMLParser
        words: list[str] = []
        stack: list[int] = []           # per open element: 0 shown, 1 not shown, 2 hidden
        hides = False

        def state(tag: str, attrs) -> int:
            if tag in _HTMLText.NOT_SHOWN:
                return 1
            a = {k.lower(): (v or "") for k, v in attrs}
            style = a.get("style", "").replace(" ", "").lower()
            if "hidden" in a or a.get("aria-hidden") == "true" or _HIDING_STYLE.search(style):
                return 2
            return 0

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                if tag not in _HTMLText.VOID:
                    stack.append(max(stack[-1] if stack else 0, state(tag, attrs)))

            def handle_endtag(self, tag):
                if stack and tag not in _HTMLText.VOID:
                    stack.pop()

            def handle_data(self, data):
                nonlocal hides
                shown = stack[-1] if stack else 0
                if shown == 0:
                    words.extend(data.split())
                elif shown == 2 and data.strip():
                    hides = True

        parser = Parser(convert_charrefs=True)
        parser.feed(html)
        parser.close()
        self.words = words
        self.hides_text = hides


def _get_param(msg, name: str) -> str:
    """A Content-Type parameter as text, RFC 2231 forms (``name*=``) collapsed."""
    from email.utils import collapse_rfc2231_value
    value = msg.get_param(name)
    return collapse_rfc2231_value(value) if value is not None else ""


def _words(text: str) -> list[str]:
    return text.split()


class _Part:
    """One MIME part: its header block and body bytes, sliced from the message."""

    __slots__ = ("head", "body", "msg", "ctype", "parent")

    def __init__(self, head: bytes, body: bytes, parent: "_Part | None"):
        email = _lazy("email")
        self.head, self.body, self.parent = head, body, parent
        self.msg = _lazy("BytesHeaderParser")(policy=email.policy.compat32).parsebytes(head + b"\n\n")
        self.ctype = self.msg.get_content_type() if head.strip() else (
            "message/rfc822" if parent is not None and parent.ctype == "multipart/digest" else "text/plain")

    @property
    def attachment(self) -> bool:
        return str(self.msg.get("content-disposition") or "").strip().lower().startswith("attachment")

    def alternative(self) -> "_Part | None":
        """The nearest multipart/alternative this part is in."""
        p = self.parent
        while p is not None and p.ctype != "multipart/alternative":
            p = p.parent
        return p

    def within(self, ancestor: "_Part") -> bool:
        p = self.parent
        while p is not None and p is not ancestor:
            p = p.parent
        return p is ancestor

    def decoded(self, where: str) -> bytes:
        cte = str(self.msg.get("content-transfer-encoding") or "7bit").strip().lower()
        if cte in ("7bit", "8bit", "binary"):
            return self.body
        if cte == "quoted-printable":
            return binascii.a2b_qp(self.body)
        if cte == "base64":
            try:
                return base64.b64decode(re.sub(rb"\s+", b"", self.body), validate=True)
            except (binascii.Error, ValueError):
                raise SignedError("malformed", f"{where}: base64 does not decode") from None
        raise SignedError("malformed", f"{where}: unknown Content-Transfer-Encoding {cte!r}")

    def text(self, where: str, join: bool = True) -> str:
        """The part's text as shown: charset-decoded, LF line endings, format=flowed undone."""
        text = _decode(self.decoded(where), self.msg.get_content_charset() or "utf-8", where)
        text = text.replace("\r\n", "\n")
        if self.ctype == "text/plain" and _get_param(self.msg, "format").lower() == "flowed":
            text = unflow(text, _get_param(self.msg, "delsp").lower() == "yes", join)
        return text

    def shown_words(self, where: str) -> list[str]:
        if self.ctype == "text/html":
            html = _HTMLText(self.text(where))
            if html.hides_text:
                raise SignedError("ambiguous", f"{where}: the text/html part hides text from its reader "
                                  "(hidden, display:none...); send the order as plain text")
            return html.words
        return _words(self.text(where))


MAX_DEPTH = 32        # MIME nesting the pit reads (mail clients nest a handful)
MAX_PARTS = 1000


def _walk(head: bytes, body: bytes) -> list[_Part]:
    """Every MIME part of a message or part, depth first, bodies sliced from
    the bytes (a multipart/signed part is a leaf here).  Bounded by
    MAX_DEPTH and MAX_PARTS.  O(n)."""
    parts: list[_Part] = []
    todo: list[tuple[bytes, bytes, _Part | None, int]] = [(head, body, None, 0)]
    while todo:
        head, body, parent, depth = todo.pop()
        part = _Part(head, body, parent)
        parts.append(part)
        if len(parts) > MAX_PARTS:
            raise SignedError("malformed", f"more than {MAX_PARTS} MIME parts")
        if part.msg.get_content_maintype() != "multipart" or part.ctype == "multipart/signed":
            continue
        if depth >= MAX_DEPTH:
            raise SignedError("malformed", f"MIME parts nested more than {MAX_DEPTH} deep")
        boundary = _get_param(part.msg, "boundary")
        if not boundary:
            raise SignedError("malformed", f"{part.ctype} without a boundary parameter")
        subs = _multipart_bodies(body, boundary.encode("utf-8", "replace"))
        todo.extend((*_split_part(sub), part, depth + 1) for sub in reversed(subs))
    return parts


def _multipart_bodies(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts of a multipart body, each without the line ending that
    belongs to the next boundary line; up to the closing boundary."""
    marks = _boundary_lines(body, boundary)
    out = []
    for first, second in zip(marks, marks[1:] + [None]):
        if first.group(1):
            break
        start = body.find(b"\n", first.end()) + 1 if body.find(b"\n", first.end()) >= 0 else len(body)
        if second is None:                  # no closing boundary: the part runs to the end
            out.append(body[start:])
            break
        end = second.start()
        end -= 2 if body[end - 2:end] == b"\r\n" else 1
        out.append(body[start:max(end, start)])
    return out


def _shown_text(parts: list[_Part], where: str) -> str:
    """The one text/plain text a signed part shows, or SignedError.

    Text parts shown to a reader (not attachments) are grouped by their
    multipart/alternative: an order is exactly one group, whose text/plain
    part is read; every other alternative must show the same words."""
    shown = [p for p in parts if p.msg.get_content_maintype() == "text" and not p.attachment
             and not any(a.ctype in ("message/rfc822", "multipart/signed") for a in _ancestors(p))]
    groups: dict[int, list[_Part]] = {}
    for p in shown:
        alt = p.alternative()
        groups.setdefault(id(alt) if alt is not None else id(p), []).append(p)
    if not groups:
        raise SignedError("malformed", f"{where} has no text part")
    if len(groups) > 1:
        raise SignedError("ambiguous", f"{where} holds {len(groups)} texts; an order is one text/plain part")
    [group] = groups.values()
    plains = [p for p in group if p.ctype == "text/plain"]
    if not plains:
        raise SignedError("ambiguous", f"{where} is {group[0].ctype} only; an order is read from a "
                          "text/plain part (send it as plain text)")
    if len(plains) > 1:
        raise SignedError("ambiguous", f"{where}: {len(plains)} text/plain alternatives")
    plain = plains[0]
    text = plain.text(where)
    _alternatives_agree(plain, group, _words(text), where)
    return text


def _ancestors(part: _Part):
    p = part.parent
    while p is not None:
        yield p
        p = p.parent


def _alternatives_agree(plain: _Part, group: list[_Part], words: list[str], where: str) -> None:
    for other in group:
        if other is not plain and other.shown_words(where) != words:
            raise SignedError("ambiguous", f"{where}: the {other.ctype} alternative (what mail readers "
                              "show) differs from the text/plain part (what is read); send the order as plain text")


# ----------------------------------------------------------- clearsigned

_BEGIN_LINE = re.compile(rb"^-----BEGIN PGP SIGNED MESSAGE-----", re.M)


def _begin_lines(body: bytes) -> int:
    """How many clearsigned blocks start in ``body`` (a byte count first)."""
    n = body.count(CLEARSIGN_BEGIN)
    return n if n < 2 else len(_BEGIN_LINE.findall(body))


def _clearsigned(body: bytes, charset: str, where: str, flowed: bool = False) -> Signed:
    """Parse the one clearsigned block in ``body`` (already transfer-decoded).

    With ``flowed`` (the body is format=flowed) space-stuffing is undone in
    the text; soft line breaks are not honoured, as the cleartext signature
    does not cover the trailing space that makes one."""
    blocks = _begin_lines(body)
    if blocks > 1:
        raise SignedError("ambiguous", f"{where} holds {blocks} clearsigned blocks; "
                          "send one request per message")
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
    if flowed:
        text = unflow(text, join=False)
    gpg_input = b"\n".join(lines[:sig_end + 1]) + b"\n"
    return Signed("clearsigned", text + "\n" if text else "", signed_bytes, packet, gpg_input, sig)


# -------------------------------------------------------------- PGP/MIME

def _boundary_lines(body: bytes, boundary: bytes) -> list[re.Match]:
    pattern = re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$", re.M)
    return list(pattern.finditer(body))


def _pgp_mime(head: bytes, body: bytes) -> Signed:
    email = _lazy("email")
    ctype = _lazy("BytesHeaderParser")(policy=email.policy.compat32).parsebytes(head + b"\n\n")
    protocol = _get_param(ctype, "protocol").lower()
    if protocol != "application/pgp-signature":
        raise SignedError("unsigned", f"multipart/signed with protocol {protocol or 'missing'!r}, not application/pgp-signature")
    boundary = _get_param(ctype, "boundary")
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
    # The signed part's own headers are signed, and so is every trailing
    # space: format=flowed is decoded in full (RFC 3676).
    text = _shown_text(_walk(*_split_part(content)), "PGP/MIME signed part")
    return Signed("pgp-mime", text, signed_bytes, packet, armoured, sig)


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
    ctype, cte = _headers(head, b"content-type", b"content-transfer-encoding")
    cte = (cte or b"7bit").lower()
    mtype = ctype.split(b";")[0].strip().lower() if ctype else b"text/plain"
    if mtype == b"text/plain":
        flowed = _param(ctype, b"format") == "flowed"
        if cte in (b"7bit", b"8bit", b"binary"):
            return _clearsigned(body, _charset(ctype), "message body", flowed)
        if cte == b"quoted-printable":
            return _clearsigned(binascii.a2b_qp(body), _charset(ctype), "quoted-printable body", flowed)
        if cte == b"base64":
            try:
                decoded = base64.b64decode(re.sub(rb"\s+", b"", body), validate=True)
            except (binascii.Error, ValueError):
                raise SignedError("malformed", "base64 body does not decode") from None
            return _clearsigned(decoded, _charset(ctype), "base64 body", flowed)
        raise SignedError("malformed", f"unknown Content-Transfer-Encoding {cte.decode('ascii', 'replace')!r}")
    if mtype == b"multipart/signed":
        return _pgp_mime(head, body)
    if mtype.startswith(b"multipart/"):
        return _in_multipart(head, body, mtype.decode("ascii", "replace"))
    if mtype.startswith(b"text/") and CLEARSIGN_BEGIN in body:
        raise SignedError("ambiguous", f"the clearsigned block is in a {mtype.decode('ascii', 'replace')} "
                          "body; an order is read from text/plain only (send it as plain text)")
    raise SignedError("unsigned", f"a {mtype.decode('ascii', 'replace')} message carries no OpenPGP signature")


def _in_multipart(head: bytes, body: bytes, mtype: str) -> Signed:
    """The one signed part of a multipart message that is not itself
    multipart/signed: a PGP/MIME part nested anywhere (a list footer, a
    signed message with an attachment), or one clearsigned text/plain part.
    Anything else in the message is not part of the order."""
    parts = _walk(head, body)
    signed_parts = [p for p in parts if p.ctype == "multipart/signed"]
    blocks: list[tuple[_Part, bytes]] = []
    for p in parts:
        if (p.msg.get_content_maintype() == "text"
                and not any(a.ctype == "multipart/signed" for a in _ancestors(p))):
            decoded = p.decoded(f"{mtype} {p.ctype} part")
            blocks += [(p, decoded)] * _begin_lines(decoded)
    # A text/html (or other) alternative beside a clearsigned text/plain
    # part shows that same block: it is held to agree below, not counted.
    plain_alts = {id(p.alternative()) for p, _ in blocks if p.ctype == "text/plain" and p.alternative()}
    blocks = [(p, d) for p, d in blocks if p.ctype == "text/plain" or id(p.alternative()) not in plain_alts]
    found = len(signed_parts) + len(blocks)
    if found > 1:
        raise SignedError("ambiguous", f"the {mtype} message holds {found} signed parts "
                          "(PGP/MIME or clearsigned); send one request per message")
    if signed_parts:
        return _pgp_mime(signed_parts[0].head, signed_parts[0].body)
    if not blocks:
        if not any(p.ctype == "text/plain" for p in parts):
            raise SignedError("unsigned", f"{mtype} message has no text/plain part")
        raise SignedError("unsigned", f"no '-----BEGIN PGP SIGNED MESSAGE-----' line in the {mtype} message")
    part, decoded = blocks[0]
    where = f"{mtype} {part.ctype} part"
    if part.ctype != "text/plain":
        raise SignedError("ambiguous", f"the clearsigned block is in a {part.ctype} part; an order "
                          "is read from text/plain only (send it as plain text)")
    alt = part.alternative()
    if alt is not None:
        others = [p for p in parts if p.within(alt) and p.msg.get_content_maintype() == "text"
                  and not p.attachment]
        _alternatives_agree(part, others, _words(part.text(where, join=False)), where)
    flowed = _get_param(part.msg, "format").lower() == "flowed"
    return _clearsigned(decoded, part.msg.get_content_charset() or "utf-8", where, flowed)


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
    return compose_pgp_mime_part(headers, part.encode("ascii"), keyring, fpr, at=at)


def compose_pgp_mime_part(headers, part: bytes, keyring, fpr: str, at: int | None = None) -> bytes:
    """An RFC 3156 multipart/signed message whose signed part is ``part``
    (a whole MIME part, headers and body, ASCII with LF line endings), as
    it is: a multipart/alternative, a format=flowed text, an attachment.
    One gpg run."""
    part = part.decode("ascii")
    part_bytes = part.encode("ascii")
    armoured = keyring.detach_sign(canonical_crlf(part_bytes), fpr, at=at)
    sig = openpgp.signature_packet(openpgp.dearmor(armoured)[1])
    import hashlib          # here: reading a signed text needs no hash
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
