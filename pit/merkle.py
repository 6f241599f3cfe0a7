"""The archive as a Merkle tree, as Certificate Transparency logs are
(RFC 9162 section 2.1), and its proofs.

The leaves are the records in sequence order; leaf ``i`` (from 0) is
record ``i + 1``.  What a leaf hashes is the record's 32-byte record hash
(the SHA-256 of the stored record, docs/pit-archive.5.md), with RFC 9162's
prefixes keeping leaves and inner nodes apart::

    leaf hash  = SHA-256(0x00 || record hash)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256("")
    MTH(D[n])  = node hash(MTH(D[0:k]), MTH(D[k:n])),  k the largest power of 2 < n

The notary keeps a :class:`Frontier` (RFC 9162's compact range: the roots
of the perfect subtrees that make up the tree, one per set bit of its
size), so appending a record costs O(1) hashes on average and the root
O(log n).  Proofs (:func:`inclusion_proof`, :func:`consistency_proof`) are
made from the leaf hashes of the whole archive, O(n); checking one
(:func:`verify_inclusion`, :func:`verify_consistency`) costs O(log n)
hashes and needs nothing of the archive.

>>> leaves = [leaf_hash(bytes([i]) * 32) for i in range(7)]
>>> f = Frontier()
>>> for h in leaves: f.append(h)
>>> f.root() == root(leaves)
True
>>> verify_inclusion(3, 7, leaves[3], inclusion_proof(leaves, 3), root(leaves))
True
>>> verify_consistency(3, 7, root(leaves[:3]), root(leaves), consistency_proof(leaves, 3))
True
"""

from __future__ import annotations

from hashlib import sha256

__all__ = ["leaf_hash", "node_hash", "EMPTY_ROOT", "Frontier", "CompactRange", "root", "subtree_root",
           "inclusion_proof", "inclusion_steps", "consistency_proof", "verify_inclusion",
           "verify_consistency", "ProofError"]

EMPTY_ROOT = sha256(b"").digest()


class ProofError(ValueError):
    """A proof asked for that cannot exist (an index past the tree, ...)."""


