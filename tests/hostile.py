"""Hostile input for the notary: generated and mutated mail, fed through the
real notary, with the properties every input must keep.

    python tests/hostile.py [--n 100000] [--seed 1] [--batch 250] [--dir DIR]

Inputs come from two sources, seeded and deterministic:

* **structure-aware generation**: header blocks (folding, encoded words,
  odd charsets, NULs, 8-bit bytes, very long lines, ``X-Pit-`` and approval
  headers, mbox ``From `` lines) over MIME trees (multipart/mixed,
  alternative, signed, related, message/rfc822; nesting from none to far
  beyond the notary's bound; base64, quoted-printable, 7bit, 8bit and
  bogus encodings; charsets real and not) whose leaves are request texts,
  armour (clearsigned blocks with real or broken signatures, lone
  signature blocks) and noise;
* **mutation of real signed messages**: orders signed by members (inline
  and PGP/MIME), by a stranger, by an expired and a revoked member key;
  then byte flips, inserted tokens, cut, repeated and swapped spans,
  truncation, CRLF, re-encoded bodies, tampered signed text, changed and
  folded headers, wrapping in multiparts, splicing two messages.

Properties, checked after every batch and at the end:

1. the notary returns (an exception is a *crash*; the input is saved);
2. every input ends in exactly one place, the archive or the reject
   record (by digest, counting repeats: none *lost*, none twice);
3. every refusal has a reason, and its notice goes to a member's address
   or nowhere (no backscatter);
4. nothing is archived that no member signed: what an accepted input's
   signature covers is exactly what a member key signed, and its record
   names that key, account and ref (*wrongly accepted* otherwise).

``run`` returns the counts (tried, accepted, refused by reason, wrongly
accepted, lost, crashed); tests/test_hostile.py runs a few hundred inputs
in ``make test``, ``make fuzz-notary`` a long run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import quopri
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from pit import mbox, ops, signed, testkeys  # noqa: E402
from pit.keyring import Keyring  # noqa: E402
from pit.pitdir import Pit  # noqa: E402
from pit.signer import Signer  # noqa: E402

MEMBERS = ("alice", "bob")
NOT_MEMBERS = ("mallory",)
DEAD = ("old", "gone")                   # expired and revoked member keys
KEY_SPECS = [("alice", "ed25519"), ("bob", "ed25519"), ("mallory", "ed25519"),
             ("old", "ed25519", "expired"), ("gone", "ed25519", "revoked")]

TOKENS = [b"\x00", b"\r", b"\n", b"\n\n", b"\r\n\r\n", b"\xff\xfe", b"\xc3\x28", b"=\n", b"=",
          b"-----BEGIN PGP SIGNED MESSAGE-----\n", b"-----BEGIN PGP SIGNATURE-----\n",
          b"-----END PGP SIGNATURE-----\n", b"Hash: SHA1\n", b"Hash: MD5\n", b"- ", b"-- \n",
          b"\nFrom alice Thu Jan  1 00:00:00 2026\n", b">From ", b"\nX-Pit-Seq: 1\n",
          b"\nApproved: secret\n", b"Content-Type: multipart/mixed; boundary=\"z\"\n\n--z\n",
          b"\n--z--\n", b"Content-Transfer-Encoding: base64\n", b"=?utf-8?b?w6k=?=",
          b"Pit: demo\n", b"Account: bob\n", b"Ref: 1\n", b"Order: buy 1 ACME at 1\n",
          b"A" * 1200, b"\t", b" \n", b"\n.\n", b"\x1b[31m"]
CHARSETS = ["utf-8", "us-ascii", "iso-8859-1", "utf-16", "x-unknown", "utf-7", "", "\"utf-8\"",
            "koi8-r", "windows-1252"]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "BASE64", ""]
SUBTYPES = ["mixed", "alternative", "signed", "related", "report", "encrypted"]


@dataclass
class World:
    """A pit and the keys that write to it."""
    root: Path
    keyhome: Path
    signers: dict = field(default_factory=dict)
    fprs: dict = field(default_factory=dict)
    signed: dict = field(default_factory=dict)   # signed bytes -> (member fpr, account, ref)
    originals: list = field(default_factory=list)     # real signed messages to mutate

    @property
    def pit(self) -> Pit:
        return Pit(self.root)


def make_world(base: Path) -> World:
    """Pit "demo" (USD, ACME) with members alice, bob, old (expired key) and
    gone (revoked key), made through pit.ops like any pit."""
    keyhome = base / "keys"
    testkeys.make_keys(keyhome, KEY_SPECS)
    pit = ops.init(base / "pit", "demo")
    for k, v in [("Currency", "USD 0.01"), ("Instrument", "ACME USD tick 0.01 lot 1")]:
        assert ops.operator_request(pit, k, v).accepted
    meta = testkeys._meta(keyhome)
    for who in MEMBERS + DEAD:
        d = ops.member_request(pit, meta[who]["fpr"], meta[who]["public"], [who])
        assert d.accepted, d.reason
        if "revocation" in meta[who]:
            Keyring(pit.gnupg).import_revocation(meta[who]["revocation"])
    for who in ("alice", "bob"):
        assert ops.operator_request(pit, "Deposit", f"1000000.00 USD to {who}").accepted
    for home in (pit.gnupg, pit.root / "operator.gnupg", keyhome):
        Keyring(home).stop_agent()
    return World(base / "pit", keyhome)


def prepare(world: World, rng: random.Random, originals: int = 60, tag: str = "h") -> None:
    """Sign the originals (in process): valid orders by members, inline and
    PGP/MIME, and orders by a stranger and by dead member keys."""
    meta = testkeys._meta(world.keyhome)
    if not world.signers:
        ring = Keyring(world.keyhome)
        for who in MEMBERS + NOT_MEMBERS + DEAD:
            world.fprs[who] = meta[who]["fpr"]
            world.signers[who] = Signer.from_keyring(ring, meta[who]["fpr"])
        ring.stop_agent()
    world.originals = []
    pit = world.pit
    for i in range(originals):
        who = rng.choice(MEMBERS * 4 + NOT_MEMBERS + DEAD)
        side = rng.choice(["buy", "sell"])
        text = ops.request_text(pit, who if who != "mallory" else "alice", f"{tag}{i}", "Order",
                                f"{side} {rng.randint(1, 50)} ACME at {rng.randint(900, 1100) / 100:.2f}")
        if rng.random() < 0.1:
            text += "# " + rng.choice(["merci, café", "ok", "\u00fcber"]) + "\n"
        at = testkeys.signing_time(world.keyhome, who)
        headers = [("From", f"{who}@{testkeys.DOMAIN}"), ("To", pit.address),
                   ("Subject", f"order {i}"), ("Message-ID", f"<{tag}{i}.{who}@{testkeys.DOMAIN}>")]
        compose = signed.compose_pgp_mime if rng.random() < 0.3 else signed.compose_clearsigned
        raw = compose(headers, text, world.signers[who], world.fprs[who], at=at)
        if who in MEMBERS:
            world.signed[signed.extract(raw).signed_bytes] = (world.fprs[who], who, f"{tag}{i}")
        world.originals.append(raw)


# -- generation ------------------------------------------------------------------------

def _noise(rng: random.Random, n: int) -> bytes:
    kind = rng.random()
    if kind < 0.3:
        return bytes(rng.getrandbits(8) for _ in range(n))
    if kind < 0.6:
        return "".join(rng.choice("abc xyz\u00e9\u4e2d\n\t:=-") for _ in range(n)).encode("utf-8")
    return b"".join(rng.choice(TOKENS) for _ in range(max(1, n // 16)))


def _header_block(rng: random.Random, world: World) -> bytes:
    who = rng.choice(["alice", "bob", "mallory", "victim", "postmaster", ""])
    addr = f"{who}@{rng.choice([testkeys.DOMAIN, 'elsewhere.example'])}" if who else "<>"
    lines = [f"From: {rng.choice(['', 'Someone ', '=?utf-8?q?Al=C3=AFce?= '])}<{addr}>".encode()]
    if rng.random() < 0.1:
        lines.insert(0, b"From " + addr.encode() + b" Thu Jan  1 00:00:00 2026")
    lines.append(b"To: " + world.pit.address.encode())
    subject = rng.choice([b"order", b"=?utf-8?b?" + base64.b64encode("ordre \u00e9".encode()) + b"?=",
                          b"x" * rng.choice([10, 900, 5000]), b"a\n b\n\tc", b"\x00\xff"])
    lines.append(b"Subject: " + subject)
    for _ in range(rng.choice([0, 0, 1, 3, 20, 1500 if rng.random() < 0.05 else 2])):
        name = rng.choice([b"X-Junk", b"Received", b"Reply-To", b"Comments", b"X-Pit-Seq",
                           b"Approved", b"Content-Type", b"MIME-Version"])
        lines.append(name + b": " + _noise(rng, rng.choice([4, 40, 300])).replace(b"\n", b"\n "))
    return b"\n".join(lines) + b"\n"


def _leaf(rng: random.Random, world: World) -> tuple[bytes, bytes]:
    """(part headers, part body) of a leaf."""
    r = rng.random()
    if r < 0.25 and world.originals:
        body = rng.choice(world.originals).partition(b"\n\n")[2]        # a real signed body
    elif r < 0.45:
        body = ops.request_text(world.pit, rng.choice(MEMBERS), f"g{rng.randint(0, 9999)}",
                                "Order", "buy 1 ACME at 10.00").encode()
    elif r < 0.6:
        text = ops.request_text("demo", "alice", "x", "Order", "buy 1 ACME at 1").encode()
        body = (b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: " + rng.choice([b"SHA256", b"SHA1", b"X"])
                + b"\n\n" + text + b"-----BEGIN PGP SIGNATURE-----\n\n"
                + base64.encodebytes(_noise(rng, rng.choice([10, 100, 300])))
                + rng.choice([b"=abcd\n", b""]) + b"-----END PGP SIGNATURE-----\n")
    else:
        body = _noise(rng, rng.choice([0, 10, 200, 3000]))
    ctype = rng.choice([b"text/plain", b"text/html", b"application/pgp-signature",
                        b"application/octet-stream", b"text/plain", b"message/rfc822", b""])
    charset = rng.choice(CHARSETS).encode()
    cte = rng.choice(ENCODINGS).encode()
    if cte.lower() == b"base64" and rng.random() < 0.8:
        body = base64.encodebytes(body)
    elif cte == b"quoted-printable" and rng.random() < 0.8:
        body = quopri.encodestring(body)
    head = b""
    if ctype:
        head += b"Content-Type: " + ctype + (b"; charset=" + charset if charset else b"") + b"\n"
    if cte:
        head += b"Content-Transfer-Encoding: " + cte + b"\n"
    return head, body


def _tree(rng: random.Random, world: World, depth: int) -> tuple[bytes, bytes]:
    if depth <= 0 or rng.random() < 0.3:
        return _leaf(rng, world)
    boundary = rng.choice([b"b%d" % depth, b"=_%d" % rng.getrandbits(20), b"x", b"\"q%d\"" % depth])
    bare = boundary.strip(b"\"")
    sub = rng.choice(SUBTYPES).encode()
    head = b"Content-Type: multipart/" + sub + b"; boundary=" + boundary
    if sub == b"signed":
        head += b"; protocol=\"application/pgp-signature\"; micalg=pgp-sha256"
    head += b"\n"
    parts = []
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        h, b = _tree(rng, world, depth - 1)
        parts.append(b"--" + bare + b"\n" + h + b"\n" + b)
    body = b"\n".join(parts) + (b"\n--" + bare + b"--\n" if rng.random() < 0.9 else b"")
    return head, body


def _nested(depth: int) -> tuple[bytes, bytes]:
    head = b'Content-Type: multipart/mixed; boundary="n0"\n'
    body = b"".join(b'--n%d\nContent-Type: multipart/mixed; boundary="n%d"\n\n' % (i, i + 1)
                    for i in range(depth))
    body += b"--n%d\nContent-Type: text/plain\n\nhi\n" % depth
    body += b"".join(b"--n%d--\n" % i for i in reversed(range(depth + 1)))
    return head, body


def generated(rng: random.Random, world: World) -> bytes:
    head = _header_block(rng, world)
    if rng.random() < 0.05:
        h, b = _nested(rng.choice([20, 200, 1500]))
    else:
        h, b = _tree(rng, world, rng.choice([0, 1, 2, 3, 5]))
    mime = b"MIME-Version: 1.0\n" if rng.random() < 0.8 else b""
    return head + mime + h + b"\n" + b


def _span(rng: random.Random, raw: bytes) -> tuple[int, int]:
    i = rng.randrange(len(raw) + 1)
    return i, min(len(raw), i + rng.choice([1, 2, 8, 64, 512]))


def mutate(rng: random.Random, world: World, raw: bytes) -> bytes:
    """One mutation of *raw*."""
    op = rng.randrange(15)
    if not raw:
        return rng.choice(TOKENS)
    if op == 0:                                            # flip bytes
        b = bytearray(raw)
        for _ in range(rng.choice([1, 1, 3])):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if op == 1:                                            # insert a token
        i = rng.randrange(len(raw) + 1)
        return raw[:i] + rng.choice(TOKENS) + raw[i:]
    if op == 2:                                            # cut a span
        i, j = _span(rng, raw)
        return raw[:i] + raw[j:]
    if op == 3:                                            # repeat a span
        i, j = _span(rng, raw)
        return raw[:j] + raw[i:j] + raw[j:]
    if op == 4:                                            # truncate
        return raw[:rng.randrange(len(raw))]
    if op == 5:                                            # CRLF, or CR only
        return raw.replace(b"\n", rng.choice([b"\r\n", b"\r", b"\n\r"]))
    if op == 6:                                            # tamper with the signed order
        for a, b in [(b"buy", b"sell"), (b"ACME", b"ACMF"), (b"Account: ", b"Account: x"),
                     (b"Ref: h", b"Ref: H"), (b"at ", b"at 1")]:
            if a in raw:
                return raw.replace(a, b, 1)
        return raw + b"\n"
    head, _, body = raw.partition(b"\n\n")
    if op == 7:                                            # another From
        who = rng.choice(["alice", "bob", "mallory", "victim"])
        lines = [ln for ln in head.split(b"\n") if not ln.lower().startswith(b"from:")]
        return b"\n".join(lines + [f"From: {who}@{testkeys.DOMAIN}".encode()]) + b"\n\n" + body
    if op == 8:                                            # fold or lengthen a header
        lines = head.split(b"\n")
        k = rng.randrange(len(lines))
        lines[k] = lines[k].replace(b" ", b"\n\t", 1) + rng.choice([b"", b" " + b"y" * 2000])
        return b"\n".join(lines) + b"\n\n" + body
    if op == 9:                                            # re-encode the body
        lines = [ln for ln in head.split(b"\n")
                 if not ln.lower().startswith(b"content-transfer-encoding")]
        cte = rng.choice([b"base64", b"quoted-printable"])
        enc = base64.encodebytes(body) if cte == b"base64" else quopri.encodestring(body)
        return b"\n".join(lines + [b"Content-Transfer-Encoding: " + cte]) + b"\n\n" + enc
    if op == 10:                                           # wrap in multipart(s)
        for _ in range(rng.choice([1, 2, 4, 30])):
            raw = (b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"w\"\n\n--w\n"
                   + raw + b"\n--w--\n")
        return head.split(b"\n")[0] + b"\n" + raw
    if op == 11 and world.originals:                       # splice two messages
        other = rng.choice(world.originals)
        ohead, _, obody = other.partition(b"\n\n")
        return (head + b"\n\n" + obody) if rng.random() < 0.5 else (ohead + b"\n\n" + body)
    if op == 12 and world.originals:                       # a second signed block
        return raw + b"\n" + rng.choice(world.originals).partition(b"\n\n")[2]
    if op == 13:                                           # a leading mbox From line
        return b"From alice@pit.test Thu Jan  1 00:00:00 2026\n" + raw
    return raw.replace(b"charset=utf-8", b"charset=" + rng.choice(CHARSETS).encode(), 1)


def inputs(rng: random.Random, world: World, n: int):
    for _ in range(n):
        r = rng.random()
        if r < 0.5 and world.originals:
            raw = rng.choice(world.originals)
            for _ in range(rng.choice([0, 1, 1, 2, 3])):
                raw = mutate(rng, world, raw)
        else:
            raw = generated(rng, world)
            if rng.random() < 0.3:
                raw = mutate(rng, world, raw)
        yield raw


# -- the properties ------------------------------------------------------------------------

@dataclass
class Counts:
    tried: int = 0
    accepted: int = 0
    refused: Counter = field(default_factory=Counter)
    wrongly_accepted: int = 0
    lost: int = 0
    twice: int = 0
    crashed: int = 0
    backscatter: int = 0
    failures: list = field(default_factory=list)

    def line(self) -> str:
        return (f"tried {self.tried}, accepted {self.accepted}, refused with a reason "
                f"{sum(self.refused.values())}, wrongly accepted {self.wrongly_accepted}, "
                f"lost {self.lost}, stored twice {self.twice}, crashed {self.crashed}, "
                f"backscatter {self.backscatter}")

    def ok(self) -> bool:
        return not (self.wrongly_accepted or self.lost or self.twice or self.crashed
                    or self.backscatter
                    or self.refused.get("(no reason)", 0))


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


def _category(reason: str) -> str:
    if not reason:
        return "(no reason)"
    return re.sub(r"[0-9]+", "N", reason.split(":")[0][:48])


def run(world: World, n: int, seed: int = 1, batch: int = 250, maildir_every: int = 4,
        save: Path | None = None, progress=None) -> Counts:
    """Feed *n* hostile inputs through the pit's real notary; returns the counts."""
    from moderator.notary import Notary
    from pit.archive import Archive
    rng = random.Random(seed)
    prepare(world, rng, tag=f"s{seed}-")
    counts = Counts()
    expected: Counter = Counter()
    addresses = {f"{w}@{testkeys.DOMAIN}" for w in MEMBERS + DEAD}
    pit = world.pit
    notary = Notary(pit)
    notices_path = pit.outbox / "notices.mbox"
    gen = inputs(rng, world, n)
    k = 0
    while counts.tried < n:
        raws = [raw for _, raw in zip(range(min(batch, n - counts.tried)), gen)]
        counts.tried += len(raws)
        k += 1
        notices_before = notices_path.stat().st_size if notices_path.exists() else 0
        try:
            if maildir_every and k % maildir_every == 0:
                for raw in raws:
                    ops.send_local(pit, raw)
                decisions = notary.run_maildir()
            else:
                decisions = notary.notarize(raws)
        except Exception as e:                              # property 1
            counts.crashed += len(raws)
            counts.failures.append(f"crash: {type(e).__name__}: {e}")
            if save:
                save.mkdir(parents=True, exist_ok=True)
                for i, raw in enumerate(raws):
                    (save / f"crash-{k}-{i}.eml").write_bytes(raw)
            notary = Notary(pit)
            continue
        for raw in raws:
            expected[_digest(raw)] += 1
        if len(decisions) != len(raws):
            counts.lost += len(raws) - len(decisions)
        by_digest = {}
        for raw in raws:
            by_digest.setdefault(_digest(raw), raw)
        seqs = [d.seq for d in decisions if d.accepted]
        records = dict(notary.archive.read(min(seqs), max(seqs))) if seqs else {}
        for d in decisions:
            if d.accepted:
                counts.accepted += 1
                if not _signed_by_member(world, by_digest.get(d.digest), records.get(d.seq)):
                    counts.wrongly_accepted += 1
                    counts.failures.append(f"wrongly accepted: record {d.seq}")
                    if save:
                        save.mkdir(parents=True, exist_ok=True)
                        (save / f"accepted-{d.seq}.eml").write_bytes(by_digest.get(d.digest, b""))
            else:
                counts.refused[_category(d.reason)] += 1
                if d.sender and d.sender not in addresses:
                    counts.backscatter += 1
                    counts.failures.append(f"notice to {d.sender}: {d.reason}")
        if notices_path.exists():
            with open(notices_path, "rb") as f:
                f.seek(notices_before)
                for notice in mbox.iter_messages(f.read()):
                    to = mbox.headers(notice, ["to"]).get("to", "")
                    if to not in addresses:
                        counts.backscatter += 1
                        counts.failures.append(f"notice mailed to {to}")
        if progress:
            progress(counts)
    # property 2: every input in exactly one place, by digest with repeats
    found: Counter = Counter()
    for _, msg in Archive(pit.root).read():
        st = mbox.stamp(msg)
        if st.get("x-pit-kind") not in ("seal", "genesis"):
            found[st.get("x-pit-digest", "")] += 1
    rejects = pit.rejects / "rejects.mbox"
    if rejects.exists():
        for entry in mbox.iter_file(rejects):
            block, _ = mbox.split_stamp(entry)
            for line in block.split(b"\n"):
                if line.startswith(b"X-Pit-Digest: "):
                    found[line[14:].decode()] += 1
                    break
    for d, want in expected.items():
        got = found.get(d, 0)
        if got < want:
            counts.lost += want - got
            counts.failures.append(f"lost: {d}")
        elif got > want:
            counts.twice += got - want
            counts.failures.append(f"stored twice: {d}")
    leftover = [p for sub in ("new", "cur") for p in (pit.incoming / sub).iterdir()]
    if leftover:
        counts.lost += len(leftover)
        counts.failures.append(f"left in incoming/: {len(leftover)}")
    return counts


