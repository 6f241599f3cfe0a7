"""pit.filter.signed_text: the quick reading of a plain clearsigned report or
checkpoint gives exactly what pit.signed.extract gives, and anything else
(or anything damaged) is read, or refused, by extract itself."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pit import filter as pit_filter, signed
from pit.signer import SecretKey, Signer

FPR = "0123456789ABCDEF0123456789ABCDEF01234567"
HEADERS = [("From", "specialist-acme@demo.pit"), ("To", "demo@demo.pit"),
           ("Subject", "ACME checkpoint 7")]


@pytest.fixture(scope="module")
def signer():
    return Signer([SecretKey(FPR, FPR, 22, 1_700_000_000, Ed25519PrivateKey.generate())])


def outcome(fn, msg):
    try:
        return "text", fn(msg)
    except Exception as e:                       # noqa: BLE001 - compared as they are
        return type(e).__name__, str(e)


def same(msg: bytes) -> bool:
    want = outcome(lambda m: signed.extract(m).text, msg)
    assert outcome(pit_filter.signed_text, msg) == want
    stamped = b"X-Pit-Seq: 7\nX-Pit-Kind: checkpoint\n" + msg
    assert outcome(pit_filter.signed_text, stamped) == want
    return pit_filter._plain_signed_text(signed, msg) is not None


TEXTS = ["Checkpoint: specialist ACME\nPit: demo\nSeq: 7\n\n" + "".join(
             f"order {i} alice {i} ACME buy limit 3 300 100\n" for i in range(200)),
         "one line\n", "a\n\nb\n\n\n", "x\n" * 3 + "end"]


def test_quick_reading_is_extracts(signer):
    for text in TEXTS:
        msg = signed.compose_clearsigned(HEADERS, text, signer, FPR)
        assert same(msg)                         # the quick way was taken


@pytest.mark.parametrize("text", ["- dashed\nplain\n", "trailing \nx\n", "tab\t\nx\n",
                                  "x\nlast  ", "un\u00efcode\n", "-----BEGIN PGP SIGNATURE-----\n",
                                  "", "\n", "  \n", "x\n- y\n"])
def test_other_texts_take_extract(signer, text):
    msg = signed.compose_clearsigned(HEADERS, text, signer, FPR)
    assert not same(msg)


def test_altered_messages_read_or_refused_as_extract_does(signer):
    msg = signed.compose_clearsigned(HEADERS, TEXTS[0], signer, FPR)
    head, body = msg.split(b"\n\n", 1)
    sig = body.index(b"-----BEGIN PGP SIGNATURE-----")
    variants = [
        msg.replace(b"charset=utf-8", b"charset=us-ascii"),
        msg.replace(b"charset=utf-8", b"charset=iso-8859-1"),
        msg.replace(b"charset=utf-8", b"charset=utf-16"),
        msg.replace(b"charset=utf-8", b"charset=no-such-charset"),
        msg.replace(b"Content-Transfer-Encoding: 7bit", b"Content-Transfer-Encoding: quoted-printable"),
        msg.replace(b"Content-Transfer-Encoding: 7bit\n", b""),
        msg.replace(b"Content-Type: text/plain; charset=utf-8\n", b""),
        msg.replace(b"text/plain", b"text/html"),
        msg.replace(b"Hash: SHA256\n", b""),
        msg.replace(b"Hash: SHA256\n", b"Hash: SHA512\n"),
        msg.replace(b"Hash: SHA256\n", b"Hash: SHA256\nComment: x\n"),
        msg.replace(b"Hash: SHA256\n", b"Hash: SHA256\n  \n"),
        msg.replace(b"-----BEGIN PGP SIGNED MESSAGE-----\n", b"-----BEGIN PGP SIGNED MESSAGE----- \n"),
        head + b"\n\nHello\n" + body,
        msg.replace(b"Seq: 7\n", b"Seq: 7 \n"),
        msg.replace(b"Seq: 7\n", b"Seq: 7\r\n"),
        msg.replace(b"Seq: 7\n", b"- Seq: 7\n"),
        msg.replace(b"Seq: 7\n", b"Seq: 7\t\n"),
        msg.replace(b"Seq: 7\n", b"Seq: \xff7\n"),
        msg.replace(b"Seq: 7\n", "Seq: \u00e97\n".encode()),
        msg.replace(b"Seq: 7\n", b"Seq: 7\n-----BEGIN PGP SIGNATURE-----\n"),
        msg[:len(head) + 2 + sig] + msg[len(head) + 2 + sig:].replace(b"=", b"?", 1),
        msg.replace(b"-----END PGP SIGNATURE-----", b""),
        msg[:len(head) + 2 + sig - 1] + b" \n" + msg[len(head) + 2 + sig:],
        msg.replace(b"\n\n-----BEGIN PGP SIGNED", b"\n\n\n-----BEGIN PGP SIGNED"),
        msg.replace(b"\n", b"\r\n"),
        head + b"\n\n",
        head,
    ]
    quick = [same(v) for v in variants]
    assert quick[0] and quick[2] is False and quick[3] is False
