"""pit verify SEQ: check one record on its own with stock gpg, and its inclusion in the log."""

from __future__ import annotations

from pathlib import Path

from pit import mbox, message
from pit.archive import Archive, record_hash
from pit.commands.common import EXIT, CliError, find_pit
from pit.pitdir import Pit
from pit.query import records


def arguments(cmd) -> None:
    sp = cmd("verify", run, "check one record on its own with stock gpg, and its "
             "inclusion in the log", ["pit verify 42", "pit verify 42 --proof",
                                      "pit verify 42 --json --head 131"], json_flag=True)
    sp.add_argument("seq", type=int)
    sp.add_argument("--proof", action="store_true", help="print the inclusion proof and the "
                    "signed tree head, to check with sha256sum, xxd and gpg (docs/verifying.md)")
    sp.add_argument("--head", type=int, metavar="SEAL", help="the seal record whose signed "
                    "tree head to prove against (default the newest)")


VERIFY_FIELDS = ("record", "record_hash", "leaf_index", "leaf_hash", "tree_size", "root",
                 "head_seal", "head_time", "path", "head", "checks", "verified")


def _record(pit: Pit, seq: int) -> bytes:
    for _, msg in Archive(pit.root).read(seq, seq):
        return msg
    raise CliError(f"no record {seq} in {pit.root} (the archive ends at "
                   f"{Archive(pit.root).last_seq()})", EXIT["usage"])


def _gpg_verify(home: Path, files: list[Path]) -> tuple[bool, str]:
    """Stock gpg's verdict on signature *files* (a clearsigned block, or a
    detached signature and its data), in the home of keyring *home* that
    holds the key the signature names (a member's key is in its shard,
    pit.keyring)."""
    import subprocess
    from pit.keyring import Keyring
    home = Keyring(home).home_for_signature(files[0].read_bytes())
    proc = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-autostart",
                           "--trust-model", "always", "--status-fd", "1", "--verify",
                           *map(str, files)],
                          capture_output=True, text=True)
    good = [l.split(" ", 3)[2:] for l in proc.stdout.splitlines() if l.startswith("[GNUPG:] GOODSIG")]
    return proc.returncode == 0 and bool(good), (" ".join(good[0]) if good else proc.stderr.strip().splitlines()[-1:] and proc.stderr.strip().splitlines()[-1])


