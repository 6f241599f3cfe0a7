"""The pit's verifier never accepts what stock gpg refuses: a differential test.

``gpg_matrix`` has real gpg make keys and signatures over a matrix (RSA and
ed25519; primary key, signing subkey, expired, revoked and no-sign subkeys;
signatures dated normally, before their key, in the future; every hash gpg
signs with; notations, critical ones, a critical policy URL, signatures that
expire; clearsigned and PGP/MIME; each with a tampered twin) and records
stock gpg's verdict from its status lines.  Each message then goes through
the pit's own path: ``pit.signed.extract`` and the in-process verifier built
by ``Keyring.load_verifier`` from the same public keys.

The properties: the pit accepts nothing gpg does not call GOODSIG; where
the pit refuses what gpg accepts, it is for a reason the pit documents
(SHA-1 and RIPEMD-160, docs/verifying.md), and nothing else.  The matrix
here is the reduced one (well under a minute); ``make parity`` runs the
full cross product with rsa3072 too (PIT_PARITY_FULL=1).
"""

from __future__ import annotations

import collections
import os
import time

import pytest

import gpg_matrix
from pit import openpgp, signed
from pit.keyring import Keyring

pytestmark = pytest.mark.e2e

FULL = os.environ.get("PIT_PARITY_FULL") == "1"
# The pit refuses these where gpg 2.2 accepts them (docs/verifying.md).
STRICTER = {"SHA1": "invalid", "RIPEMD160": "malformed"}


@pytest.fixture(scope="module")
def matrix():
    algos = ("ed25519", "rsa2048", "rsa3072") if FULL else ("ed25519", "rsa2048")
    started = time.monotonic()
    m = gpg_matrix.build(algos, full=FULL)
    m.seconds = time.monotonic() - started
    try:
        m.verifier = Keyring(m.verify_home.path).load_verifier()
        yield m
    finally:
        m.close()


def pit_verdict(matrix, case) -> openpgp.Verdict:
    try:
        return signed.extract(case.message).verify(matrix.verifier)
    except signed.SignedError as err:
        return err.verdict()


def cases(matrix, **where):
    found = [c for c in matrix.cases
             if all(getattr(c, k) == v for k, v in where.items())]
    assert found, f"the matrix has no case {where}"
    return found


def test_the_pit_never_accepts_what_gpg_refuses(matrix):
    accepted_against_gpg, refused_unexplained = [], []
    table = collections.Counter()
    for case in matrix.cases:
        mine = pit_verdict(matrix, case)
        table[case.gpg_status, mine.status] += 1
        if mine.ok and case.gpg_status != "GOODSIG":
            accepted_against_gpg.append(f"{case.name}: gpg {case.gpg_status}, pit {mine}")
        if not mine.ok and case.gpg_status == "GOODSIG" and STRICTER.get(case.hash) != mine.status:
            refused_unexplained.append(f"{case.name}: gpg GOODSIG, pit {mine}")
    summary = (f"{len(matrix.cases)} messages in {matrix.seconds:.1f} s "
               f"({len(matrix.skipped)} combinations gpg would not sign); "
               + ", ".join(f"gpg {g} / pit {p}: {n}" for (g, p), n in sorted(table.items())))
    print(summary)
    assert not accepted_against_gpg, "\n".join(accepted_against_gpg)
    assert not refused_unexplained, "\n".join(refused_unexplained)
    # The matrix covers what it claims: each kind of refusal occurs.
    seen = {g for g, _ in table}
    assert {"GOODSIG", "BADSIG", "ERRSIG 1", "ERRSIG 39", "ERRSIG 125", "EXPKEYSIG",
            "REVKEYSIG", "EXPSIG"} <= seen, seen
    assert len(matrix.cases) >= (400 if FULL else 200)


