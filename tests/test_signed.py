"""pit.signed: finding what was signed, and refusing clearly what was not."""

from __future__ import annotations

import base64
import email
import email.parser
import re

import pytest

from pit import signed, testkeys
from pit.keyring import Keyring
from pit.signed import SignedError, extract

ORDER = "Pit: demo\nAccount: alice\nRef: 1\nOrder: buy 1 ACME at 1\n"
HEADERS = [("From", "alice@pit.test"), ("To", "demo@pit.test"), ("Subject", "order")]


@pytest.fixture(autouse=True)
def _no_agents_left(tmp_path):
    yield
    testkeys.stop_agents(tmp_path)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    home = tmp_path_factory.mktemp("signed") / "home"
    fprs = testkeys.make_keys(home, [("alice", "ed25519"), ("bob", "rsa3072")])
    keyring = Keyring(home)
    yield keyring, fprs, keyring.load_verifier()
    testkeys.stop_agents(home)


def test_canonical_cleartext_is_gpgs():
    assert signed.canonical_cleartext([b"a \t", b"b\r", b"", b"  c"]) == b"a\r\nb\r\n\r\n  c"
    assert signed.canonical_crlf(b"a\nb\r\nc") == b"a\r\nb\r\nc"


def test_clearsigned_text_and_bytes(keys):
    keyring, fprs, verifier = keys
    text = "- dashed\n-- two\nPit: demo   \n\nlast\t\n"
    s = extract(signed.compose_clearsigned(HEADERS, text, keyring, fprs["alice"]))
    assert s.kind == "clearsigned"
    assert s.text == "- dashed\n-- two\nPit: demo\n\nlast\n"
    assert s.signed_bytes == b"- dashed\r\n-- two\r\nPit: demo\r\n\r\nlast"
    assert s.verify(verifier).ok


def test_text_outside_the_signed_block_is_ignored(keys):
    keyring, fprs, verifier = keys
    msg = signed.compose_clearsigned(HEADERS, ORDER, keyring, fprs["alice"])
    head, body = msg.split(b"\n\n", 1)
    msg = head + b"\n\nHi, my order:\n\n" + body + b"\n-- \nsig\n_______\nlist footer\n"
    s = extract(msg)
    assert s.text == ORDER and s.verify(verifier).ok


def test_plain_clearsigned_does_not_go_through_email(keys, monkeypatch):
    keyring, fprs, verifier = keys
    msg = signed.compose_clearsigned(HEADERS, ORDER, keyring, fprs["bob"])

    def forbidden(*a, **k):
        raise AssertionError("the hot path must not parse with the email package")
    monkeypatch.setattr(signed.email, "message_from_bytes", forbidden)
    monkeypatch.setattr(signed, "BytesHeaderParser", forbidden)
    assert extract(msg).verify(verifier).ok


def test_pgp_mime_part_is_sliced_not_reserialised(keys):
    keyring, fprs, verifier = keys
    # Folded header with a tab and odd spacing: the email package would
    # rewrite it; the signature covers it as sent.
    part = b"Content-Type: text/plain;\n\tcharset=\"us-ascii\"\nContent-Transfer-Encoding:   7bit\n\n" + ORDER.encode()
    sig = keyring.detach_sign(signed.canonical_crlf(part), fprs["alice"]).encode()
    msg = (b"From: alice@pit.test\nContent-Type: multipart/signed;\n boundary=\"b\";\n protocol=\"application/pgp-signature\"\n\n"
           b"--b\n" + part + b"\n--b  \nContent-Type: application/pgp-signature\n\n" + sig + b"--b--\n")
    s = extract(msg)
    assert s.kind == "pgp-mime" and s.text == ORDER
    assert s.signed_bytes == signed.canonical_crlf(part)
    assert s.verify(verifier).ok


def test_pgp_mime_compose_names_the_hash_and_encodes_when_needed(keys):
    keyring, fprs, verifier = keys
    msg = signed.compose_pgp_mime(HEADERS, ORDER + "From the desk \nNote: \u00e9\n", keyring, fprs["alice"])
    assert re.search(rb"micalg=pgp-sha(256|512)", msg)
    assert b"Content-Transfer-Encoding: quoted-printable" in msg
    assert b"\n=46rom the desk=20\n" in msg
    s = extract(msg)
    assert s.text == ORDER + "From the desk \nNote: \u00e9\n"
    assert s.verify(verifier).ok
    plain = signed.compose_pgp_mime(HEADERS, ORDER, keyring, fprs["alice"])
    assert b"Content-Transfer-Encoding: 7bit" in plain


