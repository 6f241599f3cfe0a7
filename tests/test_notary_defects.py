"""The notary under attack, through the user's path: mail delivered into a
pit's incoming maildir, ``pit notarize`` (or ``pit order --notarize``), then
``pit audit``.  Each test is one way a message once stopped the pit, got
something forged into the record, or sent mail where it should not."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from moderator.notary import Notary
from pit import audit, message, mbox, ops, testkeys
from pit.archive import Archive
from pit.cli import main
from pit.keyring import Keyring

ORDER = ("Order", "buy 10 ACME at 12.50")
BIN = Path(sys.executable).parent


def pit_cmd(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


def rejected(kit) -> dict[str, str]:
    """digest -> reason, from the reject record."""
    out = {}
    for entry in kit.rejects():
        block, _ = mbox.split_stamp(entry)
        fields = dict(line.split(": ", 1) for line in block.decode().splitlines() if ": " in line)
        out[fields["X-Pit-Digest"]] = fields["X-Pit-Rejected"]
    return out


def archived(kit) -> set[str]:
    return {mbox.stamp(m)["x-pit-digest"] for _, m in kit.records()}


def incoming_left(kit) -> list[str]:
    inc = kit.root / "incoming"
    return [f"{d}/{n}" for d in ("new", "cur") if (inc / d).exists() for n in os.listdir(inc / d)]


def nested(depth: int) -> bytes:
    head = b"From: x@example.org\nTo: demo@pit.localhost\nSubject: deep\nMIME-Version: 1.0\n"
    parts = [head]
    for i in range(depth):
        parts.append(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i))
    parts.append(b"Content-Type: text/plain\n\nhello\n")
    for i in reversed(range(depth)):
        parts.append(b"--b%d--\n" % i)
    return b"".join(parts)


# -- 1. one message stops the pit ---------------------------------------------------

def test_deeply_nested_message_is_refused_and_the_queue_goes_on(kit, capsys):
    bomb = nested(1200)
    ops.send_local(kit.pit, bomb)
    order = kit.request("alice", "after-bomb", *ORDER)
    ops.send_local(kit.pit, order)
    code, out = pit_cmd(capsys, "--pit", kit.root, "notarize")
    assert code == 0, out
    assert "1 notarized, 1 refused" in out
    assert digest(order) in archived(kit)
    reason = rejected(kit)[digest(bomb)]
    assert "MIME" in reason and "nest" in reason, reason
    assert incoming_left(kit) == []


def test_an_entry_of_the_maildir_that_is_not_a_file_stops_nothing(kit, capsys):
    """A directory, a FIFO (reading it would wait for ever) or a dangling
    link in incoming/new is no message: it is refused once, recorded (one
    line in the reject record) and moved to incoming/bad/, and the mail
    around it is notarized; the next run has nothing left to say (it once
    stopped every later run of the pit: claimed into cur/, read,
    IsADirectoryError)."""
    new = kit.root / "incoming" / "new"
    first = kit.request("alice", "before-dir", *ORDER)
    ops.send_local(kit.pit, first)
    (new / "0-a-directory").mkdir()
    os.mkfifo(new / "1-a-fifo")
    (new / "2-a-dangling-link").symlink_to(kit.root / "nowhere")
    order = kit.request("alice", "after-dir", *ORDER)
    ops.send_local(kit.pit, order)
    code, out = pit_cmd(capsys, "--pit", kit.root, "notarize")
    assert code == 0 and "2 notarized, 3 refused" in out, out
    what = {"0-a-directory": "a directory", "1-a-fifo": "a FIFO",
            "2-a-dangling-link": "a dangling symbolic link"}
    for name, kind in what.items():
        assert f"refused: unreadable: incoming/new/{name} is not a message file ({kind}): " \
               f"moved to incoming/bad/{name}\n" in out, out
    assert {digest(first), digest(order)} <= archived(kit)
    assert incoming_left(kit) == []
    assert sorted(os.listdir(kit.root / "incoming" / "bad")) == sorted(what)
    code, out = pit_cmd(capsys, "--pit", kit.root, "notarize")
    assert code == 0 and out == "0 notarized, 0 refused\n", out
    code, out = pit_cmd(capsys, "--pit", kit.root, "rejects")
    assert sum("is not a message file" in line for line in out.splitlines()) == 3, out
    r = audit.audit(kit.root, full=True)
    assert r.ok, r.problem


def test_pit_rejects_lists_a_refused_message_whose_headers_are_garbage(kit, capsys):
    """The reject record keeps a refused message byte for byte, whatever it
    is: pit rejects reads the notary's stamp of it, and From and Subject
    only when the message has readable headers (random bytes once made
    every later pit rejects a traceback)."""
    junk = bytes(range(256)) * 4 + b"\nSubject: no\n\nbody\n"
    ops.send_local(kit.pit, junk)
    ops.send_local(kit.pit, b"From: x@example.org\nSubject: odd\n\nbody\n")
    code, out = pit_cmd(capsys, "--pit", kit.root, "notarize")
    assert code == 0 and "0 notarized, 2 refused" in out, out
    code, out = pit_cmd(capsys, "--pit", kit.root, "rejects", "--json")
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines()]
    refused = [r for r in rows if r["kind"] == "notary"]
    assert [r["reason"].split(":")[0] for r in refused[-2:]] == ["unsigned", "unsigned"], refused
    assert (refused[-1]["from"], refused[-1]["subject"]) == ("x@example.org", "odd")
    assert (refused[-2]["from"], refused[-2]["subject"]) == ("", "")
    code, out = pit_cmd(capsys, "--pit", kit.root, "rejects")
    assert code == 0 and out.count("unsigned") >= 2, out


def test_any_failure_to_judge_is_an_unreadable_refusal(kit, monkeypatch, capsys):
    def explode(text, pit=None):
        raise RuntimeError("the parser fell over")
    monkeypatch.setattr(message, "parse_request", explode)
    raw = kit.request("alice", "x1", *ORDER)
    ops.send_local(kit.pit, raw)
    code, out = pit_cmd(capsys, "--pit", kit.root, "notarize")
    assert code == 0, out
    assert rejected(kit)[digest(raw)].startswith("unreadable: RuntimeError: the parser fell over")
    assert incoming_left(kit) == []


@pytest.mark.parametrize("what,raw,reason", [
    ("parts", b"From: x@example.org\nMIME-Version: 1.0\n"
              b'Content-Type: multipart/mixed; boundary="b"\n\n'
              + b"--b\nContent-Type: text/plain\n\nx\n" * 5000 + b"--b--\n", "MIME parts"),
    ("header", b"From: x@example.org\nSubject: " + b"a" * 70_000 + b"\n\nbody\n", "header"),
    ("headers", b"From: x@example.org\n" + b"X-A: b\n" * 20_000 + b"\nbody\n", "header"),
])
def test_bounds_before_parsing(kit, what, raw, reason):
    [d] = kit.notary().notarize([raw])
    assert not d.accepted and reason in d.reason, d.reason


# -- 2. authority by key, not by name ---------------------------------------------

def test_member_cannot_write_a_checkpoint_and_the_audit_stays_whole(kit, capsys):
    text = message.checkpoint_text(message.Checkpoint("alice", "demo", 1301,
                                                      ("balance alice USD 99999999.00 0",)))
    forged = kit.sign("alice", text)
    ops.send_local(kit.pit, forged)
    code, out = pit_cmd(capsys, "--pit", kit.root, "notarize")
    assert code == 0
    assert digest(forged) not in archived(kit)
    assert "not a filter" in rejected(kit)[digest(forged)]
    res = audit.audit(kit.root)
    assert res.ok, res.summary()


def test_filter_output_needs_the_filters_own_key(kit):
    """bob owns account "transfers" by the operator's mistake: still not the
    transfers filter's key, so its report is refused."""
    meta = testkeys._meta(kit.keyhome)
    d = kit.notary().notarize([kit.request("alice", "x", *ORDER)])[0]
    assert d.accepted
    text = message.report_text(message.Report("transfers", "demo", 1, 5, ("moved nothing",)))
    [d] = kit.notary().notarize([kit.sign("bob", text)])
    assert not d.accepted and "transfers" in d.reason, d.reason
    # the operator cannot give a member a filter's account next to its own
    [d] = [ops.operator_request(kit.pit, "Member",
                                f"add {kit.fpr('carol')} accounts carol, transfers",
                                "\n" + meta["carol"]["public"].strip() + "\n")]
    assert not d.accepted and "filter" in d.reason, d.reason


