"""Members at any count: the verifier's key store, the bulk member add, and
no gpg command line that grows with the membership.

Keys here are made in process (pit.testkeys.certificate: a real ed25519
certificate gpg imports, no key generation by gpg), so a keyring of
hundreds of members costs one gpg import.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from pit import ops, testkeys
from pit.keyring import Keyring
from pit.mbox import stamp

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _no_agents_left(tmp_path):
    yield
    testkeys.stop_agents(tmp_path)


def _certs(prefix: str, n: int):
    return [testkeys.certificate(f"{prefix}{i:06d}") for i in range(n)]


def _gpg_import(ring: Keyring, certs) -> None:
    """Import straight with gpg, as an operator would by hand."""
    from pit import openpgp
    data = b"".join(openpgp.dearmor(a)[1] for a, _ in certs)
    ring._run(["--import"], "importing", input=data)


class _Argv:
    """The length of every command line a gpg call starts with."""

    def __init__(self, monkeypatch):
        self.lengths: list[int] = []
        real = subprocess.Popen.__init__
        lengths = self.lengths

        def spy(self, args, *a, **kw):
            if isinstance(args, (list, tuple)):
                lengths.append(sum(len(str(x)) + 1 for x in args))
            return real(self, args, *a, **kw)
        monkeypatch.setattr(subprocess.Popen, "__init__", spy)

    def longest(self) -> int:
        n = max(self.lengths)
        self.lengths.clear()
        return n


def test_no_gpg_command_line_grows_with_the_keyring(tmp_path, monkeypatch):
    # The verifier used to be built from one `gpg --export FPR FPR ...` naming
    # every key: ~41 bytes a member, so at ~50,000 members "Argument list too
    # long" and the notary could not start.
    ring = Keyring(tmp_path / "pit")
    argv = _Argv(monkeypatch)
    sizes, extra = {}, 0
    for total in (5, 300):
        _gpg_import(ring, _certs("m", total))           # behind the store's back
        have = total + extra                            # the members "m..." and the "new" ones
        argv.longest()
        assert len(ring.load_verifier()) == have        # rebuilt from gpg, by no name
        armored, _ = testkeys.certificate(f"new{total}")
        ring.import_key(armored)                        # one more, kept in step
        have, extra = have + 1, extra + 1
        assert len(ring.load_verifier()) == have
        sizes[total] = argv.longest()
    assert sizes[300] == sizes[5], sizes


def test_store_follows_gpg(tmp_path):
    ring = Keyring(tmp_path / "pit")
    certs = _certs("s", 3)
    verifier = ring.load_verifier()
    assert len(verifier) == 0
    fprs = ring.import_keys([a for a, _ in certs])
    assert fprs == [s.fingerprint for _, s in certs]
    # the verifier made before the import sees the new keys: the notary judges
    # messages signed by a member added earlier in the same batch
    for armored, signer in certs:
        assert verifier.key(signer.fingerprint).primary_fingerprint == signer.fingerprint
    # the same certificate again: nothing for gpg to do, nothing changes
    assert ring.import_key(certs[0][0]) == certs[0][1].fingerprint
    # a fresh Keyring object reads the same store, and the store survives
    assert len(Keyring(tmp_path / "pit").load_verifier()) == 3
    bad = ring.import_keys(["not a key", certs[1][0]])
    assert "not an OpenPGP public key" in str(bad[0]) and bad[1] == certs[1][1].fingerprint


def test_store_rebuilt_after_a_revocation_by_hand(tmp_path):
    home = tmp_path / "signer"
    fprs = testkeys.make_keys(home, [("gone", "ed25519", "revoked")])
    ring = Keyring(tmp_path / "pit")
    ring.import_key(testkeys.info(home)["gone"]["public"])
    assert not ring.load_verifier().key(fprs["gone"]).revoked
    # gpg by hand, in the home that holds the key (its shard)
    shard = ring.home_for(fprs["gone"])
    assert shard.parent == ring.home / "shards"
    subprocess.run(["gpg", "--homedir", str(shard), "--batch", "--no-autostart", "--import"],
                   input=testkeys.info(home)["gone"]["revocation"].encode(), check=True,
                   capture_output=True)
    assert ring.load_verifier().key(fprs["gone"]).revoked


def test_bulk_members_sign_orders(kit, tmp_path):
    """`pit member import`: a keyring file and an accounts file become member
    records the notary accepts, and each new member can trade at once."""
    pit = kit.pit
    certs = _certs("bulk", 40)
    keyfile = tmp_path / "members.asc"
    # one armoured block holding every certificate, as `gpg --export -a` writes
    from pit import openpgp
    keyfile.write_text(openpgp.armor("PUBLIC KEY BLOCK",
                                     b"".join(openpgp.dearmor(a)[1] for a, _ in certs)))
    accounts = tmp_path / "accounts"
    accounts.write_text("".join(f"{s.fingerprint} bulk{i:06d}\n" for i, (_, s) in enumerate(certs))
                        + "# a comment\n")
    before = len(kit.records())
    out = subprocess.run([".venv/bin/pit", "--pit", str(pit.root), "member", "import",
                          str(keyfile), "--accounts-file", str(accounts), "--batch", "16"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "40 members added" in out.stdout
    records = kit.records()
    members = [stamp(m) for _, m in records[before:] if stamp(m).get("x-pit-kind") == "member"]
    assert len(members) == 40
    # a bulk member signs an order: accepted, as any member's
    _, signer = certs[7]
    raw = ops.sign_request(pit, ops.request_text(pit, "bulk000007", "r1", "Transfer",
                                                 "1.00 USD to bulk000007:ACME"),
                           signer, signer.fingerprint, "bulk000007@pit.test")
    d = kit.notary().notarize([raw])[0]
    assert d.accepted, d.reason


def test_bulk_import_refuses_what_it_cannot_use(kit, tmp_path):
    pit = kit.pit
    certs = _certs("odd", 3)
    result = ops.add_members(pit, [(certs[0][0], ["odd0"]), ("junk", ["x"]),
                                   (certs[1][0], []), (certs[2][0], ["odd2"])])
    assert [d.accepted for _, d in result] == [True, False, False, True]
    assert "not an OpenPGP public key" in result[1][1].reason
    assert "no accounts" in result[2][1].reason
    # again: already members, recorded again as the operator asked (one record each)
    again = ops.add_members(pit, [(certs[0][0], ["odd0"])])
    assert again[0][1].accepted


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("PIT_SCALE_TESTS"),
                    reason="half an hour of gpg import: PIT_SCALE_TESTS=1 runs it")
def test_fifty_thousand_members(tmp_path):
    """The user's report: at ~50,000 members the notary could not start
    (`OSError: [Errno 7] Argument list too long` from load_verifier).
    gpg 2.2 rewrites its keybox for every key imported, so making the
    keyring alone takes half an hour on a small machine: not in make test
    (test_no_gpg_command_line_grows_with_the_keyring is the quick proof)."""
    ring = Keyring(tmp_path / "pit")
    certs = [testkeys.certificate(f"k{i:06d}")[0] for i in range(50_000)]
    _gpg_import(ring, [(a, None) for a in certs])
    verifier = ring.load_verifier()
    assert len(verifier) == 50_000
    armored, signer = testkeys.certificate("one-more")
    ring.import_key(armored)
    assert ring.load_verifier().key(signer.fingerprint) is not None


# -- the sharded keyring of record ----------------------------------------------------

def _pit_cli(pit, *args, **kw):
    return subprocess.run([".venv/bin/pit", "--pit", str(pit.root), *args],
                          capture_output=True, text=True, **kw)


def _order(kit, signer, account: str, ref: str) -> bytes:
    pit = kit.pit
    return ops.sign_request(pit, ops.request_text(pit, account, ref, "Transfer",
                                                  f"1.00 USD to {account}:ACME"),
                            signer, signer.fingerprint, f"{account}@pit.test")


def test_membership_through_the_sharded_keyring(kit, tmp_path):
    """`pit member import` of a keyring file and `pit member add` put each
    key in its shard home (gpg, one small home a key's first three hex
    digits); the real notary then accepts orders signed by the new members,
    refuses them once the member is removed, and gpg's judgement (expired,
    revoked) holds in a shard as in one home."""
    pit = kit.pit
    meta = testkeys._meta(kit.keyhome)
    certs = _certs("shard", 24)
    # "gone" as its owner publishes it after revoking (key and revocation
    # merged by gpg), "old" expired: refused at the door, as gpg judges them
    tmp = Keyring(tmp_path / "merge")
    tmp.import_key(meta["gone"]["public"])
    tmp.import_revocation(meta["gone"]["revocation"])
    gone = tmp.export(meta["gone"]["fpr"])
    keyfile = tmp_path / "members.asc"
    keyfile.write_text("".join(a for a, _ in certs) + gone + meta["old"]["public"])
    accounts = tmp_path / "accounts"
    accounts.write_text("".join(f"{s.fingerprint} shard{i:06d}\n" for i, (_, s) in enumerate(certs))
                        + f"{meta['gone']['fpr']} gone2\n{meta['old']['fpr']} old2\n")
    out = _pit_cli(pit, "member", "import", str(keyfile), "--accounts-file", str(accounts))
    assert "24 members added, 2 refused" in out.stdout, out.stderr
    refused = out.stderr.splitlines()
    assert len(refused) == 2
    assert f"refused: {meta['gone']['fpr']}: key {meta['gone']['fpr']} is revoked" in refused[0]
    assert f"refused: {meta['old']['fpr']}: key {meta['old']['fpr']} expired on" in refused[1]

    ring = Keyring(pit.gnupg)
    shards = {ring.home_for(s.fingerprint) for _, s in certs}
    assert len(shards) > 10 and all(h.parent == pit.gnupg / "shards" for h in shards)
    for _, s in certs[:3]:
        # the keyring of record is gpg's: the shard's own gpg lists the key
        listed = subprocess.run(["gpg", "--homedir", str(ring.home_for(s.fingerprint)), "--batch",
                                 "--no-autostart", "--with-colons", "--list-keys", s.fingerprint],
                                capture_output=True, text=True)
        assert listed.returncode == 0 and s.fingerprint in listed.stdout
        assert ring.home_for(s.fingerprint).name == s.fingerprint[:3]

    # one more through the operator's signed member request
    armored, late = testkeys.certificate("late-member")
    (tmp_path / "late.asc").write_text(armored)
    out = _pit_cli(pit, "member", "add", str(tmp_path / "late.asc"), "--accounts", "late")
    assert out.returncode == 0, out.stderr
    assert ring.home_for(late.fingerprint).parent == pit.gnupg / "shards"

    notary = kit.notary()
    decisions = notary.notarize([_order(kit, certs[5][1], "shard000005", "r1"),
                                 _order(kit, late, "late", "r1")])
    assert [d.accepted for d in decisions] == [True, True], [d.reason for d in decisions]
    # removed: the key stays in gpg's keyring, the membership is gone
    out = _pit_cli(pit, "member", "remove", certs[5][1].fingerprint)
    assert out.returncode == 0, out.stderr
    d = kit.notary().notarize([_order(kit, certs[5][1], "shard000005", "r2")])[0]
    assert not d.accepted and "not a member" in d.reason, d.reason
    # members whose keys expired or were revoked after joining (conftest's
    # "old" and "gone", in their shards like everyone's): gpg's verdict
    assert ring.home_for(kit.fpr("gone")).parent == pit.gnupg / "shards"
    for who, why in (("old", "expired"), ("gone", "revoked")):
        d = kit.notary().notarize([kit.request(who, "late-1", "Transfer", f"1.00 USD to {who}:ACME")])[0]
        assert not d.accepted and why in d.reason, (who, d.reason)
    # the audit replays this membership (its own sharded home) and agrees
    out = _pit_cli(pit, "audit")
    assert out.returncode == 0, out.stdout + out.stderr


def test_hostile_keyring_file(kit, tmp_path):
    """A keyring file with garbage, a secret key, a key without its
    self-signature and duplicates: one line saying why for each bad entry,
    and every good key still becomes a member."""
    from pit import openpgp
    pit = kit.pit
    good = _certs("fine", 3)
    other = _certs("twice", 1)[0]
    unsigned_armored, unsigned = testkeys.certificate("unsigned")
    packets = [whole for _, _, whole in openpgp.iter_packets(openpgp.dearmor(unsigned_armored)[1])]
    no_selfsig = openpgp.armor("PUBLIC KEY BLOCK", b"".join(packets[:2]))    # key and user id only
    secret = kit.ring.export_secret(kit.fpr("mallory"))
    # and one secret key packet in a public key block, as binary gpg output has them
    sec_binary = openpgp.dearmor(kit.ring.export_secret(kit.fpr("carol")))[1]
    sneaky = openpgp.armor("PUBLIC KEY BLOCK", sec_binary)
    garbage = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5IGF0IGFsbA==\n=AAAA\n" \
              "-----END PGP PUBLIC KEY BLOCK-----\n"
    # a second, different copy of "twice": its key with another user id
    other_packets = [w for _, _, w in openpgp.iter_packets(openpgp.dearmor(other[0])[1])]
    different = openpgp.armor("PUBLIC KEY BLOCK", other_packets[0] + packets[1] + other_packets[2])
    blocks = [good[0][0], garbage, secret, sneaky, no_selfsig, good[1][0], good[1][0], other[0],
              different, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n\x00\x01garbage\n", good[2][0]]
    keyfile = tmp_path / "hostile.asc"
    keyfile.write_text("".join(blocks))
    accounts = tmp_path / "accounts"
    accounts.write_text("".join(f"{s.fingerprint} {name}\n" for name, (_, s) in
                                [("fine0", good[0]), ("fine1", good[1]), ("fine2", good[2]),
                                 ("twice", other), ("unsigned", (None, unsigned))]))
    out = _pit_cli(pit, "member", "import", str(keyfile), "--accounts-file", str(accounts))
    assert "3 members added" in out.stdout, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert all(line.startswith("refused: ") for line in lines), lines
    text = "\n".join(lines)
    assert "armour CRC-24 checksum does not match" in text or "armour block 2" in text
    assert text.count("a secret key: a pit takes public keys only") == 2, text
    assert f"gpg did not import key {unsigned.fingerprint}" in text
    assert f"key {good[1][1].fingerprint}: the same certificate again (certificate 6" in text
    assert text.count(f"key {other[1].fingerprint}: two different certificates") == 2
    assert "armour block 10" in text
    assert len(lines) == 8, lines
    ring = Keyring(pit.gnupg)
    for who in ("mallory", "carol"):
        assert ring.store.home_of(kit.fpr(who)) is None           # never imported
    for _, s in good:
        assert ring.load_verifier().key(s.fingerprint) is not None
    d = kit.notary().notarize([_order(kit, good[2][1], "fine2", "r1")])[0]
    assert d.accepted, d.reason


def test_single_home_pit_keeps_working(kit, tmp_path):
    """A pit made before the shards: its members' keys in the one GnuPG home
    and a store of the old layout.  Its members keep trading; a key it holds
    is updated where it is; a new member goes to its shard."""
    import sqlite3
    from pit.keystore import STORE_NAME
    pit = kit.pit
    legacy = _certs("legacy", 2)
    _gpg_import(Keyring(pit.gnupg), legacy)            # as the old layout holds them
    db = sqlite3.connect(pit.gnupg / STORE_NAME)        # a store of layout 2
    db.execute("UPDATE meta SET value = '2' WHERE name = 'schema'")
    db.commit()
    db.close()
    results = ops.add_members(pit, [(a, [f"legacy{i}"]) for i, (a, _) in enumerate(legacy)])
    assert all(d.accepted for _, d in results), [d.reason for _, d in results]
    ring = Keyring(pit.gnupg)
    for _, s in legacy:
        assert ring.home_for(s.fingerprint) == pit.gnupg      # not copied to a shard
    armored, new = testkeys.certificate("after-shards")
    _, d = ops.add_member(pit, armored, ["after"])
    assert d.accepted, d.reason
    assert ring.home_for(new.fingerprint).parent == pit.gnupg / "shards"
    decisions = kit.notary().notarize([_order(kit, legacy[1][1], "legacy1", "r1"),
                                       _order(kit, new, "after", "r1")])
    assert all(d.accepted for d in decisions), [d.reason for d in decisions]


def test_member_request_whose_key_block_is_another_key(kit):
    """The key block must be the key the request names; another key is
    refused before gpg sees it (nothing enters the keyring)."""
    named = testkeys.certificate("named")[1]
    other_armored, other = testkeys.certificate("other-key")
    d = ops.operator_request(kit.pit, "Member", f"add {named.fingerprint} accounts named",
                             "\n" + other_armored.strip() + "\n")
    assert not d.accepted
    assert d.reason == (f"the member's key block: it is key {other.fingerprint}, "
                        f"the request names {named.fingerprint}")
    assert Keyring(kit.pit.gnupg).store.home_of(other.fingerprint) is None


def test_signer_reads_its_own_key_not_every_shard(tmp_path, monkeypatch):
    # The notary's seals (KeySigner) and the bulk add's requests
    # (Signer.from_keyring) found their key in a listing of every home: one
    # gpg run a shard, 4,096 at a million members, at every seal key
    # re-check and every `pit member import` (23 of the 35 s of a bulk add
    # of 10,000 members, by cProfile).  They name their key: gpg runs that
    # do not grow with the shards.
    from pit.signer import KeySigner, Signer
    ring = Keyring(tmp_path / "pit")
    fpr = ring.generate("notary", "notary@pit.test")
    argv = _Argv(monkeypatch)
    runs = {}
    for n in (3, 60):
        ring.import_keys([a for a, _ in _certs(f"s{n}-", n)])
        argv.lengths.clear()
        Signer.from_keyring(Keyring(ring.home), fpr).clearsign("x\n")
        KeySigner(Keyring(ring.home), fpr).ready().clearsign("y\n")
        runs[n] = len(argv.lengths)
    assert len(list((ring.home / "shards").iterdir())) > 40
    assert runs[60] == runs[3], runs
