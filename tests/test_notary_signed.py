"""What a signature must show, judged on the user's path: signed mail into
the pit's incoming maildir, the real ``pit notarize``, and ``pit rejects``
telling why, one line each.  Ambiguous signed content, signatures dated in
the future or too long ago, and SHA-1 signatures are refused; a
format=flowed order and a signed order inside a list's multipart/mixed are
taken, read as the trader wrote them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pit import mbox, ops, signed
from pit.archive import Archive
from pit.keyring import Keyring

pytestmark = pytest.mark.e2e

PIT_BIN = Path(sys.executable).with_name("pit")
DAY = 86400


def pit(kit, *argv) -> subprocess.CompletedProcess:
    p = subprocess.run([str(PIT_BIN), "--pit", str(kit.root), *argv], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p


def order_text(kit, ref: str, account: str = "alice") -> str:
    return ops.request_text(kit.pit, account, ref, "Order", "buy 10 ACME at 12.50")


def headers(kit, who: str = "alice") -> list[tuple[str, str]]:
    return [("From", f"{who}@pit.test"), ("To", kit.pit.address), ("Subject", "order"),
            ("Message-ID", f"<{time.time_ns()}.{who}@pit.test>")]


def html_of(text: str) -> str:
    return "<html><body><p>" + "<br>".join(text.rstrip("\n").split("\n")) + "</p></body></html>"


def alternative(plain: str, html: str) -> bytes:
    return (f'Content-Type: multipart/alternative; boundary="alt"\n\n--alt\n'
            f"Content-Type: text/plain; charset=utf-8\n\n{plain}\n--alt\n"
            f"Content-Type: text/html; charset=utf-8\n\n{html}\n--alt--\n").encode()


def in_list_footer(msg: bytes) -> bytes:
    """A signed message as a mailing list passes it on: in multipart/mixed, with a footer."""
    head, body = msg.split(b"\n\n", 1)
    top = [l for l in head.split(b"\n") if not l.lower().startswith(b"content-type") and not l.startswith(b" ")]
    ctype = head[head.lower().index(b"content-type:"):].split(b"\n")
    inner = [ctype[0]] + [l for l in ctype[1:] if l.startswith(b" ")]
    return (b"\n".join(top) + b'\nContent-Type: multipart/mixed; boundary="list"\n\n--list\n'
            + b"\n".join(inner) + b"\n\n" + body
            + b"\n--list\nContent-Type: text/plain\n\n-- \ndemo mailing list\n--list--\n")


def test_refused_for_what_they_show_and_when_they_were_signed(kit, tmp_path):
    ring, alice = kit.ring, kit.fpr("alice")
    now = int(time.time())
    # A member whose key is two months old, to sign a request "too long ago".
    vet_ring = Keyring(tmp_path / "vet")
    vet = vet_ring.generate("vet", "vet@pit.test", at=now - 60 * DAY)
    assert ops.add_member(kit.pit, vet_ring.export(vet), ["vet"])[1].accepted

    sha1 = ring._gpg().sign(order_text(kit, "sha1"), keyid=alice, clearsign=True,
                            extra_args=["--digest-algo", "SHA1"]).data
    first = signed.compose_clearsigned(headers(kit), order_text(kit, "two-a"), ring, alice)
    second = signed.compose_clearsigned(headers(kit), order_text(kit, "two-b"), ring, alice)
    cases = {
        "ambiguous: PGP/MIME signed part: the text/html alternative (what mail readers show) differs":
            signed.compose_pgp_mime_part(headers(kit), alternative(
                order_text(kit, "alt"), html_of(order_text(kit, "alt").replace("buy 10", "buy 90"))), ring, alice),
        "ambiguous: PGP/MIME signed part is text/html only":
            signed.compose_pgp_mime_part(headers(kit), b"Content-Type: text/html\n\n"
                                         + html_of(order_text(kit, "html")).encode(), ring, alice),
        "ambiguous: message body holds 2 clearsigned blocks; send one request per message":
            first + b"\n" + second.split(b"\n\n", 1)[1],
        "in the future; the notary allows 5 min of clock skew":
            signed.compose_clearsigned(headers(kit), order_text(kit, "future"), ring, alice, at=now + DAY),
        "old; the pit takes signatures up to 3 days old (signature_max_age)":
            signed.compose_clearsigned(headers(kit, "vet"), order_text(kit, "old", "vet"), vet_ring, vet,
                                       at=now - 10 * DAY),
        "invalid signature: signature by key": b"From: alice@pit.test\nSubject: order\n\n" + sha1,
    }
    taken = {
        "flowed": signed.compose_pgp_mime_part(
            headers(kit), ("Content-Type: text/plain; charset=utf-8; format=flowed\n\n"
                           + order_text(kit, "flowed").replace("Order: buy 10 ACME ", "Order: buy 10 \nACME ")
                           ).encode(), ring, alice),
        "list": in_list_footer(signed.compose_pgp_mime(headers(kit), order_text(kit, "list"), ring, alice)),
        "skew": signed.compose_clearsigned(headers(kit), order_text(kit, "skew"), ring, alice, at=now + 60),
        "vet": signed.compose_clearsigned(headers(kit, "vet"), order_text(kit, "fresh", "vet"), vet_ring, vet),
    }
    vet_ring.stop_agent()
    for raw in [*cases.values(), *taken.values()]:
        ops.send_local(kit.pit, raw)
    before = len(list(Archive(kit.root).read()))

    out = pit(kit, "notarize").stdout
    assert f"{len(taken)} notarized, {len(cases)} refused" in out, out
    reasons = [json.loads(line)["reason"] for line in pit(kit, "rejects", "--json").stdout.splitlines()]
    for fragment in cases:
        assert sum(fragment in r for r in reasons) == 1, (fragment, reasons)
    assert all("\n" not in r for r in reasons)
    assert any("SHA-1" in r for r in reasons)
    text = pit(kit, "rejects").stdout
    assert "signature time: " in text and "2 clearsigned blocks" in text

    stamps = [mbox.stamp(m) for _, m in Archive(kit.root).read()][before:]
    refs = {s.get("x-pit-ref") for s in stamps if s.get("x-pit-kind") == "order"}
    assert {"flowed", "list", "skew", "fresh"} <= refs
    flowed = [s for s in stamps if s.get("x-pit-ref") == "flowed"][0]
    assert "buy 10 ACME limit 12.50" in flowed["x-pit-request"]   # the soft break joined


def test_the_age_limit_is_a_setting(kit, tmp_path):
    now = int(time.time())
    vet_ring = Keyring(tmp_path / "vet")
    vet = vet_ring.generate("vet", "vet@pit.test", at=now - 60 * DAY)
    assert ops.add_member(kit.pit, vet_ring.export(vet), ["vet"])[1].accepted
    raw = signed.compose_clearsigned(headers(kit, "vet"), order_text(kit, "old", "vet"), vet_ring, vet,
                                     at=now - 10 * DAY)
    vet_ring.stop_agent()
    kit.pit.set(signature_max_age="0")
    ops.send_local(kit.pit, raw)
    assert "1 notarized, 0 refused" in pit(kit, "notarize").stdout
