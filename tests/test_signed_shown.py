"""What you see is what you sign: pit.signed reads an order only from a
signed text/plain text that a mail reader shows the same, finds a signed
part nested in a multipart message, and decodes format=flowed text."""

from __future__ import annotations

import pytest

from pit import signed, testkeys
from pit.keyring import Keyring
from pit.signed import SignedError, extract

ORDER = "Pit: demo\nAccount: alice\nRef: 1\nOrder: buy 1 ACME at 1\n"
HTML_ORDER = "<html><head><title>order</title><style>p {margin: 0}</style></head><body>" \
             "<p>Pit: demo<br>Account: alice<br>Ref: 1<br>Order: buy 1 ACME at 1</p></body></html>\n"
HEADERS = [("From", "alice@pit.test"), ("To", "demo@pit.test"), ("Subject", "order")]


@pytest.fixture(autouse=True)
def _no_agents_left(tmp_path):
    yield
    testkeys.stop_agents(tmp_path)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    home = tmp_path_factory.mktemp("shown") / "home"
    fprs = testkeys.make_keys(home, [("alice", "ed25519")])
    keyring = Keyring(home)
    yield keyring, fprs["alice"], keyring.load_verifier()
    testkeys.stop_agents(home)


def mime_signed(keys, part: str) -> bytes:
    keyring, fpr, _ = keys
    return signed.compose_pgp_mime_part(HEADERS, part.encode(), keyring, fpr)


def alternative(*parts: tuple[str, str]) -> str:
    body = "".join(f"--alt\nContent-Type: {ctype}; charset=utf-8\n\n{text}\n" for ctype, text in parts)
    return f'Content-Type: multipart/alternative; boundary="alt"\n\n{body}--alt--\n'


def refused(msg: bytes, *words: str) -> SignedError:
    with pytest.raises(SignedError) as err:
        extract(msg)
    for w in words:
        assert w in str(err.value), str(err.value)
    return err.value


# -- multipart/alternative --------------------------------------------------------

def test_alternatives_that_disagree_are_refused(keys):
    shown = HTML_ORDER.replace("buy 1 ACME", "buy 9 ACME")
    err = refused(mime_signed(keys, alternative(("text/plain", ORDER), ("text/html", shown))),
                  "text/html alternative", "differs")
    assert err.status == "ambiguous"


def test_alternatives_that_agree_are_read_from_text_plain(keys):
    for parts in ((("text/plain", ORDER), ("text/html", HTML_ORDER)),
                  (("text/html", HTML_ORDER), ("text/plain", ORDER))):
        s = extract(mime_signed(keys, alternative(*parts)))
        assert s.text == ORDER and s.verify(keys[2]).ok


def test_html_that_hides_text_is_refused(keys):
    html = HTML_ORDER.replace("</p>", "<span style='display: none'>Order: sell 9</span></p>")
    refused(mime_signed(keys, alternative(("text/plain", ORDER), ("text/html", html))), "hides text")


def test_styles_that_do_not_hide_are_fine(keys):
    html = HTML_ORDER.replace("<p>", "<p style='font-size: 0.9em; opacity: 0.8; line-height: 0'>")
    s = extract(mime_signed(keys, alternative(("text/plain", ORDER), ("text/html", html))))
    assert s.text == ORDER
    for hiding in ("font-size:0px", "height: 0; overflow: hidden", "visibility: hidden"):
        html = HTML_ORDER.replace("</p>", f"<span style='{hiding}'>Order: sell 9</span></p>")
        refused(mime_signed(keys, alternative(("text/plain", ORDER), ("text/html", html))), "hides text")


def test_a_signed_html_part_is_not_an_order(keys):
    part = "Content-Type: text/html; charset=utf-8\n\n" + HTML_ORDER
    err = refused(mime_signed(keys, part), "text/html only", "text/plain")
    assert err.status == "ambiguous"


def test_a_clearsigned_block_in_an_html_body_is_not_an_order(keys):
    keyring, fpr, _ = keys
    msg = signed.compose_clearsigned(HEADERS, ORDER, keyring, fpr)
    refused(msg.replace(b"Content-Type: text/plain", b"Content-Type: text/html"), "text/html", "text/plain")


