"""The notary with real gpg keys and real signatures: every refusal, with
its reason, in the reject record and in a notice and never in the archive;
what it accepts (inline, PGP/MIME, quoted-printable, "From " lines) still
verifies with stock gpg; stamps, the hash chain and seals."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
import sys
import time

import pytest

from moderator import notary as notary_mod
from pit import mbox, ops, signed
from pit.archive import record_hash

ORDER = ("Order", "buy 10 ACME at 12.50")


# -- helpers ------------------------------------------------------------------------

def digest(raw: bytes) -> str:
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


def submit(kit, *raws: bytes):
    """Deliver to the incoming maildir and run the notary over it."""
    for raw in raws:
        ops.send_local(kit.pit, raw)
    return kit.notary().run_maildir()


def reject_field(entry: bytes, name: str) -> str:
    """A field of the head the notary put on a reject entry (the first one:
    the refused message after it may be anything)."""
    for line in mbox.split_stamp(entry)[0].decode("utf-8").split("\n"):
        if line.lower().startswith(name.lower() + ": "):
            return line.split(": ", 1)[1]
    return ""


def places(kit, raw: bytes) -> tuple[int, int]:
    """How often *raw* is in the archive and in the reject record."""
    d = digest(raw)
    archived = sum(mbox.stamp(m).get("x-pit-digest") == d for _, m in kit.records())
    rejected = sum(reject_field(m, "X-Pit-Digest") == d
                   for m in kit.rejects())
    return archived, rejected


def assert_refused(kit, raw: bytes, *reason_parts: str, line: int | None = None):
    """Submit *raw*: refused for *reason*, in the reject record once with
    that reason, a notice out to the sender where one may go (a member's
    address), nothing in the archive."""
    before_notices = len(kit.notices())
    before_seq = kit.notary().seq
    [d] = submit(kit, raw)
    assert not d.accepted
    for part in reason_parts:
        assert part in d.reason, (part, d.reason)
    assert places(kit, raw) == (0, 1)
    entry = [m for m in kit.rejects()
             if reject_field(m, "X-Pit-Digest") == digest(raw)][0]
    rejected = reject_field(entry, "X-Pit-Rejected")
    for part in reason_parts:
        assert part in rejected
    if line is not None:
        assert d.line == line
        assert reject_field(entry, "X-Pit-Line") == str(line)
    notices = kit.notices()
    assert kit.notary().seq == before_seq          # nothing was archived
    if not d.sender:
        # nobody to tell: no member's key signed and the From is no member's
        # (a notice would be backscatter to whoever the From names)
        assert len(notices) == before_notices
        return d, None
    assert len(notices) == before_notices + 1
    assert reason_parts[0].encode() in notices[-1]
    assert f"To: {d.sender}".encode() in notices[-1]
    return d, notices[-1]


def gpg_verify(home, *files) -> subprocess.CompletedProcess:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-autostart",
                           "--status-fd", "1", "--verify", *map(str, files)], capture_output=True)


def original_of(record: bytes) -> bytes:
    return mbox.split_stamp(record)[1]


def assert_gpg_verifies(kit, record: bytes, tmp_path):
    """The archived original's signature checks out with stock gpg, in the
    GnuPG home of the pit's keyring that holds the signer's key (its shard)."""
    from pit.keyring import Keyring
    s = signed.extract(original_of(record))
    home = Keyring(kit.pit.gnupg).home_for(mbox.stamp(record)["x-pit-signer"])
    if s.kind == "clearsigned":
        block = tmp_path / "block.asc"
        block.write_bytes(s.gpg_input)
        p = gpg_verify(home, block)
    else:
        sig, part = tmp_path / "part.sig", tmp_path / "part"
        sig.write_bytes(s.gpg_input)
        part.write_bytes(s.signed_bytes)
        p = gpg_verify(home, sig, part)
    assert p.returncode == 0 and b"[GNUPG:] GOODSIG" in p.stdout, p.stderr


# -- refusals -----------------------------------------------------------------------

def test_unsigned(kit):
    raw = (b"From: alice@pit.test\nTo: demo@pit.localhost\nSubject: order\n\n"
           + ops.request_text("demo", "alice", "1", *ORDER).encode())
    _, notice = assert_refused(kit, raw, "unsigned")
    assert b"To: alice@pit.test" in notice


def test_bad_signature_tampered_body(kit):
    raw = kit.request("alice", "1", *ORDER)
    assert b"buy 10 ACME" in raw
    assert_refused(kit, raw.replace(b"buy 10 ACME", b"buy 90 ACME"), "bad signature")


def test_bad_signature_tampered_pgp_mime_part(kit):
    raw = kit.request("alice", "1", *ORDER, mime=True)
    assert_refused(kit, raw.replace(b"buy 10 ACME", b"buy 90 ACME"), "bad signature")


def test_unknown_key(kit):
    assert_refused(kit, kit.request("mallory", "1", *ORDER, account="alice"), "unknown key")


def test_expired_key(kit):
    assert_refused(kit, kit.request("old", "1", *ORDER), "expired key")


def test_revoked_key(kit):
    assert_refused(kit, kit.request("gone", "1", *ORDER), "revoked key")


def test_key_does_not_own_account(kit):
    assert_refused(kit, kit.request("alice", "1", *ORDER, account="bob"),
                   "does not own account bob")


def test_member_cannot_sign_operator_requests(kit):
    assert_refused(kit, kit.request("alice", "1", "Deposit", "5.00 USD to alice"),
                   "operator")


def test_replayed_same_message(kit):
    raw = kit.request("alice", "1", *ORDER)
    [d] = submit(kit, raw)
    assert d.accepted, d.reason
    # the same bytes again: refused as a replay, recorded once more
    [d2] = submit(kit, raw)
    assert not d2.accepted and "replayed" in d2.reason
    assert places(kit, raw) == (1, 1)
    assert b"replayed" in kit.notices()[-1]


def test_replayed_same_ref_resigned(kit):
    [d] = submit(kit, kit.request("alice", "7", *ORDER))
    assert d.accepted
    assert_refused(kit, kit.request("alice", "7", "Order", "sell 1 ACME at 13"),
                   "replayed", "ref 7")


def test_replay_within_one_batch(kit):
    a = kit.request("alice", "8", *ORDER)
    b = kit.request("alice", "8", "Order", "buy 1 ACME at 1")
    da, db = submit(kit, a, b)
    assert da.accepted and not db.accepted and "replayed" in db.reason


def test_malformed_order_names_the_line(kit):
    raw = kit.request("alice", "1", "Order", "buy ACME at 12.50")
    assert_refused(kit, raw, "malformed request", "line 4", line=4)


def test_a_refusal_names_every_missing_key(kit):
    """A request without Pit: and Ref: is refused for both at once."""
    raw = kit.sign("alice", "Account: alice\nOrder: buy 1 ACME at 12.50\n")
    assert_refused(kit, raw, "malformed request", "missing keys Pit and Ref")


def test_off_tick_and_unknown_ticker_refused_at_the_door(kit):
    assert_refused(kit, kit.request("alice", "1", "Order", "buy 1 ACME at 12.505"),
                   "malformed request")
    assert_refused(kit, kit.request("alice", "2", "Order", "buy 1 NOPE at 12"),
                   "malformed request", "NOPE")


def test_cancel_of_unknown_ref_refused(kit):
    assert_refused(kit, kit.request("alice", "1", "Order", "cancel 99"), "no order with ref 99")


def test_partition_member_of_other_pit(kit, other_kit):
    # carol is a member of pit "other" only: her key means nothing here
    raw = kit.request("carol", "1", *ORDER, pit="other")
    assert_refused(kit, raw, "unknown key")
    # alice is a member of both; her order for "other" is void in "demo"
    raw = kit.request("alice", "2", "Transfer", "1.00 USD to carol", pit="other")
    assert_refused(kit, raw, "for pit other", "this is pit demo")
    # and the other way round
    raw = kit.request("alice", "3", *ORDER)
    assert_refused(other_kit, raw, "for pit demo", "this is pit other")


def test_too_large(kit):
    kit.pit.set(max_message_size=3000)
    raw = kit.sign("alice", ops.request_text(kit.pit, "alice", "1", *ORDER)
                   + "".join(f"# padding line {i} ..........................\n" for i in range(80)))
    assert len(raw) > 3000
    assert_refused(kit, raw, "too large", "the limit is 3000")


def test_rate_limited(kit):
    kit.pit.set(rate_limit=2, rate_interval=3600)
    raws = [kit.request("alice", str(i), *ORDER) for i in range(3)]
    ds = submit(kit, *raws[:2])
    assert all(d.accepted for d in ds)
    assert_refused(kit, raws[2], "rate limited")
    # another member is not held back by alice's rate
    [d] = submit(kit, kit.request("bob", "1", "Order", "sell 1 ACME at 13"))
    assert d.accepted, d.reason


def test_the_rate_limit_is_the_members_not_the_operators(kit):
    """A model session (seed 66) found the operator past the limit: the
    Member record that makes a new filter's key a member was refused, and
    `pit run` could not start that filter."""
    kit.pit.set(rate_limit=2, rate_interval=3600)
    for i in range(4):
        d = kit.operator("Deposit", f"1.00 USD to alice")
        assert d.accepted, d.reason


@pytest.mark.parametrize("header", ["X-Pit-Seq: 1", "x-pit-kind: order", "X-PIT-Digest: 00"])
def test_hostile_x_pit_headers(kit, header):
    raw = kit.request("alice", "1", *ORDER)
    raw = header.encode() + b"\n" + raw
    assert_refused(kit, raw, "X-Pit- headers")


def test_hostile_x_pit_header_in_the_middle(kit):
    raw = kit.request("alice", "1", *ORDER)
    head, body = raw.split(b"\n\n", 1)
    assert_refused(kit, head + b"\nX-Pit-Seq: 3\n\n" + body, "X-Pit- headers")


@pytest.mark.parametrize("raw", [
    b"\x00\xff\xfe garbage \x80\x81 not an email at all",
    b"",
    b"just one line without headers",
    bytes(range(256)) * 4,
    b"Content-Type: multipart/signed; boundary=\"x\"\n\n--x\nbroken",
    b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!notbase64",
])
def test_garbage(kit, raw):
    d, notice = assert_refused(kit, raw, "")
    assert d.reason.startswith(("unsigned", "malformed")), d.reason
    assert notice is None                       # no member to tell: recorded, not mailed


def test_every_message_ends_in_exactly_one_place(kit):
    good = [kit.request("alice", f"g{i}", *ORDER) for i in range(3)] + \
           [kit.request("bob", "g1", "Order", "sell 1 ACME at 13", mime=True)]
    bad = [kit.request("mallory", "1", *ORDER, account="alice"),
           kit.request("old", "1", *ORDER), b"\x00garbage",
           kit.request("alice", "g0", "Order", "buy 1 ACME at 1")]
    before = len(kit.records()), len(kit.rejects())
    ds = submit(kit, *good, *bad)
    assert [d.accepted for d in ds] == [True] * 4 + [False] * 4
    for raw in good:
        assert places(kit, raw) == (1, 0)
    for raw in bad:
        assert places(kit, raw) == (0, 1)
    assert len(kit.rejects()) - before[1] == 4
    # four records and one seal
    assert len(kit.records()) - before[0] == 5
    assert not list((kit.root / "incoming" / "new").iterdir())


# -- what it accepts -------------------------------------------------------------

def test_inline_clearsigned_accepted_and_verifies_with_gpg(kit, tmp_path):
    raw = kit.request("alice", "1", *ORDER)
    [d] = submit(kit, raw)
    assert d.accepted, d.reason
    rec = dict(kit.records())[d.seq]
    st = mbox.stamp(rec)
    assert st["x-pit-kind"] == "order" and st["x-pit-account"] == "alice"
    assert st["x-pit-request"] == "buy 10 ACME limit 12.50"
    assert st["x-pit-signer"] == kit.fpr("alice")
    assert original_of(rec) == raw
    assert_gpg_verifies(kit, rec, tmp_path)


def test_pgp_mime_accepted_and_verifies_with_gpg(kit, tmp_path):
    raw = kit.request("bob", "1", "Order", "sell 5 ACME at 12.75", mime=True)
    assert b"multipart/signed" in raw
    [d] = submit(kit, raw)
    assert d.accepted, d.reason
    rec = dict(kit.records())[d.seq]
    assert original_of(rec) == raw
    assert_gpg_verifies(kit, rec, tmp_path)


@pytest.mark.parametrize("mime", [False, True])
def test_quoted_printable_body(kit, tmp_path, mime):
    text = ops.request_text(kit.pit, "alice", "q", *ORDER) + "# merci, café crème\n"
    raw = kit.sign("alice", text, mime=mime)
    assert b"quoted-printable" in raw
    [d] = submit(kit, raw)
    assert d.accepted, d.reason
    rec = dict(kit.records())[d.seq]
    assert original_of(rec) == raw
    assert signed.extract(original_of(rec)).text == text
    assert_gpg_verifies(kit, rec, tmp_path)


def test_body_with_from_lines(kit, tmp_path):
    raw = kit.request("alice", "1", *ORDER)
    head, body = raw.split(b"\n\n", 1)
    raw = head + b"\n\nFrom the desk of alice:\n>From here on, my order.\n\n" + body \
        + b"\nFrom alice, with thanks\n"
    [d] = submit(kit, raw)
    assert d.accepted, d.reason
    rec = dict(kit.records())[d.seq]
    assert original_of(rec) == raw                    # mboxrd quoting round-trips
    assert mbox.stamp(rec)["x-pit-digest"] == digest(raw)
    assert_gpg_verifies(kit, rec, tmp_path)


def test_crlf_message_is_stored_with_lf(kit):
    raw = kit.request("alice", "1", *ORDER).replace(b"\n", b"\r\n")
    [d] = submit(kit, raw)
    assert d.accepted, d.reason
    rec = dict(kit.records())[d.seq]
    assert original_of(rec) == raw.replace(b"\r\n", b"\n")


def test_member_added_and_trading_in_the_same_batch(kit):
    """A member request and the new member's first order in one run of the
    maildir: the order must be judged against the keyring as it is then."""
    meta_pub = __import__("pit.testkeys", fromlist=["_meta"])._meta(kit.keyhome)["carol"]["public"]
    ring, op_fpr = ops._operator(kit.pit)
    fpr = kit.fpr("carol")
    text = ops.request_text(kit.pit, "operator", "add-carol", "Member",
                            f"add {fpr} accounts carol") + "\n" + meta_pub.strip() + "\n"
    add = ops.sign_request(kit.pit, text, ring, op_fpr, "demo-operator@pit.localhost")
    order = kit.request("carol", "1", *ORDER)
    da, do = submit(kit, add, order)
    assert da.accepted, da.reason
    assert do.accepted, do.reason


# -- stamps and seals --------------------------------------------------------------

def test_stamps_chain_and_seals(kit, tmp_path):
    raws = [kit.request("alice", f"s{i}", *ORDER) for i in range(4)] + \
           [kit.request("bob", f"s{i}", "Order", "sell 1 ACME at 13", mime=i % 2 == 1)
            for i in range(4)]
    for raw in raws[:5]:
        ops.send_local(kit.pit, raw)
    kit.notary().run_maildir()
    for raw in raws[5:]:
        ops.send_local(kit.pit, raw)
    kit.notary().run_maildir()
    check_archive(kit, tmp_path)


def check_archive(kit, tmp_path) -> list[tuple[int, bytes]]:
    """Gapless seqs, strictly increasing times, the hash chain, digests of
    the originals, and every record covered by a seal that gpg verifies."""
    recs = kit.records()
    assert [s for s, _ in recs] == list(range(1, len(recs) + 1))
    prev, last_time = "0" * 64, ""
    sealed: dict[int, str] = {}
    seals = []
    for seq, rec in recs:
        st = mbox.stamp(rec)
        assert int(st["x-pit-seq"]) == seq
        assert st["x-pit-prev"] == prev, f"record {seq}: chain broken"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", st["x-pit-time"])
        assert st["x-pit-time"] > last_time, f"record {seq}: time not increasing"
        assert st["x-pit-digest"] == hashlib.sha256(original_of(rec)).hexdigest()
        last_time, prev = st["x-pit-time"], record_hash(rec)
        if st["x-pit-kind"] == "seal":
            seals.append((seq, rec))
            text = signed.extract(original_of(rec)).text
            for line in text.split("\n"):
                m = re.fullmatch(r"(\d+) ([0-9a-f]{64})", line)
                if m:
                    sealed[int(m.group(1))] = m.group(2)
    hashes = {seq: record_hash(rec) for seq, rec in recs}
    for seq, rec in recs:
        if mbox.stamp(rec)["x-pit-kind"] != "seal":
            assert sealed.get(seq) == hashes[seq], f"record {seq} is not sealed"
    assert recs and mbox.stamp(recs[-1][1])["x-pit-kind"] == "seal"   # nothing left unsealed
    for i, (seq, rec) in enumerate(seals[-3:]):
        block = tmp_path / f"seal{i}.asc"
        block.write_bytes(signed.extract(original_of(rec)).gpg_input)
        p = gpg_verify(kit.pit.gnupg, block)
        assert p.returncode == 0 and kit.pit.notary.encode() in p.stdout, p.stderr
    return recs


def test_seal_every_bounds_the_unsealed_run(kit, tmp_path):
    kit.pit.set(seal_every=3)
    raws = [kit.request("alice", f"b{i}", *ORDER) for i in range(7)]
    submit(kit, *raws)
    recs = check_archive(kit, tmp_path)
    run = 0
    for _, rec in recs:
        run = 0 if mbox.stamp(rec)["x-pit-kind"] == "seal" else run + 1
        assert run <= 3


def test_time_never_goes_backwards_with_a_clock_that_does(kit, tmp_path):
    # a clock that steps back, near the signatures' own time (the notary
    # refuses signatures from far in its future)
    now = time.time()
    times = iter([now + 100.0, now + 50.0, now + 50.0, now + 10.0] + [now + 5.0] * 20)
    n = kit.notary(clock=lambda: next(times))
    ds = n.notarize([kit.request("alice", f"t{i}", *ORDER) for i in range(3)])
    assert all(d.accepted for d in ds)
    check_archive(kit, tmp_path)


def test_notary_program_runs_the_maildir(kit):
    ops.send_local(kit.pit, kit.request("alice", "p1", *ORDER))
    ops.send_local(kit.pit, b"garbage")
    p = subprocess.run([str(Path(sys.executable).parent / "pit-notary"), str(kit.root)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "1 notarized, 1 rejected" in p.stderr
    assert notary_mod.Notary(kit.root).seq == len(kit.records())


def test_removed_member_is_refused_and_the_removal_is_on_record(kit):
    [d] = submit(kit, kit.request("bob", "1", *ORDER, account="bob"))
    assert d.accepted
    removal = kit.operator("Member", f"remove {kit.fpr('bob')}")
    assert removal.accepted
    _, rec = kit.records()[removal.seq - 1]
    st = mbox.stamp(rec)
    assert st["x-pit-kind"] == "member" and st["x-pit-request"] == f"remove {kit.fpr('bob')}"
    assert_refused(kit, kit.request("bob", "2", *ORDER, account="bob"), "not a member")
    from pit.audit import audit
    r = audit(kit.root)
    assert r.ok, r.problem


def test_an_entrys_from_line_carries_its_stamps_second(kit):
    """The notary hands the archive each record's date as the stamp's
    second (a number), not its X-Pit-Time text: the From line is the one
    the text makes (mbox.from_line parses it back), byte for byte, for
    orders, mail groups and seals."""
    raws = [kit.request("alice", str(i), *ORDER) for i in range(1, 4)]
    submit(kit, *raws)
    kit.notary().notarize_mails([kit.request("alice", "9", *ORDER)], seal=True)
    entries = [e for vol in sorted((kit.pit.archives).glob("*.mbox"))
               for e in mbox.iter_file_entries(vol)]
    assert len(entries) >= 7                        # genesis, its seal, set-up, orders, seals
    for e in entries:
        st = mbox.stamp(e.message)
        assert e.from_line + b"\n" == mbox.from_line("notary", st["x-pit-time"]), st["x-pit-seq"]