# -- 3. a request binds to one pit -------------------------------------------------

def test_a_request_is_refused_by_another_pit_of_the_same_name(kit, tmp_path):
    twin = ops.init(tmp_path / "twin", "demo")
    for k, v in [("Currency", "USD 0.01"), ("Instrument", "ACME USD tick 0.01 lot 1")]:
        assert ops.operator_request(twin, k, v).accepted
    meta = testkeys._meta(kit.keyhome)
    assert ops.add_member(twin, meta["alice"]["public"], ["alice"])[1].accepted
    text = ops.request_text(kit.pit, "alice", "twin-1", *ORDER)
    raw = kit.sign("alice", text)
    [d] = kit.notary().notarize([raw])
    assert d.accepted, d.reason
    # the archive is public: anyone may copy the record's original bytes
    _, original = mbox.split_stamp(dict(kit.records())[d.seq])
    [d2] = Notary(twin).notarize([original])
    assert not d2.accepted, "accepted by another pit named demo"
    assert "another pit" in d2.reason or "this is pit" in d2.reason, d2.reason
    Keyring(twin.gnupg).stop_agent()
    Keyring(twin.root / "operator.gnupg").stop_agent()


def test_a_request_without_the_pits_identity_is_refused(kit):
    raw = kit.sign("alice", ops.request_text("demo", "alice", "bare-1", *ORDER))
    [d] = kit.notary().notarize([raw])
    assert not d.accepted and "identity" in d.reason, d.reason