def test_clearsigned_in_quoted_printable_and_base64(keys):
    keyring, fprs, verifier = keys
    msg = signed.compose_clearsigned(HEADERS, ORDER + "Note: \u20ac\n", keyring, fprs["alice"])
    assert b"quoted-printable" in msg
    s = extract(msg)
    assert s.text.endswith("Note: \u20ac\n") and s.verify(verifier).ok
    head, body = signed.compose_clearsigned(HEADERS, ORDER, keyring, fprs["alice"]).split(b"\n\n", 1)
    b64 = head.replace(b"7bit", b"base64") + b"\n\n" + base64.encodebytes(body)
    assert extract(b64).verify(verifier).ok


@pytest.mark.parametrize("msg, status, words", [
    (b"From: a@b\nSubject: hi\n\nbuy 100 ACME\n", "unsigned", "no '-----BEGIN PGP SIGNED MESSAGE-----'"),
    (b"From: a@b\nContent-Type: text/html\n\n<p>hi</p>\n", "unsigned", "text/html"),
    (b"From: a@b\n\n-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n", "malformed", "no '-----BEGIN PGP SIGNATURE-----'"),
    (b"From: a@b\n\n-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n", "malformed", "no '-----END PGP SIGNATURE-----'"),
    (b"From: a@b\n\n-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n-----BEGIN PGP SIGNATURE-----\n\n!!!!\n-----END PGP SIGNATURE-----\n", "malformed", "base64"),
    (b"From: a@b\n\n-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256", "malformed", "armour headers"),
    (b"From: a@b\nContent-Transfer-Encoding: base64\n\n!!!\n", "malformed", "base64 body"),
    (b"From: a@b\nContent-Transfer-Encoding: x-uuencode\n\nx\n", "malformed", "x-uuencode"),
    (b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\n\n--b\n\nx\n--b--\n", "unsigned", "pkcs7"),
    (b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"\n\n--b\n\nx\n--b--\n", "malformed", "boundary"),
    (b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=b\n\n--b\n\nx\n--b--\n", "malformed", "two parts"),
    (b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=b\n\n--b\n\nx\n--b\nContent-Type: text/plain\n\ny\n--b--\n", "malformed", "second part"),
    (b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: image/png\n\nx\n--b--\n", "unsigned", "no text/plain"),
])
def test_refusals_say_why(msg, status, words):
    with pytest.raises(SignedError) as err:
        extract(msg)
    assert err.value.status == status
    assert words in str(err.value)
    assert err.value.verdict().status == status


def test_bad_charset_is_malformed(keys):
    keyring, fprs, _ = keys
    msg = signed.compose_clearsigned(HEADERS, ORDER + "\u00e9\n", keyring, fprs["alice"])
    with pytest.raises(SignedError, match="unknown charset"):
        extract(msg.replace(b"charset=utf-8", b"charset=x-nonesuch"))
    latin = msg.replace(b"Content-Transfer-Encoding: quoted-printable", b"Content-Transfer-Encoding: 8bit")
    latin = latin.split(b"\n\n", 1)[0] + b"\n\n" + email.message_from_bytes(msg).get_payload(decode=True).replace("\u00e9".encode(), b"\xe9")
    with pytest.raises(SignedError, match="not valid utf-8"):
        extract(latin)


def test_extract_wants_bytes():
    with pytest.raises(TypeError):
        extract("From: a@b\n\nhello\n")


def test_compose_refuses_header_injection(keys):
    keyring, fprs, _ = keys
    with pytest.raises(ValueError, match="line break"):
        signed.compose_clearsigned({"Subject": "x\nBcc: evil"}, ORDER, keyring, fprs["alice"])


def test_archived_record_still_extracts(keys):
    """The notary prepends X-Pit- stamp lines; extraction must not care."""
    keyring, fprs, verifier = keys
    msg = signed.compose_pgp_mime(HEADERS, ORDER, keyring, fprs["alice"])
    record = b"X-Pit-Seq: 42\nX-Pit-Time: 2026-11-22T00:52:38.123456Z\n" + msg
    assert extract(record).verify(verifier).ok
    from_line = b"From notary@demo Sun Nov 22 00:52:38 2026\n" + record
    assert extract(from_line).text == ORDER


def test_command_line(keys, tmp_path, capsys):
    keyring, fprs, _ = keys
    path = tmp_path / "m.eml"
    path.write_bytes(signed.compose_pgp_mime(HEADERS, ORDER, keyring, fprs["bob"]))
    assert signed.main([str(path), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert ORDER in out and "gpg --status-fd 1 --verify" in out
    assert (tmp_path / "out" / "signed.bin").read_bytes() == extract(path.read_bytes()).signed_bytes
    assert keyring.verify_gpg((tmp_path / "out" / "signed.bin").read_bytes(),
                       (tmp_path / "out" / "signature.asc").read_bytes()).ok
    path.write_bytes(b"From: a@b\n\nhello\n")
    assert signed.main([str(path)]) == 1
    assert "unsigned" in capsys.readouterr().err