def leaf_hash(record_hash: bytes) -> bytes:
    """The leaf hash of a record whose record hash is *record_hash* (32
    bytes, not hex).  O(1)."""
    return sha256(b"\x00" + record_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An inner node's hash.  O(1)."""
    return sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than *n* (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The tree of the first ``size`` leaves, kept as the roots of its
    perfect subtrees, largest (leftmost) first: O(log n) hashes.

    >>> f = Frontier()
    >>> f.root() == EMPTY_ROOT
    True
    >>> f.append(leaf_hash(b"\\x01" * 32)); f.size
    1
    >>> Frontier.from_text(f.to_text()).root() == f.root()
    True
    """

    __slots__ = ("size", "hashes")

    def __init__(self, size: int = 0, hashes: list[bytes] | None = None):
        hashes = list(hashes or [])
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"a tree of {size} leaves has {bin(size).count('1')} "
                             f"subtree roots, not {len(hashes)}")
        self.size, self.hashes = size, hashes

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash.  O(1) amortized, O(log n) at worst."""
        hashes = self.hashes
        hashes.append(leaf)
        n = self.size
        while n & 1:
            right = hashes.pop()
            hashes[-1] = sha256(b"\x01" + hashes[-1] + right).digest()
            n >>= 1
        self.size += 1

    def root(self) -> bytes:
        """The tree head's root hash.  O(log n)."""
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            r = node_hash(h, r)
        return r

    def ranges(self) -> list[tuple[int, int, bytes]]:
        """``(first, end, hash)`` of each perfect subtree: leaves
        ``first .. end - 1``.  O(log n)."""
        out, at = [], 0
        for bit in range(self.size.bit_length() - 1, -1, -1):
            if self.size >> bit & 1:
                out.append((at, at + (1 << bit), self.hashes[len(out)]))
                at += 1 << bit
        return out

    def copy(self) -> "Frontier":
        return Frontier(self.size, self.hashes)

    def to_text(self) -> str:
        """``SIZE HASH HASH ...`` (hex), one line."""
        return " ".join([str(self.size)] + [h.hex() for h in self.hashes])

    @classmethod
    def from_text(cls, text: str) -> "Frontier":
        words = text.split()
        if not words or not words[0].isdigit():
            raise ValueError(f"not a frontier: {text[:80]!r}")
        try:
            return cls(int(words[0]), [bytes.fromhex(w) for w in words[1:]])
        except ValueError as e:
            raise ValueError(f"not a frontier: {e}") from None


class CompactRange:
    """The leaves of a tree known as the :class:`Frontier` of its first
    ``base`` leaves followed by every later leaf hash: what an auditor
    keeps of a log it verified up to a head, plus what it read since.
    :func:`subtree_root`, :func:`root`, :func:`consistency_proof` and
    :func:`inclusion_proof` (of a leaf after the base) take one in place of
    a list of leaf hashes, for every subtree they need from the head on:
    one that starts at a boundary of the frontier's subtrees or after
    ``base`` (every subtree a consistency proof from a size >= ``base``
    asks for does).

    >>> leaves = [leaf_hash(bytes([i]) * 32) for i in range(13)]
    >>> f = Frontier()
    >>> for h in leaves[:6]: f.append(h)
    >>> c = CompactRange(f, leaves[6:])
    >>> root(c) == root(leaves), consistency_proof(c, 6) == consistency_proof(leaves, 6)
    (True, True)
    """

    __slots__ = ("base", "starts", "leaves")

    def __init__(self, frontier: Frontier, leaves: list[bytes]):
        self.base = frontier.size
        self.starts = {first: (end, h) for first, end, h in frontier.ranges()}
        self.leaves = leaves

    def __len__(self) -> int:
        return self.base + len(self.leaves)

    def subtree_root(self, lo: int, hi: int) -> bytes:
        """MTH of leaves ``lo .. hi - 1``.  O(hi - max(lo, base) + log n);
        ProofError when *lo* is inside one of the frontier's subtrees."""
        base = self.base
        if lo >= base:
            return subtree_root(self.leaves, lo - base, hi - base)
        if lo not in self.starts:
            raise ProofError(f"leaf {lo} is inside a subtree of the head of {base} leaves")
        hashes, at = [], lo                  # the frontier of leaves lo .. base - 1
        while at < min(hi, base):
            end, h = self.starts[at]
            if end > hi:
                raise ProofError(f"leaves {lo}-{hi - 1} end inside a subtree of the head")
            hashes.append(h)
            at = end
        tree = Frontier(at - lo, hashes)
        for leaf in self.leaves[:max(0, hi - base)]:
            tree.append(leaf)
        return tree.root()


def subtree_root(leaves, lo: int, hi: int) -> bytes:
    """MTH of ``leaves[lo:hi]``.  O(hi - lo)."""
    if leaves.__class__ is CompactRange:
        return leaves.subtree_root(lo, hi)
    n = hi - lo
    if n <= 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[lo]
    # Perfect subtrees level by level: no recursion, one list.
    k = _split(n) if n & (n - 1) else n
    if k == n:
        level = list(leaves[lo:hi])
        while len(level) > 1:
            level = [sha256(b"\x01" + level[i] + level[i + 1]).digest()
                     for i in range(0, len(level), 2)]
        return level[0]
    return node_hash(subtree_root(leaves, lo, lo + k), subtree_root(leaves, lo + k, hi))


def root(leaves) -> bytes:
    """The root hash of the tree over *leaves* (leaf hashes).  O(n)."""
    return subtree_root(leaves, 0, len(leaves))


def inclusion_proof(leaves, index: int, size: int | None = None) -> list[bytes]:
    """RFC 9162 PATH(index, D[size]): the audit path of leaf *index* in the
    tree of the first *size* leaves (all when None).  O(size)."""
    size = len(leaves) if size is None else size
    if not 0 <= index < size <= len(leaves):
        raise ProofError(f"no leaf {index} in a tree of {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(subtree_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_root(leaves, lo, lo + k))
            lo += k
    path.reverse()                # RFC order: from the leaf up
    return path


def inclusion_steps(index: int, size: int, path: list[bytes]) -> list[str]:
    """For each hash of an inclusion proof, on which side it joins the
    running hash on the way up: ``"left"`` (node = H(01 || it || running))
    or ``"right"`` (node = H(01 || running || it)).  The sides follow from
    *index* and *size* alone (RFC 9162 2.1.3.2); printing them lets a person
    fold the path with sha256sum.  O(log n)."""
    fn, sn, out = index, size - 1, []
    for _ in path:
        if sn == 0:
            raise ProofError("the path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            out.append("left")
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            out.append("right")
        fn >>= 1
        sn >>= 1
    return out


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root_hash: bytes) -> bool:
    """RFC 9162 2.1.3.2: is *leaf* the leaf *index* of the tree of *size*
    leaves whose root is *root_hash*?  O(len(path))."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def consistency_proof(leaves, first: int, size: int | None = None) -> list[bytes]:
    """RFC 9162 PROOF(first, D[size]): the hashes that prove the tree of the
    first *first* leaves is a prefix of the tree of *size* leaves.  O(size)."""
    size = len(leaves) if size is None else size
    if not 0 < first <= size <= len(leaves):
        raise ProofError(f"no consistency proof from {first} to {size}")
    proof: list[bytes] = []
    lo, hi, m, whole = 0, size, first, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                proof.append(subtree_root(leaves, lo, hi))
            break
        k = _split(n)
        if m <= k:
            proof.append(subtree_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree_root(leaves, lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    proof.reverse()
    return proof


def verify_consistency(first: int, size: int, first_root: bytes, root_hash: bytes,
                       proof: list[bytes]) -> bool:
    """RFC 9162 2.1.4.2: does the tree of *size* leaves with root
    *root_hash* extend the tree of *first* leaves with root *first_root*?
    O(len(proof))."""
    if not 0 < first <= size:
        return False
    if first == size:
        return not proof and first_root == root_hash
    proof = list(proof)
    if first & (first - 1) == 0:
        proof.insert(0, first_root)
    if not proof:
        return False
    fn, sn = first - 1, size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == root_hash and sn == 0
