"""A pit on a real GNU Mailman 3 core (started once for this module).

Provisioning sets and reads back every setting; two pits stay separate;
the notary's LMTP path posts stamped mail that reaches every member with
its body (and signature) unchanged; nothing else reaches the members.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from pit.mailhost import (MailError, MailSink, NotaryLMTPServer, PitRoute, lmtp_send,
                          mboxrd_entry)
from pit.mailman import (PIT_LIST_SETTINGS, PIT_TEMPLATES, MailmanClient, MailmanError,
                         add_member, check_pit, list_members, provision_pit, remove_member)

from mailman_harness import mailman_server  # noqa: F401  (the fixture)

DOMAIN = "pits.test"
NOTARY = "notary@pits.test"
ARCHIVE = "archive@pits.test"
SPECIALIST = "acme-specialist@pits.test"
ALICE = "alice@traders.test"
BOB = "bob@traders.test"
CAROL = "carol@traders.test"
MALLORY = "mallory@elsewhere.test"
DEMO_MEMBERS = [ARCHIVE, SPECIALIST, ALICE, BOB]
WAIT = 30.0


def _message(sender: str, to: str, subject: str, body: bytes) -> bytes:
    return (f"From: {sender}\nTo: {to}\nSubject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '-')}@traders.test>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n").encode() + body


def _split(msg: bytes) -> tuple[bytes, bytes]:
    head, _, body = msg.partition(b"\n\n")
    return head, body


def _headers(msg: bytes) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in _split(msg)[0].split(b"\n"):
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        key, _, value = line.partition(b":")
        found.setdefault(key.decode().lower(), []).append(value.decode().strip())
    return found


class StubNotary:
    """Stands in for moderator/notary.py: stamps a sequence number; a message
    whose Subject says 'seal' also yields a seal; 'refuse' yields nothing."""

    def __init__(self):
        self.seq = 0
        self.lock = threading.Lock()
        self.seen: list[tuple[bytes, str]] = []

    def __call__(self, msg_bytes: bytes, envelope_sender: str) -> list[bytes]:
        with self.lock:
            self.seen.append((msg_bytes, envelope_sender))
            subject = _headers(msg_bytes).get("subject", [""])[0]
            if "refuse" in subject:
                return []
            self.seq += 1
            out = [f"X-Pit-Seq: {self.seq}\nX-Pit-Kind: order\n".encode() + msg_bytes]
            if "seal" in subject:
                self.seq += 1
                out.append(f"X-Pit-Seq: {self.seq}\nX-Pit-Kind: seal\n".encode()
                           + _message(NOTARY, "demo@pits.test", "seal", b"1 hash\n"))
            return out


@pytest.fixture(scope="module")
def client(mailman_server):
    return MailmanClient(mailman_server.rest_url, mailman_server.rest_user,
                         mailman_server.rest_password)


@pytest.fixture(scope="module")
def demo(client):
    return provision_pit(client, "demo", DOMAIN, NOTARY, ARCHIVE,
                         specialists=[SPECIALIST], members=[ALICE, BOB])


@pytest.fixture(scope="module")
def notary(mailman_server, demo):
    stub = StubNotary()
    route = PitRoute(demo.address, NOTARY, stub, demo.approval_secret)
    server = NotaryLMTPServer({demo.address: route},
                              (mailman_server.lmtp_host, mailman_server.lmtp_port))
    with server:
        yield server, stub


def _send_to_notary(server: NotaryLMTPServer, msg: bytes, sender: str, rcpt: str):
    return lmtp_send(server.host, server.port, msg, sender, [rcpt])[rcpt]


# -- provisioning ---------------------------------------------------------------

@pytest.mark.e2e
def test_provisioning_sets_and_checks_every_setting(client, demo):
    config = client.get(f"lists/{demo.list_id}/config")
    for name, wanted in PIT_LIST_SETTINGS.items():
        assert config[name] == wanted, name
    uris = {e["name"]: e["uri"] for e in client.get(f"lists/{demo.list_id}/uris")["entries"]}
    for name, wanted in PIT_TEMPLATES.items():
        assert uris[name] == wanted
    assert list_members(client, demo.list_id) == sorted(DEMO_MEMBERS)
    assert list_members(client, demo.list_id, "moderator") == [NOTARY]
    check_pit(client, demo, DEMO_MEMBERS)


@pytest.mark.e2e
def test_check_pit_names_every_drift_and_provisioning_repairs_it(client, demo):
    client.patch(f"lists/{demo.list_id}/config",
                 {"subject_prefix": "[demo] ", "default_nonmember_action": "accept"})
    with pytest.raises(MailmanError) as caught:
        check_pit(client, demo, DEMO_MEMBERS)
    text = str(caught.value)
    assert "subject_prefix" in text and "default_nonmember_action" in text
    again = provision_pit(client, "demo", DOMAIN, NOTARY, ARCHIVE, [SPECIALIST], [ALICE, BOB],
                          approval_secret=demo.approval_secret)
    check_pit(client, again, DEMO_MEMBERS)


@pytest.mark.e2e
def test_a_wrong_secret_or_missing_member_is_reported(client, demo):
    from dataclasses import replace
    with pytest.raises(MailmanError, match="header matches"):
        check_pit(client, replace(demo, approval_secret="x" * 32))
    with pytest.raises(MailmanError, match=f"{CAROL} is not a member"):
        check_pit(client, demo, [CAROL])


@pytest.mark.e2e
def test_second_pit_is_separate_and_members_come_and_go(client, demo):
    other = provision_pit(client, "metals", DOMAIN, "notary-metals@pits.test",
                          "archive-metals@pits.test", members=[CAROL])
    assert other.list_id != demo.list_id
    assert other.approval_secret != demo.approval_secret
    assert list_members(client, other.list_id) == ["archive-metals@pits.test", CAROL]
    assert CAROL not in list_members(client, demo.list_id)
    add_member(client, other.list_id, BOB)
    assert BOB in list_members(client, other.list_id)
    remove_member(client, other.list_id, BOB)
    assert BOB not in list_members(client, other.list_id)
    assert BOB in list_members(client, demo.list_id)  # the other pit is untouched
    check_pit(client, demo, DEMO_MEMBERS)


def test_bad_names_are_refused_before_any_rest_call():
    nowhere = MailmanClient("http://127.0.0.1:9/3.1", "u", "p")
    with pytest.raises(MailmanError, match="pit name"):
        provision_pit(nowhere, "de mo", DOMAIN, NOTARY, ARCHIVE)
    with pytest.raises(MailmanError, match="not an email address"):
        provision_pit(nowhere, "demo", DOMAIN, "notary", ARCHIVE)
    with pytest.raises(MailmanError, match="cannot reach"):
        nowhere.get("system/versions")


# -- the posting path -----------------------------------------------------------

@pytest.mark.e2e
def test_notarized_message_reaches_every_member_with_body_unchanged(mailman_server, notary, tmp_path):
    server, stub = notary
    sink = mailman_server.sink
    body = _signed_body(tmp_path) or b"Pit: demo\nAccount: alice\nRef: 1\nOrder: buy 100 ACME at 12.50\n"
    before = {m: sink.count(m) for m in DEMO_MEMBERS}
    order = _message(ALICE, "demo@pits.test", "order 1", body)
    code, text = _send_to_notary(server, order, ALICE, "demo@pits.test")
    assert code == 250, text
    assert stub.seen[-1] == (order, ALICE)
    for member in DEMO_MEMBERS:
        got = mailman_server.wait_for(member, before[member] + 1, WAIT)[-1]
        head, got_body = _split(got)
        assert got_body == body, member
        headers = _headers(got)
        assert headers["from"] == [ALICE]          # the trader stays the author
        assert headers["x-pit-seq"] and headers["x-pit-kind"] == ["order"]
        assert "approved" not in headers           # the secret never leaves Mailman
        assert "list-unsubscribe" not in headers   # no RFC 2369 decoration
    if body.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----"):
        from pit.keyring import Keyring
        delivered = _split(sink.messages(ARCHIVE)[-1])[1]
        assert Keyring(tmp_path / "gnupg").verify_gpg(delivered).ok
    # The sink's mbox file ends with the same message.
    entry = mboxrd_entry(sink.messages(ARCHIVE)[-1], NOTARY)
    assert sink.mbox_path(ARCHIVE).read_bytes().endswith(entry.split(b"\n", 1)[1])


@pytest.mark.e2e
def test_seal_follows_its_message_and_refusals_post_nothing(mailman_server, notary):
    server, stub = notary
    before = mailman_server.sink.count(ARCHIVE)
    code, _ = _send_to_notary(server, _message(BOB, "demo@pits.test", "refuse me", b"x\n"),
                              BOB, "demo@pits.test")
    assert code == 250
    code, _ = _send_to_notary(server, _message(BOB, "demo@pits.test", "order and seal", b"y\n"),
                              BOB, "demo@pits.test")
    assert code == 250
    got = mailman_server.wait_for(ARCHIVE, before + 2, WAIT)[before:]
    assert [_headers(m)["x-pit-kind"] for m in got] == [["order"], ["seal"]]
    assert all(b"refuse me" not in m for m in mailman_server.sink.messages(ARCHIVE))


@pytest.mark.e2e
def test_notary_failure_asks_the_mta_to_retry_and_unknown_pits_are_refused(mailman_server, demo):
    def broken(msg, sender):
        raise RuntimeError("keyring unavailable")
    route = PitRoute(demo.address, NOTARY, broken, demo.approval_secret)
    with NotaryLMTPServer({demo.address: route},
                          (mailman_server.lmtp_host, mailman_server.lmtp_port)) as server:
        status = lmtp_send(server.host, server.port, _message(ALICE, demo.address, "o", b"z\n"),
                           ALICE, [demo.address, "nopit@pits.test"])
    assert status[demo.address][0] == 451
    assert status["nopit@pits.test"][0] == 550


@pytest.mark.e2e
def test_unreachable_list_spools_and_flushes_in_order(mailman_server, demo, tmp_path):
    route = PitRoute(demo.address, NOTARY, StubNotary(), demo.approval_secret)
    dead = ("127.0.0.1", 9)
    with NotaryLMTPServer({demo.address: route}, dead, spool_dir=tmp_path / "spool") as server:
        for n in (1, 2):
            code, _ = _send_to_notary(server, _message(ALICE, demo.address, f"spooled {n}", b"s\n"),
                                      ALICE, demo.address)
            assert code == 250
        # the 250 comes once notarized; the injector's failed try spools after it
        spool = tmp_path / "spool" / demo.address.lower()
        deadline = time.monotonic() + WAIT
        while len(list(spool.glob("*.eml"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.flush_spool() == 0              # still unreachable: kept
        before = mailman_server.sink.count(ARCHIVE)
        server.mailman_lmtp = (mailman_server.lmtp_host, mailman_server.lmtp_port)
        assert server.flush_spool() == 2
    got = mailman_server.wait_for(ARCHIVE, before + 2, WAIT)[before:]
    assert sorted(_headers(m)["subject"][0] for m in got) == ["spooled 1", "spooled 2"]


def _too_large(size: int) -> bytes:
    return (_message(ALICE, "demo@pits.test", "not for the list", b"x" * 71 + b"\n")
            + (b"z" * 71 + b"\n") * (size // 72))


@pytest.mark.e2e
@pytest.mark.parametrize("record, limit", [
    (lambda: _too_large(2 ** 25 + 2 ** 16), 0),
    (lambda: _too_large(6_000), 5_000),
    # an envelope "From " line in a message the notary archived, signed:
    # under the notary's stamp it is a header Python's email parser calls a
    # defect, and Mailman's LMTP runner refuses the message (501)
    (lambda: b"From alice@traders.test Mon Dec  7 00:00:00 2026\n"
             + _message(ALICE, "demo@pits.test", "not for the list", b"s\n"), 0),
], ids=["over-mailmans-32-MiB", "over-the-pits-list-limit", "defective-to-mailman"])
def test_a_record_the_list_will_not_take_does_not_hold_back_the_rest(mailman_server, demo, tmp_path,
                                                                     record, limit):
    """The notary archives what Mailman may never take: a filter's report or
    checkpoint of up to 256 MiB where Mailman's LMTP runner takes 32 MiB
    (552), a record over the pit's max_list_message_size (which keeps off
    the list what its MTA would refuse), a signed order whose header block
    Python's email parser finds defects in (501).  Such a record used to be
    spooled, and every record after it behind it, for ever: the list
    stopped.  It is left out of the list, said in the log, and the next
    record reaches the members."""
    route = PitRoute(demo.address, NOTARY, StubNotary(), demo.approval_secret,
                     max_list_size=limit)
    lmtp = (mailman_server.lmtp_host, mailman_server.lmtp_port)
    spool = tmp_path / "spool"
    with NotaryLMTPServer({demo.address: route}, lmtp, spool_dir=spool) as server:
        before = mailman_server.sink.count(ARCHIVE)
        code, text = _send_to_notary(server, record(), ALICE, demo.address)
        assert code == 250, text                  # notarized: in the archive
        code, text = _send_to_notary(server, _message(ALICE, demo.address, "after it", b"s\n"),
                                     ALICE, demo.address)
        assert code == 250, text
        got = mailman_server.wait_for(ARCHIVE, before + 1, WAIT)[before:]
        assert [_headers(m)["subject"][0] for m in got] == ["after it"]
        assert not list(spool.rglob("*.eml"))


@pytest.mark.e2e
def test_direct_posts_never_reach_the_members(mailman_server, notary, demo):
    server, _ = notary
    sink = mailman_server.sink
    before = {m: sink.count(m) for m in DEMO_MEMBERS}
    rejected_before = {a: sink.count(a) for a in (MALLORY, BOB)}
    direct = [
        (BOB, _message(BOB, demo.address, "direct from a member", b"bypass\n")),
        (MALLORY, _message(MALLORY, demo.address, "direct from a stranger", b"bypass\n")),
        (MALLORY, b"Approved: not-the-secret-at-all\n"
                  + _message(MALLORY, demo.address, "guessed approval", b"bypass\n")),
        (BOB, b"X-Pit-Seq: 99\n" + _message(BOB, demo.address, "forged stamp", b"bypass\n")),
    ]
    for sender, msg in direct:
        code, text = mailman_server.post_lmtp(msg, demo.address, sender)
        assert code == 250, text       # Mailman takes it, then refuses it
    # Each refusal is a notice to its sender: wait for all of them, then for
    # one notarized message posted after them, so every direct post has
    # been through Mailman's pipeline.
    mailman_server.wait_for(MALLORY, rejected_before[MALLORY] + 2, WAIT)
    code, _ = _send_to_notary(server, _message(ALICE, demo.address, "after the direct posts",
                                               b"notarized\n"), ALICE, demo.address)
    assert code == 250
    for member in DEMO_MEMBERS:
        mailman_server.wait_for(member, before[member] + 1, WAIT)
    for member in DEMO_MEMBERS:
        for msg in sink.messages(member)[before[member]:]:
            headers = _headers(msg)
            if "x-pit-kind" in headers:
                continue
            # The only other mail a member may get is the refusal of its
            # own direct post, from the list's owner address, never the post.
            assert member == BOB and headers["from"][0].endswith("demo-owner@pits.test"), msg[:400]
            assert headers["to"] == [BOB]


@pytest.mark.e2e
def test_what_mailman_does_to_list_copies(mailman_server, notary, demo):
    """Facts the archive design rests on (docs/mailman.md): Mailman's outgoing
    SMTP quotes body lines starting "From " and refolds long headers, and
    appends its own headers after the original ones.  So list copies keep a
    clearsigned or RFC 3156 signature valid, but are not the record's bytes:
    the notary writes the archive from its own bytes."""
    server, _ = notary
    before = mailman_server.sink.count(ARCHIVE)
    long_subject = "long " * 30
    msg = _message(ALICE, demo.address, long_subject.strip(), b"From the floor\nplain\n")
    code, _ = _send_to_notary(server, msg, ALICE, demo.address)
    assert code == 250
    got = mailman_server.wait_for(ARCHIVE, before + 1, WAIT)[before]
    head, body = _split(got)
    assert body == b">From the floor\nplain\n"
    assert b"Subject: " + long_subject.strip().encode() + b"\n" not in head   # refolded
    assert head.startswith(b"X-Pit-Seq: ")                                   # stamp still first
    assert b"\nX-Mailman-Version: " in head


# -- plumbing without Mailman ---------------------------------------------------

def test_sink_stores_per_recipient_and_calls_back(tmp_path):
    calls = []
    with MailSink(tmp_path / "mail") as sink:
        sink.on_delivery("b@x.test", lambda msg, sender: calls.append((msg, sender)))
        import smtplib
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            smtp.sendmail("s@x.test", ["a@x.test", "B@x.test"],
                          b"Subject: t\r\n\r\nFrom here\r\n.dot\r\n")
        got = sink.wait_for("a@x.test", 1, 10)
        assert got == [b"Subject: t\n\nFrom here\n.dot\n"]
        assert calls == [(got[0], "s@x.test")]
        mbox = sink.mbox_path("a@x.test").read_bytes()
        assert mbox.startswith(b"From s@x.test ") and b"\n>From here\n" in mbox
        with pytest.raises(MailError, match="1 of 2"):
            sink.wait_for("a@x.test", 2, 0.2)


def _signed_body(tmp_path) -> bytes | None:
    """A body clearsigned by a fresh key, if gpg is here; else None."""
    if shutil.which("gpg") is None:
        return None
    try:
        from pit.keyring import Keyring
    except ImportError:
        return None
    keyring = Keyring(tmp_path / "gnupg")
    fpr = keyring.generate("alice", ALICE)
    # gpg dash-escapes the "From " line ("- From "), so Mailman's From-quoting
    # of list copies cannot touch the signed text.
    text = "Pit: demo\nAccount: alice\nRef: 1\nOrder: buy 100 ACME at 12.50\nFrom here on\n"
    return keyring.clearsign(text, fpr).replace("\r\n", "\n").encode("utf-8")