def _signed_by_member(world: World, raw: bytes | None, record: bytes | None) -> bool:
    """Property 4: what the accepted input's signature covers is exactly
    what a member key signed, and the record names that key, account and
    ref."""
    if raw is None or record is None:
        return False
    try:
        data = signed.extract(raw.replace(b"\r\n", b"\n")).signed_bytes
    except Exception:
        return False
    if data not in world.signed:
        return False
    st = mbox.stamp(record)
    return (st.get("x-pit-signer"), st.get("x-pit-account"), st.get("x-pit-ref")) == world.signed[data]


def main(argv=None) -> int:
    import tempfile
    p = argparse.ArgumentParser(prog="tests/hostile.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--dir", help="work here (kept) instead of a temporary directory")
    args = p.parse_args(argv)
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="pit-hostile-"))
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    world = make_world(base)
    last = [0.0]

    def progress(c: Counts) -> None:
        if time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            print(f"  {c.line()}  ({c.tried / (time.monotonic() - t0):,.0f}/s)", flush=True)
    try:
        counts = run(world, args.n, args.seed, args.batch, save=base / "failures",
                     progress=progress)
    finally:
        testkeys.stop_agents(base)
    print(counts.line())
    print("refusals by reason: " + ", ".join(f"{k} {v}" for k, v in counts.refused.most_common()))
    for f in counts.failures[:20]:
        print("  " + f)
    print(f"{time.monotonic() - t0:.0f} s; work in {base}")
    return 0 if counts.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