# -- 4. pit order --notarize delivers once ---------------------------------------------

def test_order_notarize_delivers_once(kit, capsys):
    meta = testkeys._meta(kit.keyhome)
    code, out = pit_cmd(capsys, "--pit", kit.root, "order", "buy", "10", "ACME", "at", "12.50",
                        "--account", "alice", "--gnupghome", kit.keyhome,
                        "--key", meta["alice"]["fpr"], "--notarize")
    assert code == 0, out
    before = len(kit.notices())
    code, out = pit_cmd(capsys, "--pit", kit.root, "notarize")
    assert code == 0
    assert "0 notarized, 0 refused" in out, out
    assert incoming_left(kit) == []
    assert len(kit.notices()) == before


# -- 5. concurrent notaries --------------------------------------------------------

WORKER = textwrap.dedent("""
    import sys
    from moderator.notary import Notary
    from pit import mbox
    mode, root, src = sys.argv[1:4]
    if mode == "maildir":
        Notary(root).run_maildir(batch=int(src))
    elif mode == "direct":
        n = Notary(root)
        for raw in mbox.iter_file(src):
            n.notarize([raw])
    elif mode.startswith("lmtp:"):
        from pit.mailhost import lmtp_send
        port = int(mode[5:])
        for raw in mbox.iter_file(src):
            got = lmtp_send("127.0.0.1", port, raw, "alice@pit.test", ["demo@pits.test"])
            assert got["demo@pits.test"][0] == 250, got
    else:
        n = Notary(root)
        for raw in mbox.iter_file(src):
            n.notarize_mail(raw)
        n.seal_mail()
""")


