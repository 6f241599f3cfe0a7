"""pit.merkle against RFC 9162's definitions, written out plainly."""

from hashlib import sha256

import pytest

from pit import merkle


def mth(leaves):
    """RFC 9162 2.1.1, as the RFC writes it."""
    if not leaves:
        return sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


LEAVES = [merkle.leaf_hash(sha256(bytes([i])).digest()) for i in range(40)]


def test_leaf_and_node_hashes_carry_rfc_9162_prefixes():
    h = bytes(range(32))
    assert merkle.leaf_hash(h) == sha256(b"\x00" + h).digest()
    assert merkle.node_hash(h, h) == sha256(b"\x01" + h + h).digest()


@pytest.mark.parametrize("n", range(0, 40))
def test_the_frontier_and_the_root_agree_with_the_definition(n):
    f = merkle.Frontier()
    for h in LEAVES[:n]:
        f.append(h)
    assert f.root() == mth(LEAVES[:n]) == merkle.root(LEAVES[:n])
    assert merkle.Frontier.from_text(f.to_text()).root() == f.root()
    for first, end, h in f.ranges():
        assert h == mth(LEAVES[first:end])


@pytest.mark.parametrize("n", range(1, 34))
def test_every_inclusion_proof_verifies_and_no_wrong_one_does(n):
    r = mth(LEAVES[:n])
    for i in range(n):
        path = merkle.inclusion_proof(LEAVES, i, n)
        assert merkle.verify_inclusion(i, n, LEAVES[i], path, r)
        assert len(merkle.inclusion_steps(i, n, path)) == len(path)
        assert not merkle.verify_inclusion(i, n, LEAVES[i + 1], path, r)
        if n > 1:
            assert not merkle.verify_inclusion((i + 1) % n, n, LEAVES[i], path, r)
        if path:
            bad = list(path)
            bad[0] = bytes(32)
            assert not merkle.verify_inclusion(i, n, LEAVES[i], bad, r)


@pytest.mark.parametrize("n", range(1, 34))
def test_every_consistency_proof_verifies_and_no_wrong_one_does(n):
    r = mth(LEAVES[:n])
    for m in range(1, n + 1):
        proof = merkle.consistency_proof(LEAVES, m, n)
        assert merkle.verify_consistency(m, n, mth(LEAVES[:m]), r, proof)
        forked = LEAVES[:m - 1] + [merkle.leaf_hash(b"x" * 32)] + LEAVES[m:n]
        assert not merkle.verify_consistency(m, n, mth(forked[:m]), r, proof)
        if m < n:
            assert not merkle.verify_consistency(m, n, mth(LEAVES[:m]), mth(forked), proof)


def test_a_compact_range_gives_the_proofs_a_list_of_every_leaf_gives():
    """What an auditor keeps (the frontier of the head it verified) plus
    the leaves since gives the same roots and consistency proofs as every
    leaf of the log: the proofs from any later size, and every subtree of
    any later head's frontier."""
    for n in range(1, 45):
        leaves = [merkle.leaf_hash(sha256(bytes([i])).digest()) for i in range(n)]
        for base in range(n + 1):
            f = merkle.Frontier()
            for h in leaves[:base]:
                f.append(h)
            c = merkle.CompactRange(f, leaves[base:])
            assert len(c) == n and merkle.root(c) == merkle.root(leaves)
            for m in range(max(base, 1), n + 1):
                assert merkle.consistency_proof(c, m) == merkle.consistency_proof(leaves, m)
                later = merkle.Frontier()
                for h in leaves[:m]:
                    later.append(h)
                for first, end, h in later.ranges():
                    assert merkle.subtree_root(c, first, end) == h
    f = merkle.Frontier()
    for h in leaves[:6]:
        f.append(h)
    with pytest.raises(merkle.ProofError):      # inside a subtree of the head: not kept
        merkle.subtree_root(merkle.CompactRange(f, leaves[6:]), 1, 3)