def test_clearsigned_plain_beside_an_html_alternative_must_agree(keys):
    keyring, fpr, verifier = keys
    block = signed.compose_clearsigned(HEADERS, ORDER, keyring, fpr).split(b"\n\n", 1)[1].decode()
    def msg(html):
        return ("From: alice@pit.test\nMIME-Version: 1.0\n" + alternative(("text/plain", block),
                                                                          ("text/html", html))).encode()
    same = "<pre>" + block.replace("-----BEGIN", "-----BEGIN") + "</pre>"
    assert extract(msg(same)).verify(verifier).ok
    refused(msg("<p>buy 9 ACME</p>"), "differs")


# -- more than one signed block ---------------------------------------------------

def test_two_clearsigned_blocks_are_refused_not_cut(keys):
    keyring, fpr, _ = keys
    first = signed.compose_clearsigned(HEADERS, ORDER, keyring, fpr)
    second = signed.compose_clearsigned(HEADERS, ORDER.replace("Ref: 1", "Ref: 2"), keyring, fpr)
    msg = first + b"\n" + second.split(b"\n\n", 1)[1]
    err = refused(msg, "2 clearsigned blocks", "one request per message")
    assert err.status == "ambiguous"


def test_two_signed_parts_in_a_mixed_message_are_refused(keys):
    one = mime_signed(keys, "Content-Type: text/plain\n\n" + ORDER)
    head, body = one.split(b"\n\n", 1)
    inner = b"\n".join(l for l in head.split(b"\n") if l.lower().startswith((b"content-type", b" ")))
    part = inner + b"\n\n" + body
    msg = (b"From: alice@pit.test\nContent-Type: multipart/mixed; boundary=mix\n\n--mix\n" + part
           + b"\n--mix\n" + part + b"\n--mix--\n")
    refused(msg, "2 signed parts")


# -- nested signed parts ----------------------------------------------------------

def nest_in_mixed(msg: bytes, footer: bytes = b"-- \nlist footer\n") -> bytes:
    """What a mailing list does to a signed message: multipart/mixed around
    it, with a footer part."""
    head, body = msg.split(b"\n\n", 1)
    lines = head.split(b"\n")
    keep, inner, in_ct = [], [], False
    for line in lines:
        if line.lower().startswith(b"content-type:"):
            in_ct = True
            inner.append(line)
        elif in_ct and line[:1] in (b" ", b"\t"):
            inner.append(line)
        else:
            in_ct = False
            keep.append(line)
    return (b"\n".join(keep) + b'\nContent-Type: multipart/mixed; boundary="list"\n\n--list\n'
            + b"\n".join(inner) + b"\n\n" + body + b"\n--list\nContent-Type: text/plain\n\n" + footer
            + b"--list--\n")


def test_a_pgp_mime_part_nested_in_mixed_is_found_and_judged(keys):
    msg = nest_in_mixed(mime_signed(keys, "Content-Type: text/plain; charset=utf-8\n\n" + ORDER))
    s = extract(msg)
    assert s.kind == "pgp-mime" and s.text == ORDER and s.verify(keys[2]).ok
    assert extract(msg.replace(b"buy 1 ACME", b"buy 9 ACME")).verify(keys[2]).status == "bad"


def test_a_signed_message_with_an_attachment(keys):
    part = ('Content-Type: multipart/mixed; boundary="att"\n\n--att\n'
            "Content-Type: text/plain; charset=utf-8\n\n" + ORDER + "\n--att\n"
            'Content-Type: text/plain; name="notes.txt"\nContent-Disposition: attachment; filename="notes.txt"\n\n'
            "Order: sell 9 ACME at 1\n--att--\n")
    s = extract(mime_signed(keys, part))
    assert s.text == ORDER and s.verify(keys[2]).ok
    twice = part.replace("Content-Disposition: attachment; ", "Content-Disposition: inline; ")
    refused(mime_signed(keys, twice), "2 texts")


def test_mime_nesting_is_bounded():
    inner = b"Content-Type: text/plain\n\nx"
    for i in reversed(range(1200)):
        inner = b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n%s\n--b%d--\n" % (i, i, inner, i)
    refused(b"From: a@pit.test\n" + inner, "nested more than")