def test_the_judge_processes_give_the_same_verdicts(matrix):
    """The notary's server checks signatures in judge processes
    (moderator/judges.py) and takes their proof in ``Verifier.verify``:
    every message of the matrix gets the same verdict that way as when it
    is checked inline (so never one weaker than gpg's)."""
    from test_judges import judged_by_processes
    judged = judged_by_processes(matrix.verify_home.path, 10 ** 7,
                                 [case.message for case in matrix.cases], timeout=120)
    proved = differ = 0
    for case, pre in zip(matrix.cases, judged):
        if pre is None:                          # nothing the judge could take: inline
            continue
        proved += pre.proof is not None
        mine = pit_verdict(matrix, case)
        theirs = matrix.verifier.verify(pre.signed.signed_bytes, pre.signed.parsed,
                                        proof=pre.proof)
        if mine != theirs:
            differ += 1
            print(f"{case.name}: inline {mine}, with the judge's proof {theirs}")
    assert differ == 0
    assert proved >= len(matrix.cases) // 4


def test_a_subkey_that_may_not_sign_is_refused(matrix):
    """gpg: "Wrong key usage" (a subkey for authentication or encryption only)."""
    for case in cases(matrix, key="sub-nosign", when="normal", hash="SHA256", tampered=False):
        assert case.gpg_status == "ERRSIG 125"
        v = pit_verdict(matrix, case)
        assert v.status == "invalid" and "may not make signatures" in v.detail, (case.name, v)


def test_a_signature_dated_before_its_key_is_refused(matrix):
    """gpg: "Time conflict"."""
    for case in cases(matrix, when="before-key", hash="SHA256", tampered=False):
        assert case.gpg_status == "ERRSIG 39"
        v = pit_verdict(matrix, case)
        assert v.status == "invalid" and "before key" in v.detail, (case.name, v)


def test_a_signing_subkey_without_back_signature_is_refused(matrix):
    """gpg: "signing subkey ... is not cross-certified" (ERRSIG, code 1): a
    binding without the subkey's own back signature does not show that the
    certificate's owner holds the subkey."""
    for case in cases(matrix, key="sub-nobacksig", when="normal", hash="SHA256", tampered=False):
        assert case.gpg_status == "ERRSIG 1"
        v = pit_verdict(matrix, case)
        assert v.status == "invalid" and "not cross-certified" in v.detail, (case.name, v)


def test_a_key_in_two_certificates_is_refused(matrix):
    """A subkey bound into a second certificate: whose signature it makes
    is not for the order of a look-up to decide."""
    case = cases(matrix, key="sub", when="normal", hash="SHA256", tampered=False,
                 mode="clearsigned", extra="")[0]
    keys = matrix.verifier.keys()
    s = signed.extract(case.message)
    sub = matrix.verifier.key(s.parsed.issuer_fpr)
    twin = openpgp.PublicKey(sub.fingerprint, "F" * 40, sub.algo, sub.created, sub.material,
                             cross_certified=True)
    assert s.verify(openpgp.Verifier(keys)).ok
    v = s.verify(openpgp.Verifier(keys + [twin]))
    assert v.status == "invalid" and "2 certificates" in v.detail


def test_sha1_data_signatures_are_refused(matrix):
    for case in (cases(matrix, key="primary", hash="SHA1", when="normal", tampered=False)
                 + cases(matrix, key="sub", hash="SHA1", when="normal", tampered=False)):
        assert case.gpg_status == "GOODSIG"          # gpg 2.2 still takes them
        v = pit_verdict(matrix, case)
        assert v.status == "invalid" and "SHA-1" in v.detail, (case.name, v)


def test_the_gpg_reference_verdict_names_usage_and_time_conflicts(matrix):
    """Keyring.verify_gpg, the reference the corpus compares with, reads
    these ERRSIGs as "invalid" too."""
    keyring = Keyring(matrix.verify_home.path)
    for when, key in (("normal", "sub-nosign"), ("before-key", "primary")):
        case = cases(matrix, key=key, when=when, hash="SHA256", tampered=False, mode="clearsigned")[0]
        s = signed.extract(case.message)
        assert (s.verify_gpg(keyring).status, s.verify(matrix.verifier).status) == ("invalid", "invalid")


def test_future_signatures_pass_gpg_but_not_the_notarys_clock(matrix):
    """gpg accepts a signature dated 30 days ahead; the notary's time rule does not."""
    now = int(time.time())
    for case in cases(matrix, key="sub", when="future", hash="SHA256", extra="", tampered=False):
        v = pit_verdict(matrix, case)
        assert case.gpg_status == "GOODSIG" and v.ok
        assert "in the future" in openpgp.time_refusal(v.created, now, 300, 3 * 86400)
