"""Replicas, and what a copy of the log remembers between audits.

A *replica* is a directory made by ``pit mirror``::

    <replica>/replica.conf     the replica's own small config and state
    <replica>/archives/        index and NNNNNN.mbox volumes, nothing else

It holds public material only: the archive (whose genesis and member
records carry every public key an audit needs), never a private key, never
``pit.conf`` or its secrets.  ``replica.conf``::

    [pit]
    name = demo                      # from the genesis record
    notary = 9647B5B8...             # the notary key this replica expects (pinned)
    operator = 2C1E...
    [replica]
    source = notaryhost:/srv/pits/demo
    [verified]                       # the newest signed tree head verified here
    seal = 131                       # the seal record that carries it
    size = 130                       # records 1..130
    root = 5b0c...                   # their Merkle root (pit.merkle)
    time = 2026-12-06T17:54:07.390480Z
    frontier = 130 <hash> <hash> <hash>   # the tree's compact range: O(log n)

Any other copy that ``pit audit`` checks (a pit directory, a bare
``archives`` folder) keeps the same ``[verified]`` section in
``verified.conf`` beside its archive.  The next audit (or mirror) checks
that the archive extends that head, by an RFC 9162 consistency proof made
from the archive and checked against the remembered root; when it does
not, the remembered frontier tells which records were lost or changed.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

from pit import merkle

__all__ = ["REPLICA_CONF", "State", "state_file", "load_state", "save_state",
           "check_consistency", "LogChanged", "write_replica_conf", "is_replica"]

REPLICA_CONF = "replica.conf"
VERIFIED_CONF = "verified.conf"


def _root_of(path: str | os.PathLike) -> Path:
    """The directory whose archive *path* names: a pit, a replica, or the
    folder holding a bare archive copy."""
    p = Path(path)
    if (p / "archives").is_dir() or not (p / "index").exists():
        return p
    return p.parent if p.name == "archives" else p


def is_replica(path: str | os.PathLike) -> bool:
    return (Path(path) / REPLICA_CONF).exists()


def state_file(path: str | os.PathLike) -> Path:
    """Where the copy at *path* keeps its ``[verified]`` section."""
    root = _root_of(path)
    if (root / REPLICA_CONF).exists():
        return root / REPLICA_CONF
    if (root / "archives").is_dir():
        return root / VERIFIED_CONF
    return Path(path) / VERIFIED_CONF           # a bare archive folder keeps it inside


@dataclass
class State:
    """The newest signed tree head a copy verified (size 0: none yet) and
    the notary key it expects ("" when none is pinned)."""
    notary: str = ""
    seal: int = 0
    size: int = 0
    root: str = ""
    time: str = ""
    frontier: str = ""


def _read(path: Path) -> configparser.ConfigParser:
    """The copy's config; ValueError, one line naming the file, when it
    does not read (a hostile or broken file is never a traceback)."""
    cp = configparser.ConfigParser()
    if path.exists():
        try:
            with open(path, encoding="utf-8") as f:
                cp.read_file(f)
        except (configparser.Error, UnicodeDecodeError) as e:
            reason = str(e).splitlines()[0].rstrip(".")
            raise ValueError(f"{path} is damaged ({reason}); remove it, or its [verified] "
                             "section, to start afresh (and compare the root with another "
                             "member's)") from None
    return cp


def load_state(path: str | os.PathLike) -> State:
    """The state kept for the copy at *path* (empty when there is none).  O(1)."""
    f = state_file(path)
    cp = _read(f)
    notary = cp.get("pit", "notary", fallback="") or cp.get("verified", "notary", fallback="")
    if not cp.has_section("verified"):
        return State(notary=notary.upper())
    v = cp["verified"]
    try:
        st = State(notary.upper(), int(v.get("seal", "0")), int(v.get("size", "0")),
                   v.get("root", ""), v.get("time", ""), v.get("frontier", ""))
        if st.size:
            fr = merkle.Frontier.from_text(st.frontier)
            if fr.size != st.size or fr.root().hex() != st.root:
                raise ValueError("the frontier is not the tree of the head")
    except ValueError as e:
        raise ValueError(f"{f}: [verified] is damaged ({e}); remove the section to start "
                         "afresh (and compare the root with another member's)") from None
    return st


def save_state(path: str | os.PathLike, res, notary: str) -> Path:
    """Remember the newest signed tree head of an audit that passed (*res*,
    a pit.audit.AuditResult) and the notary key.  Written whole, then
    renamed into place."""
    f = state_file(path)
    cp = _read(f)
    if f.name == REPLICA_CONF:
        if not cp.has_section("pit"):
            cp["pit"] = {}
        cp["pit"]["notary"] = notary
    if not cp.has_section("verified"):
        cp["verified"] = {}
    v = cp["verified"]
    if f.name != REPLICA_CONF:
        v["notary"] = notary
    if res.newest_head:
        seal, size, root, when, frontier = res.newest_head
        v.update(seal=str(seal), size=str(size), root=root, time=when,
                 frontier=frontier.to_text())
    tmp = f.with_name(f.name + ".tmp")
    with open(tmp, "w") as out:
        out.write("# kept by pit audit and pit mirror: the newest signed tree head this copy\n"
                  "# verified; the next archive must extend it (pit-archive(5))\n")
        cp.write(out)
    os.replace(tmp, f)
    return f


def _first_changed(old: merkle.Frontier, leaves, limit: int) -> tuple[int, int] | None:
    """The first perfect subtree of the remembered tree, within the first
    *limit* leaves, whose hash the archive's leaves no longer give:
    ``(first, end)`` as leaf indexes.  O(limit)."""
    for first, end, h in old.ranges():
        if end > limit:
            return None
        if merkle.subtree_root(leaves, first, end) != h:
            return first, end
    return None


def _records(first: int, end: int) -> str:
    """Leaves first..end-1 as record numbers."""
    return f"record {first + 1}" if end - first == 1 else f"records {first + 1}-{end}"


class LogChanged(Exception):
    """The archive does not extend the head a copy verified: ``(seq, what,
    expected, found)``, as the audit reports it (pit.audit.AuditFailure)."""


def check_consistency(state: State, leaves, res) -> str:
    """Check that the archive (its *leaves*, and *res*'s newest signed tree
    head) extends the head *state* remembers; return what was checked, or
    raise :class:`LogChanged` saying what was lost or changed and from
    which record.  O(n)."""
    m, n = state.size, len(leaves)
    old = merkle.Frontier.from_text(state.frontier)
    seen = (f"the signed tree head of {m} records this copy verified "
            f"(seal record {state.seal}, notary time {state.time}, root {state.root[:16]}...)")
    if n < m or n < state.seal:
        # the seal record that carries the head was verified too
        last = max(m, state.seal)
        changed = _first_changed(old, leaves, n)
        what = (f"the log was cut short: the archive ends at record {n}, but {seen} "
                f"holds {m}: {_records(n, last)} {'were' if last - n > 1 else 'was'} lost")
        if changed:
            what += f", and {_records(*changed)} changed"
        raise LogChanged(n + 1, what, f"{last} records", f"{n} records")
    head = res.newest_head
    if head and head[1] >= m:
        size, root_hex = head[1], head[2]
    else:
        size, root_hex = n, merkle.root(leaves).hex()
    proof = merkle.consistency_proof(leaves, m, size)
    if merkle.verify_consistency(m, size, bytes.fromhex(state.root), bytes.fromhex(root_hex), proof):
        return (f"extends {seen}: consistency proof {m} -> {size}, "
                f"{len(proof)} hashes, checked")
    changed = _first_changed(old, leaves, n) or (0, m)
    raise LogChanged(changed[0] + 1,
                       f"history was rewritten: the archive does not extend {seen}; "
                       f"{_records(*changed)} differ from what was verified (the first "
                       f"changed record is {'among them' if changed[1] - changed[0] > 1 else 'that one'})",
                       f"root {state.root} over records 1-{m}",
                       f"root {merkle.subtree_root(leaves, 0, m).hex()} over records 1-{m}")


def write_replica_conf(root: str | os.PathLike, source: str, name: str, notary: str,
                       operator: str) -> Path:
    """Make or update a replica's ``replica.conf`` ([pit] and [replica];
    [verified] is kept as it is).  A notary key pinned before is kept."""
    f = Path(root) / REPLICA_CONF
    cp = _read(f)
    for sec in ("pit", "replica"):
        if not cp.has_section(sec):
            cp[sec] = {}
    cp["pit"]["name"] = name
    cp["pit"].setdefault("notary", notary)
    cp["pit"]["operator"] = operator
    cp["replica"]["source"] = source
    tmp = f.with_name(f.name + ".tmp")
    with open(tmp, "w") as out:
        out.write("# a replica of a pit's archive (pit mirror): public material only\n")
        cp.write(out)
    os.replace(tmp, f)
    return f
