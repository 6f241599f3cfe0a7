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
    ring.gpg.import_keys(testkeys.info(home)["gone"]["revocation"])   # gpg by hand
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