def run(args) -> int:
    """Check one record on its own, each step with stock tools, and its
    inclusion in the log under a signed tree head (RFC 9162)."""
    import hashlib
    import tempfile
    from pit import signed
    from pit.filter import signed_text
    pit = find_pit(args.pit)
    seq = args.seq
    msg = _record(pit, seq)
    try:
        st = mbox.stamp(msg)
    except mbox.MboxError as e:
        raise CliError(f"record {seq}: the stamp cannot be read ({e}): run pit audit") from None
    stamp_bytes, original = mbox.split_stamp(msg)
    ok = True
    lines: list[str] = []

    def step(good: bool, text: str) -> None:
        nonlocal ok
        ok = ok and good
        lines.append(f"{'ok  ' if good else 'FAIL'} {text}")

    h = record_hash(msg)
    lines.append(f"record {seq}: {st.get('x-pit-kind')} {st.get('x-pit-account', '')} "
                 f"{st.get('x-pit-request', '')}")
    lines.append(f"     record hash {h}")
    digest = hashlib.sha256(original).hexdigest()
    step(digest == st.get("x-pit-digest"), f"X-Pit-Digest is the SHA-256 of the original message")
    if seq > 1:
        prev = record_hash(_record(pit, seq - 1))
        step(prev == st.get("x-pit-prev"), f"X-Pit-Prev is the record hash of record {seq - 1}")
    seal_seq = None
    if st.get("x-pit-kind") == "seal":
        seal_seq = seq                 # a seal vouches for itself: its own signature
    for s, sst, smsg in ([] if seal_seq else records(pit, from_seq=seq)):
        if sst.get("x-pit-kind") != "seal":
            continue
        first, _, last = sst.get("x-pit-request", "0-0").partition("-")
        if int(first) <= seq <= int(last):
            seal = message.parse_seal(signed_text(smsg))
            seal_seq = s
            step(seal.hashes[seq - seal.first] == h,
                 f"seal record {s} has the line '{seq} {seal.hashes[seq - seal.first][:16]}...'")
            break
    if seal_seq is None:
        step(False, f"no seal covers record {seq} yet")
    head = _tree_head(pit, seq, args.head)
    proof = None
    with tempfile.TemporaryDirectory() as tmp, _public_home(pit) as home:
        if seal_seq is not None:
            block = signed.extract(mbox.split_stamp(_record(pit, seal_seq))[1]).gpg_input
            p = Path(tmp, "seal.asc")
            p.write_bytes(block)
            good, who = _gpg_verify(home, [p])
            step(good, f"gpg --verify of seal {seal_seq}: {who}")
        if head is None:
            lines.append(f"     no signed tree head covers record {seq} yet (seals made "
                         "before the log had tree heads carry none)")
        else:
            proof = _inclusion(pit, seq, h, head)
            step(proof["verified"], f"inclusion proof of {len(proof['path'])} hashes "
                 f"(RFC 9162) gives the Root of the signed tree head in seal record "
                 f"{head[0]} ({head[1].tree_size} records)")
            if head[0] != seal_seq:
                p = Path(tmp, "head.asc")
                p.write_bytes(head[2].encode())
                good, who = _gpg_verify(home, [p])
                step(good, f"gpg --verify of the signed tree head in seal {head[0]}: {who}")
        try:
            sig = signed.extract(original)
        except signed.SignedError as e:
            step(False, f"signed content: {e}")
        else:
            if sig.kind == "clearsigned":
                p = Path(tmp, "msg.asc")
                p.write_bytes(sig.gpg_input)
                files = [p]
            else:
                sp, d = Path(tmp, "sig.asc"), Path(tmp, "part")
                sp.write_bytes(sig.gpg_input)
                d.write_bytes(sig.signed_bytes)
                files = [sp, d]
            good, who = _gpg_verify(home, files)
            step(good, f"gpg --verify of the signer's {sig.kind} signature: {who}")
            signer = st.get("x-pit-signer", "")
            step(bool(signer) and signer in who.replace(" ", "") or _key_owns(home, signer, who),
                 f"the signature is by X-Pit-Signer {signer[:16]}...")
    if args.json:
        import json
        # the same fields whether or not a signed tree head covers the record yet
        out = {**dict.fromkeys(VERIFY_FIELDS), **(proof or {}), "record": seq,
               "record_hash": h, "checks": lines[2:], "verified": ok}
        print(json.dumps(out, sort_keys=True))
    elif args.proof:
        if proof is None:
            raise CliError(f"no signed tree head covers record {seq} (yet): nothing to prove "
                           "against", EXIT["failure"])
        print(_proof_text(pit, proof), end="")
    else:
        print("\n".join(lines))
        print("verified" if ok else "NOT verified")
    return 0 if ok else 1


def _tree_head(pit: Pit, seq: int, want: int | None):
    """``(seal seq, Seal, clearsigned text)`` of the signed tree head to
    prove record *seq* against: the seal record *want*, else the newest
    seal that carries a head covering *seq*; None when there is none."""
    from pit import signed
    arch = Archive(pit.root)
    if want is not None:
        found = list(arch.read(want, want))
        if not found or mbox.stamp(found[0][1]).get("x-pit-kind") != "seal":
            raise CliError(f"--head {want}: record {want} is not a seal", EXIT["usage"])
        seals = [found[0]]
    else:
        seals = list(arch.records_of_kind(seq + 1, ("seal",)))[-1:]
    for s, msg in seals:
        sg = signed.extract(mbox.split_stamp(msg)[1])
        seal = message.parse_seal(sg.text)
        if not seal.tree_size:
            if want is not None:
                raise CliError(f"--head {want}: seal {want} carries no tree head (it was made "
                               "before the log had them)", EXIT["usage"])
            return None
        if seal.tree_size < seq:
            raise CliError(f"--head {s}: its tree holds records 1-{seal.tree_size}, not "
                           f"{seq}", EXIT["usage"])
        return s, seal, sg.gpg_input.decode("utf-8")
    return None


