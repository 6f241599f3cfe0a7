"""pit.signer: signatures made in process are ones stock gpg accepts.

Each signature is checked twice: by a real gpg process in a home holding
only the published public keys (status lines GOODSIG and VALIDSIG), and by
pit.openpgp's verifier.  Tampering must fail both.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pit import openpgp, signed, testkeys
from pit.keyring import Keyring
from pit.signer import Signer, SignerError, secret_keys

SPECS = [("ed", "ed25519"), ("rsa", "rsa3072"), ("sub", "ed25519", "subkey")]
TEXTS = {
    "order": "Pit: demo\nAccount: alice\nRef: 17\nOrder: buy 100 ACME at 12.50\n",
    "whitespace": "Pit: demo  \nAccount: alice\t\nRef: 1 \n\n",
    "dashes": "-----BEGIN PGP SIGNATURE-----\n- already escaped\n--\nFrom the desk\nend",
    "non-ascii": "Pit: démo\nNote: 5 € — ok\n",
    "blank lines": "\n\nfirst\n\n\nlast\n\n",
}


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    base = tmp_path_factory.mktemp("signer")
    signing = base / "signing"
    fprs = testkeys.make_keys(signing, SPECS)
    verify_home = base / "verify"
    ring = testkeys.publish(signing, verify_home)
    signers = {name: Signer.from_keyring(Keyring(signing), fpr) for name, fpr in fprs.items()}
    yield {"fprs": fprs, "signers": signers, "verifier": ring.load_verifier(),
           "home": verify_home, "signing": signing}
    testkeys.stop_agents(base)


def gpg_status(home: Path, *files: Path) -> dict[str, list[str]]:
    """Run stock gpg --verify (in the keyring's home that holds the signing
    key: its shard); its status lines by keyword."""
    home = Keyring(home).home_for_signature(files[0].read_bytes())
    proc = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-autostart",
                           "--trust-model", "always",
                           "--status-fd", "1", "--verify", *map(str, files)],
                          capture_output=True, text=True)
    status: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("[GNUPG:] "):
            word, _, rest = line[9:].partition(" ")
            status.setdefault(word, rest.split())
    return status


def assert_gpg_good(status: dict, primary: str, signing_fpr: str) -> None:
    assert "GOODSIG" in status, status
    assert "BADSIG" not in status
    valid = status["VALIDSIG"]
    assert valid[0] == signing_fpr and valid[9] == primary


@pytest.mark.parametrize("name", ["ed", "rsa", "sub"])
@pytest.mark.parametrize("label", sorted(TEXTS))
def test_clearsigned_verifies_with_gpg_and_in_process(kit, tmp_path, name, label):
    signer, fpr = kit["signers"][name], kit["fprs"][name]
    raw = signed.compose_clearsigned({"From": "alice@pit.test", "Subject": "order"},
                                     TEXTS[label], signer, fpr)
    content = signed.extract(raw)
    # what was signed: the text with trailing blanks cut from its lines, as gpg hashes it
    text = "\n".join(line.rstrip(" \t") for line in TEXTS[label].split("\n"))
    assert content.text == (text if text.endswith("\n") else text + "\n")
    v = content.verify(kit["verifier"])
    assert v.ok and v.fingerprint == fpr, v
    (tmp_path / "msg.asc").write_bytes(content.gpg_input)
    assert_gpg_good(gpg_status(kit["home"], tmp_path / "msg.asc"), fpr, signer.key.fingerprint)


@pytest.mark.parametrize("name", ["ed", "rsa"])
def test_tampered_clearsigned_fails_both(kit, tmp_path, name):
    signer, fpr = kit["signers"][name], kit["fprs"][name]
    raw = signed.compose_clearsigned({"From": "a@pit.test"}, TEXTS["order"], signer, fpr)
    forged = raw.replace(b"buy 100 ACME", b"buy 900 ACME")
    content = signed.extract(forged)
    assert content.verify(kit["verifier"]).status == "bad"
    (tmp_path / "msg.asc").write_bytes(content.gpg_input)
    status = gpg_status(kit["home"], tmp_path / "msg.asc")
    assert "BADSIG" in status and "GOODSIG" not in status


@pytest.mark.parametrize("name", ["ed", "rsa", "sub"])
@pytest.mark.parametrize("label", ["order", "whitespace", "non-ascii"])
def test_pgp_mime_verifies_with_gpg_and_in_process(kit, tmp_path, name, label):
    signer, fpr = kit["signers"][name], kit["fprs"][name]
    raw = signed.compose_pgp_mime({"From": "alice@pit.test"}, TEXTS[label], signer, fpr)
    assert b"micalg=pgp-sha256" in raw
    content = signed.extract(raw)
    assert content.kind == "pgp-mime" and content.parsed.sig_type == 0x00
    assert content.verify(kit["verifier"]).ok
    (tmp_path / "signed.bin").write_bytes(content.signed_bytes)
    (tmp_path / "sig.asc").write_bytes(content.gpg_input)
    assert_gpg_good(gpg_status(kit["home"], tmp_path / "sig.asc", tmp_path / "signed.bin"),
                    fpr, signer.key.fingerprint)
    # one changed byte in the signed part: both refuse
    (tmp_path / "signed.bin").write_bytes(content.signed_bytes.replace(b"Pit", b"Pat", 1))
    status = gpg_status(kit["home"], tmp_path / "sig.asc", tmp_path / "signed.bin")
    assert "BADSIG" in status
    assert kit["verifier"].verify(content.signed_bytes.replace(b"Pit", b"Pat", 1),
                                  content.parsed).status == "bad"


def test_signature_packet_carries_what_gpg_puts_in(kit):
    signer = kit["signers"]["rsa"]
    armoured = signer.detach_sign(b"data", at=1_700_000_000)
    sig = openpgp.signature_packet(openpgp.dearmor(armoured)[1])
    assert sig.sig_type == 0x00 and sig.hash_algo == 8 and sig.pubkey_algo == 1
    assert sig.created == 1_700_000_000
    assert sig.issuer_fpr == signer.key.fingerprint
    assert sig.issuer_keyid == signer.key.keyid
    # same key, same time, same bytes: the same signature (both kinds are deterministic)
    assert signer.detach_sign(b"data", at=1_700_000_000) == armoured


def test_subkey_signs_when_there_is_one(kit):
    sub = kit["signers"]["sub"]
    assert sub.key.fingerprint == testkeys.subkey(kit["signing"], "sub")
    assert sub.fingerprint == kit["fprs"]["sub"]


def test_sha512(kit, tmp_path):
    ring = Keyring(kit["signing"])
    signer = Signer.from_keyring(ring, kit["fprs"]["ed"], hash_name="sha512")
    block = signer.clearsign(TEXTS["order"])
    assert "\nHash: SHA512\n" in block
    (tmp_path / "m.asc").write_text(block)
    assert "GOODSIG" in gpg_status(kit["home"], tmp_path / "m.asc")


def test_clearsign_output_is_gpgs_layout(kit):
    block = kit["signers"]["ed"].clearsign("-x\nFrom y\nz")
    assert block.startswith("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n- -x\n- From y\nz\n"
                            "-----BEGIN PGP SIGNATURE-----\n")
    assert block.endswith("-----END PGP SIGNATURE-----\n")


def test_refusals_say_why(kit, tmp_path):
    signer = kit["signers"]["ed"]
    with pytest.raises(SignerError, match="not .*" + kit["fprs"]["rsa"]):
        signer.clearsign("x\n", kit["fprs"]["rsa"])
    with pytest.raises(SignerError, match="line 2 contains a bare carriage return"):
        signer.clearsign("a\nb\rc\n")
    with pytest.raises(SignerError, match="no key"):
        Signer.from_keyring(Keyring(kit["signing"]), "0" * 40)
    with pytest.raises(SignerError, match="not an OpenPGP secret key export"):
        secret_keys(b"\x00garbage")
    with pytest.raises(SignerError, match="hash"):
        Signer(signer.keys, hash_name="md5")
    # a public-only home has no secret part to export
    with pytest.raises(SignerError):
        Signer.from_keyring(Keyring(kit["home"]), kit["fprs"]["ed"])


def test_secret_export_parses_every_key(kit):
    ring = Keyring(kit["signing"])
    fpr = kit["fprs"]["sub"]
    keys = secret_keys(openpgp.dearmor(ring.export_secret(fpr))[1])
    assert [k.fingerprint for k in keys] == [fpr, testkeys.subkey(kit["signing"], "sub")]
    assert all(k.primary_fingerprint == fpr for k in keys)


def test_bench_fixture_requests_are_valid_and_deterministic():
    """bench.fixtures' request stream (what the benchmarks sign in bulk):
    every request parses and resolves, cancels and modifies name an earlier
    order of the same account, and the same arguments give the same texts."""
    from bench.fixtures import order_texts
    from pit import message
    from pit.units import Currency, Instrument

    usd = Currency("USD", "0.01")
    acme = Instrument("ACME", usd, tick="0.01", lot="1")
    texts = order_texts("bench", 2_000, traders=3, seed=5)
    assert texts == order_texts("bench", 2_000, traders=3, seed=5)
    assert len(texts) == 2_000
    placed: set[tuple[str, str]] = set()
    kinds = set()
    for account, text in texts:
        req = message.parse_request(text, pit="bench")
        assert req.account == account
        ins = req.instruction
        if isinstance(ins, (message.Cancel, message.Modify)):
            assert (account, ins.ref) in placed, text
            kinds.add(type(ins).__name__)
        message.resolve(req, {"ACME": acme}, {"USD": usd}, ticker="ACME")
        placed.add((account, req.ref))
    assert kinds == {"Cancel", "Modify"}


def test_key_signer_signs_in_process_as_gpg_does_and_leaves_an_invalid_key_to_gpg(kit, tmp_path):
    """KeySigner (the notary's seals, a filter daemon's posts): the
    in-process signature is gpg's own block for the text, verified by stock
    gpg; a key that gpg lists as expired is left to gpg, which refuses."""
    from pit.keyring import KeyringError
    from pit.signer import KeySigner
    ring, fpr = Keyring(kit["signing"]), kit["fprs"]["sub"]
    text = TEXTS["dashes"]
    by_gpg, in_process = ring.clearsign(text, fpr), KeySigner(ring, fpr).ready()
    assert in_process._signer is not None             # read into the process: no gpg per signature
    block = in_process.clearsign(text)
    head = "-----BEGIN PGP SIGNATURE-----\n"
    assert block.split(head)[0] == by_gpg.split(head)[0]
    (tmp_path / "seal.asc").write_text(block)
    assert_gpg_good(gpg_status(kit["home"], tmp_path / "seal.asc"), fpr,
                    kit["signers"]["sub"].key.fingerprint)
    fprs = testkeys.make_keys(tmp_path / "old", [("old", "ed25519", "expired")])
    old = Keyring(tmp_path / "old")
    try:
        expired = KeySigner(old, fprs["old"]).ready()
        assert expired._signer is None
        with pytest.raises(KeyringError):
            old.clearsign(text, fprs["old"])
        with pytest.raises(KeyringError):
            expired.clearsign(text)
    finally:
        testkeys.stop_agents(tmp_path)
