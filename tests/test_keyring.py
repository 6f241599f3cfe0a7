"""pit.keyring and pit.testkeys against real gpg, in temporary GnuPG homes."""

from __future__ import annotations

import stat

import pytest

from pit import openpgp, testkeys
from pit.keyring import Keyring, KeyringError

pytestmark = pytest.mark.e2e

SPECS = [("alice", "ed25519"), ("bob", "rsa3072"), ("sub", "ed25519", "subkey"),
         ("old", "ed25519", "expired"), ("gone", "ed25519", "revoked")]


@pytest.fixture(autouse=True)
def _no_agents_left(tmp_path):
    yield
    testkeys.stop_agents(tmp_path)


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    base = tmp_path_factory.mktemp("keyring")
    fprs = testkeys.make_keys(base / "signer", SPECS, cache=base / "cache")
    yield base, fprs
    testkeys.stop_agents(base)


def test_home_is_private(tmp_path):
    Keyring(tmp_path / "gnupg")
    assert stat.S_IMODE((tmp_path / "gnupg").stat().st_mode) == 0o700


def test_cached_keys_are_copies(signer, tmp_path):
    base, fprs = signer
    again = testkeys.make_keys(tmp_path / "copy", SPECS, cache=base / "cache")
    assert again == fprs
    assert {k.fingerprint for k in Keyring(tmp_path / "copy").keys()} == set(fprs.values())


def test_publish_carries_validity(signer, tmp_path):
    base, fprs = signer
    pit = testkeys.publish(base / "signer", tmp_path / "pit")
    keys = {k.fingerprint: k for k in pit.keys()}
    assert keys[fprs["old"]].expired and not keys[fprs["old"]].revoked
    assert keys[fprs["gone"]].revoked
    assert not keys[fprs["alice"]].expired and keys[fprs["alice"]].can_sign
    assert keys[fprs["bob"]].algo == openpgp.ALGO_RSA
    assert [s.fingerprint for s in keys[fprs["sub"]].subkeys] == [testkeys.subkey(base / "signer", "sub")]
    assert keys[fprs["alice"]].uids == ("alice <alice@pit.test>",)
    verifier = pit.load_verifier()
    assert len(verifier) == 6                       # five primaries and one subkey
    assert verifier.key(fprs["gone"]).revoked
    assert verifier.key(fprs["old"]).expires is not None
    sub = verifier.key(testkeys.subkey(base / "signer", "sub"))
    assert sub.primary_fingerprint == fprs["sub"]


def test_import_export_round_trip(signer, tmp_path):
    base, fprs = signer
    armored = Keyring(base / "signer").export(fprs["bob"])
    pit = Keyring(tmp_path / "pit")
    assert pit.import_key(armored) == fprs["bob"]
    assert "-----BEGIN PGP PUBLIC KEY BLOCK-----" in pit.export(fprs["bob"])


def test_import_refuses_what_is_not_one_key(signer, tmp_path):
    base, fprs = signer
    pit = Keyring(tmp_path / "pit")
    with pytest.raises(KeyringError, match="not an OpenPGP public key"):
        pit.import_key("hello")
    two = Keyring(base / "signer").gpg.export_keys([fprs["alice"], fprs["bob"]])
    with pytest.raises(KeyringError, match="expected one public key, found 2"):
        pit.import_key(two)


def test_errors_name_the_problem(tmp_path):
    keyring = Keyring(tmp_path / "k")
    with pytest.raises(KeyringError, match="not one of"):
        keyring.generate("x", "x@pit.test", algo="dsa1024")
    with pytest.raises(KeyringError, match="no public key"):
        keyring.export("0" * 40)
    with pytest.raises(KeyringError, match="no revocation certificate"):
        keyring.revoke("0" * 40)


def test_sign_and_verify_with_gpg(signer, tmp_path):
    base, fprs = signer
    keyring = Keyring(base / "signer")
    text = keyring.clearsign("Pit: demo\n", fprs["bob"])
    verdict = keyring.verify_gpg(text.encode())
    assert verdict.ok and verdict.fingerprint == fprs["bob"]
    sig = keyring.detach_sign(b"data\r\n", fprs["alice"])
    assert keyring.verify_gpg(b"data\r\n", sig).ok
    bad = keyring.verify_gpg(b"data\n", sig)
    assert bad.status == "bad" and bad.fingerprint == fprs["alice"]
    stranger = Keyring(tmp_path / "empty")
    assert stranger.verify_gpg(text.encode()).status == "unknown-key"
    assert stranger.load_verifier().verify(b"x", openpgp.dearmor(sig)[1]).status == "unknown-key"


def test_revoke_in_place(tmp_path):
    keyring = Keyring(tmp_path / "k")
    fpr = keyring.generate("eve", "eve@pit.test")
    keyring.revoke(fpr)
    assert keyring.keys()[0].revoked
    assert keyring.load_verifier().key(fpr).revoked