def _inclusion(pit: Pit, seq: int, h: str, head) -> dict:
    """The inclusion proof of record *seq* (record hash *h*) in the tree
    of *head*, computed from the archive and checked.  O(tree size)."""
    from pit import merkle
    s, seal, text = head
    leaves = [merkle.leaf_hash(bytes.fromhex(record_hash(m)))
              for _, m in Archive(pit.root).read(1, seal.tree_size)]
    path = merkle.inclusion_proof(leaves, seq - 1, seal.tree_size)
    sides = merkle.inclusion_steps(seq - 1, seal.tree_size, path)
    leaf = merkle.leaf_hash(bytes.fromhex(h))
    good = merkle.verify_inclusion(seq - 1, seal.tree_size, leaf, path, bytes.fromhex(seal.root))
    return {"record": seq, "record_hash": h, "leaf_index": seq - 1, "leaf_hash": leaf.hex(),
            "tree_size": seal.tree_size, "root": seal.root, "head_seal": s,
            "head_time": seal.time, "path": [{"side": side, "hash": p.hex()}
                                             for side, p in zip(sides, path)],
            "head": text, "verified": good}


def _proof_text(pit: Pit, proof: dict) -> str:
    """The proof as a person reads and checks it (docs/verifying.md)."""
    out = [f"# inclusion proof (RFC 9162) of record {proof['record']} of pit {pit.name} "
           f"in the signed tree head of seal record {proof['head_seal']}",
           f"record: {proof['record']}",
           f"record-hash: {proof['record_hash']}   # sha256sum of the record",
           f"leaf-index: {proof['leaf_index']}",
           f"leaf-hash: {proof['leaf_hash']}   # SHA-256 of 00 and the record hash",
           f"tree-size: {proof['tree_size']}",
           f"path: {len(proof['path'])}   # from the leaf up: left H = SHA-256(01 H running), "
           f"right H = SHA-256(01 running H)"]
    out += [f"{p['side']} {p['hash']}" for p in proof["path"]]
    out += [f"root: {proof['root']}   # must be the Root: of the signed tree head below",
            f"head-seal: {proof['head_seal']}", "", proof["head"].rstrip("\n"), ""]
    return "\n".join(out)


class _public_home:
    """A GnuPG home holding the pit's public keys: the pit's own, or for a
    replica (which holds no keyring) one made from the keys its archive
    publishes (genesis and member records), removed afterwards."""

    def __init__(self, pit: Pit):
        self.pit, self.keys = pit, None

    def __enter__(self) -> Path:
        if self.pit.gnupg.is_dir():
            return self.pit.gnupg
        from pit import signed
        from pit.audit import _Keys
        self.keys = _Keys()
        for _, msg in Archive(self.pit.root).records_of_kind(1, ("genesis", "member")):
            try:
                self.keys.add(signed.extract(mbox.split_stamp(msg)[1]).text)
            except Exception:          # noqa: BLE001 - gpg --verify then names the key it lacks
                pass
        return Path(self.keys.dir)

    def __exit__(self, *exc) -> None:
        if self.keys is not None:
            self.keys.close()


def _key_owns(home: Path, primary: str, gpg_line: str) -> bool:
    """GOODSIG names the signing (sub)key id; accept it when it belongs to *primary*."""
    from pit.keyring import Keyring, KeyringError
    keyid = gpg_line.split(" ")[0].upper()
    try:
        k = Keyring(home).key(primary)           # one gpg listing, in the key's own home
    except KeyringError:
        return False
    return k.fingerprint.endswith(keyid) or any(s.fingerprint.endswith(keyid) for s in k.subkeys)
