"""Archive throughput: ``python -m bench.archive [--messages N] [--dir DIR]``.

Builds an archive of N (default 200,000) notarized messages of about 1 KB by
appending batches of 1,000 (one lock, fsync of volume, index and directory
per batch), then reads it back three ways: split only, split + full stamp
(``mbox.stamp``), and ``Archive.read`` (split + seq check) + ``stamp``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from pit import archive, mbox

BODY = (b"From: alice@example.org\nTo: demo@pit.example\nSubject: order\n\n"
        b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nPit: demo\nAccount: alice\n"
        b"Ref: %d\nOrder: buy 100 ACME at 12.50\n-----BEGIN PGP SIGNATURE-----\n\n"
        + b"iHUEARYKAB0WIQTa9b1Zs0Rh0ZxJ3nq7o2Yq4c1qgUCZ1xXdgAKCRC7o2Yq4c1q\n" * 7
        + b"=Ab12\n-----END PGP SIGNATURE-----\n")


def notarized(seq: int, prev: str) -> bytes:
    body = BODY % seq
    return (f"X-Pit-Seq: {seq}\nX-Pit-Time: 2026-11-22T00:52:38.123456Z\nX-Pit-Prev: {prev}\n"
            f"X-Pit-Digest: {hashlib.sha256(body).hexdigest()}\n"
            f"X-Pit-Signer: 6F1C2A9B0D3E4F5A6B7C8D9E0F1A2B3C4D5E6F70\nX-Pit-Kind: order\n"
            f"X-Pit-Account: alice\nX-Pit-Ref: {seq}\nX-Pit-Ticker: ACME\n"
            f"X-Pit-Request: buy 100 ACME limit 12.50\n").encode() + body


class Timer:
    """Wall time and this process's CPU time: on a shared, loaded machine the
    CPU figure is the one that says what the code costs."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rate(self, n: int) -> str:
        return f"{n / self.wall:,.0f} messages/s wall, {n / self.cpu:,.0f} per CPU second"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.archive")
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--dir", help="where to build the archive (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="pit-bench-"))
    try:
        arch = archive.Archive(root)
        seq, prev, appending = 0, archive.ZERO_HASH, 0.0
        while seq < args.messages:
            batch = []
            for _ in range(min(args.batch, args.messages - seq)):
                seq += 1
                msg = notarized(seq, prev)
                prev = archive.record_hash(msg)
                batch.append((msg, "notary@demo", "2026-11-22T00:52:38.123456Z"))
            t = time.perf_counter()
            arch.append(batch)
            appending += time.perf_counter() - t
        vols = arch.volumes()
        size = sum(v.bytes for v in vols)
        print(f"archive: {seq} messages, {len(vols)} volumes, {size / seq:.0f} bytes/message")
        print(f"append (batches of {args.batch}, fsync'd): {seq / appending:,.0f} messages/s")

        datas = [(root / "archives" / v.name).read_bytes() for v in vols]
        with Timer() as t:
            n = sum(1 for d in datas for _ in mbox.iter_messages(d))
        print(f"split only (in memory): {t.rate(n)}")
        with Timer() as t:
            for d in datas:
                for m in mbox.iter_messages(d):
                    mbox.stamp(m)
        print(f"split + stamp (in memory): {t.rate(n)}")
        with Timer() as t:
            for _, m in arch.read():
                mbox.stamp(m)
        print(f"Archive.read + stamp (from files): {t.rate(n)}")
        with Timer() as t:
            last = list(arch.read(seq - 10))
        print(f"seek to seq {seq - 10} via index: {t.wall * 1000:.1f} ms for {len(last)} "
              f"records (reads the last volume only)")
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