def test_concurrent_notaries_finish_and_chain_gapless(kit, tmp_path):
    """Three pit notarize runs over one maildir, a process notarizing in
    process, one on the mail path and the LMTP server (pit mailman serve,
    Mailman down: it spools), all at once on one pit."""
    import signal
    import time
    from pit.mailhost import free_port
    kit.pit.set(domain="pits.test", mailman_list="demo@pits.test",
                mailman_secret="demo-secret-0123456789")
    direct, mail, maildir, lmtp = [], [], [], []
    for i in range(30):
        maildir.append(kit.request("alice", f"m{i}", *ORDER))
        direct.append(kit.request("bob", f"d{i}", "Order", "sell 1 ACME at 13.00"))
        mail.append(kit.request("alice", f"l{i}", "Order", "buy 1 ACME at 11.00"))
        lmtp.append(kit.request("bob", f"t{i}", "Order", "sell 1 ACME at 14.00"))
    maildir.append(b"garbage that is no email\n")
    for raw in maildir:
        ops.send_local(kit.pit, raw)
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "pit.cli", "mailman", "serve", str(kit.root),
                               "--listen", f"127.0.0.1:{port}", "--mailman", "127.0.0.1:9",
                               "--smtp", "127.0.0.1:9"], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while b"notary for" not in (tmp_path / "serve.log").read_bytes():
            assert server.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        _run_workers(kit, tmp_path, port, direct, mail, lmtp)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        log.close()
    assert server.returncode == 0, (tmp_path / "serve.log").read_text()
    assert Archive(kit.root).check() == []
    assert incoming_left(kit) == []
    done, refused = archived(kit), rejected(kit)
    for raw in maildir + direct + mail + lmtp:
        places = (digest(raw) in done) + (digest(raw) in refused)
        assert places == 1, raw[:200]
    assert sum(digest(r) in done for r in maildir + direct + mail + lmtp) == 120
    res = audit.audit(kit.root)
    assert res.ok, res.summary()


def _run_workers(kit, tmp_path, port, direct, mail, lmtp):
    files = {}
    for name, raws in (("direct", direct), ("mail", mail), ("lmtp", lmtp)):
        files[name] = tmp_path / f"{name}.mbox"
        files[name].write_bytes(b"".join(mbox.format_message(r, "x", "2026-01-01T00:00:00Z")
                                         for r in raws))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    jobs = [("maildir", "3"), ("maildir", "5"), ("maildir", "7"),
            ("direct", str(files["direct"])), ("mail", str(files["mail"])),
            (f"lmtp:{port}", str(files["lmtp"]))]
    procs = [subprocess.Popen([sys.executable, str(script), mode, str(kit.root), arg],
                              stderr=subprocess.PIPE, text=True) for mode, arg in jobs]
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        if p.returncode:
            errors.append(err.strip().splitlines()[-1])
    assert errors == []


# -- 8. no backscatter; member add refuses dead keys ------------------------------------

def test_no_notice_to_a_forged_stranger(kit):
    raw = kit.sign("mallory", ops.request_text(kit.pit, "alice", "z1", *ORDER))
    raw = raw.replace(b"From: mallory@pit.test", b"From: victim@elsewhere.example")
    before = len(kit.notices())
    [d] = kit.notary().notarize([raw])
    assert not d.accepted
    assert digest(raw) in rejected(kit)
    assert len(kit.notices()) == before


def test_unsigned_mail_from_a_member_address_is_answered(kit):
    raw = (b"From: bob@pit.test\nTo: demo@pit.localhost\nSubject: order\n\nbuy 1 ACME\n")
    [d] = kit.notary().notarize([raw])
    assert not d.accepted
    assert b"To: bob@pit.test" in kit.notices()[-1]


def test_a_members_refusal_goes_to_its_registered_address(kit):
    raw = kit.sign("alice", ops.request_text(kit.pit, "alice", "w1", "Order", "buy 1 NOPE at 1"))
    raw = raw.replace(b"From: alice@pit.test", b"From: victim@elsewhere.example")
    [d] = kit.notary().notarize([raw])
    assert not d.accepted
    notice = kit.notices()[-1]
    assert b"To: alice@pit.test" in notice and b"victim" not in notice.split(b"\n\n")[0]


@pytest.mark.parametrize("who,why", [("old", "expired"), ("gone", "revoked")])
def test_member_add_refuses_dead_keys(kit, tmp_path, capsys, who, why):
    meta = testkeys._meta(kit.keyhome)
    key = meta[who]["public"]
    if who == "gone":
        ring = Keyring(tmp_path / "g")
        ring.import_key(key)
        ring.import_revocation(meta[who]["revocation"])
        key = ring.export(meta[who]["fpr"])
        ring.stop_agent()
    asc = tmp_path / "k.asc"
    asc.write_text(key)
    seq = kit.notary().seq
    code, out = pit_cmd(capsys, "--pit", kit.root, "member", "add", asc, "--accounts", who + "2")
    assert code != 0
    assert why in out, out
    assert kit.notary().seq == seq
