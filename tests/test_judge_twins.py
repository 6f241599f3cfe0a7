"""The judgement's plain scans pinned to the regular expressions they
stand for (docs/pit-book.md, "Throughput over LMTP": the committer): the
same answer on random and hostile bytes (CR without LF, folds, case
variants, non-ASCII), so every message is judged as before."""

from __future__ import annotations

import random
import re

from moderator import notary
from pit import openpgp, signed

PIECES = [b"a", b"Z", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\n ", b"\n\t", b":", b";",
          b"\xff", b"\xc4\xb0", b"\xe2\x84\xaa", b"multipart/", b"MultiPart/", b"MULTIPART/",
          b"multipart", b"ultipart/", b"approve", b"Approved:", b"X-Approved :",
          b"x-approve\t:", b"APPROVE", b"Content-Type:", b"content-type:", b"CONTENT-TYPE :",
          b"Content-Transfer-Encoding:", b"content-transfer-encoding: base64",
          b" text/plain; charset=utf-8", b"multipart/signed; boundary=x", b"7bit", b"--"]


def samples(n: int, seed: int):
    rng = random.Random(seed)
    for _ in range(n):
        yield b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 40)))


def plain_header(head: bytes, name: bytes) -> bytes | None:
    """signed._header as it was: the block unfolded at every call."""
    low = name.lower() + b":"
    for line in signed._UNFOLD.sub(b" ", head).split(b"\n"):
        if line[:len(low)].lower() == low:
            return line[len(low):].strip()
    return None


def test_canonical_crlf_is_the_line_end_substitution():
    line_end = re.compile(rb"\r?\n")
    for data in samples(20000, 1):
        assert openpgp.canonical_crlf(data) == line_end.sub(b"\r\n", data), data


def test_headers_read_once_are_the_headers_read_one_by_one():
    names = (b"content-type", b"content-transfer-encoding")
    for head in samples(20000, 2):
        assert signed._headers(head, *names) == [plain_header(head, n) for n in names], head
        assert signed._header(head, b"content-type") == plain_header(head, b"content-type")


def test_multipart_count_is_the_patterns_match_count():
    for raw in samples(20000, 3):
        assert raw.lower().count(b"multipart/") == len(notary._MULTIPART.findall(raw)), raw


def test_approval_header_matches_only_where_approve_is():
    hits = 0
    for head in samples(20000, 4):
        m = notary._APPROVAL_HEADER.search(b"\n" + head)
        if m:
            hits += 1
            assert b"approve" in (b"\n" + head).lower(), head
    assert hits > 100                       # the samples reach the pattern