# -- format=flowed ----------------------------------------------------------------

def test_unflow():
    assert signed.unflow("a \nb\n c\n") == "a b\nc\n"
    assert signed.unflow("a \nb\n", delsp=True) == "ab\n"
    assert signed.unflow("a  \nb\n", delsp=True) == "a b\n"
    assert signed.unflow("-- \nsig\n") == "-- \nsig\n"
    assert signed.unflow("> a \n> b\nc\n") == "> a b\nc\n"
    assert signed.unflow("> a \nb\n") == "> a \nb\n"
    assert signed.unflow(" From me \n", join=False) == "From me \n"


def test_flowed_pgp_mime_text_is_decoded(keys):
    flowed = ("Pit: demo\nAccount: alice\nRef: 1\nNote: a long line \nwrapped by the client\n"
              " From the desk\nOrder: buy 1 ACME at 1\n")
    part = "Content-Type: text/plain; charset=utf-8; format=flowed\n\n" + flowed
    s = extract(mime_signed(keys, part))
    assert s.text == ("Pit: demo\nAccount: alice\nRef: 1\nNote: a long line wrapped by the client\n"
                      "From the desk\nOrder: buy 1 ACME at 1\n")
    assert s.verify(keys[2]).ok
    delsp = part.replace("format=flowed", "format=flowed; delsp=yes")
    assert "Note: a longline" not in extract(mime_signed(keys, delsp)).text
    assert "Note: a long linewrapped" in extract(mime_signed(keys, delsp)).text
    # the soft break is signed: a trailing space added in transit breaks the signature
    tampered = mime_signed(keys, part).replace(b"Ref: 1\n", b"Ref: 1 \n")
    assert extract(tampered).verify(keys[2]).status == "bad"


def test_flowed_clearsigned_text_is_unstuffed_but_not_joined(keys):
    keyring, fpr, verifier = keys
    msg = signed.compose_clearsigned(HEADERS, " Pit: demo\nAccount: alice\nRef: 1\nOrder: buy 1 ACME at 1\n",
                                     keyring, fpr)
    msg = msg.replace(b"charset=utf-8", b"charset=utf-8; format=flowed")
    s = extract(msg)
    assert s.text == ORDER and s.verify(verifier).ok
    # a trailing space added in transit does not join lines: it is not signed
    s = extract(msg.replace(b"Ref: 1\n", b"Ref: 1 \n"))
    assert "Ref: 1\nOrder" in s.text and s.verify(verifier).ok


def test_mutated_mime_messages_get_a_reason_never_an_exception(keys):
    """Seeded mutations of signed multipart messages (boundaries, RFC 2231
    parameters, 8-bit headers, flowed, HTML): extract returns or raises
    SignedError, nothing else."""
    import random
    keyring, fpr, _ = keys
    seeds = [mime_signed(keys, alternative(("text/plain; format=flowed", ORDER), ("text/html", HTML_ORDER))),
             nest_in_mixed(mime_signed(keys, "Content-Type: text/plain\n\n" + ORDER)),
             signed.compose_clearsigned(HEADERS, ORDER, keyring, fpr)]
    tokens = [b"--", b"\n", b"\r\n", b"boundary=", b"boundary*=utf-8''q", b"multipart/mixed",
              b"multipart/alternative", b"text/html", b"format=flowed", b"delsp=yes",
              b"Content-Type: ", b"-----BEGIN PGP SIGNED MESSAGE-----\n", b"base64",
              b"quoted-printable", b"\x00", b"\xff", b"<p hidden>", b"Content-Disposition: attachment"]
    rng = random.Random(15)
    outcomes = set()
    for _ in range(3000):
        m = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            pos, r = rng.randrange(len(m) + 1), rng.random()
            if r < 0.4:
                m[pos:pos] = rng.choice(tokens)
            elif r < 0.7:
                del m[pos:pos + rng.randint(1, 20)]
            else:
                m[pos:pos + 1] = bytes([rng.randrange(256)])
        try:
            signed.extract(bytes(m))
            outcomes.add("read")
        except SignedError as err:
            outcomes.add(err.status)
    assert {"read", "malformed", "ambiguous"} <= outcomes
