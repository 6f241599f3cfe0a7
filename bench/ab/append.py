"""The archive's append alone: CPU and wall a group of 1 or 13 records, on a
fresh small archive and on a copy of a many-volume one (only the index and
the last volume are copied; the other volumes are sparse files of their
sizes: an append reads nothing of them).

    python -m bench.ab.append [--big /work/bench-cache/startup/replay-10000000]
        [--groups 300] [--runs 5] [--profile]
"""

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pit import archive
from pit.archive import Archive

BODY = b"From: alice@example.org\nSubject: order\n\nbuy 10 X:T at 101\n" + b"x" * 600 + b"\n"


def record(seq: int, prev: str) -> bytes:
    return (f"X-Pit-Seq: {seq}\nX-Pit-Time: 2026-11-22T00:52:38Z\nX-Pit-Prev: {prev}\n"
            ).encode() + BODY


def sparse_copy(src: Path, dst: Path) -> None:
    """dst/archives: src's index and last volume; the others sparse."""
    a_src, a_dst = src / "archives", dst / "archives"
    a_dst.mkdir(parents=True)
    shutil.copyfile(a_src / "index", a_dst / "index")
    vols = Archive(src).volumes()
    for v in vols[:-1]:
        with open(a_dst / v.name, "wb") as f:
            f.truncate(v.bytes)
    shutil.copyfile(a_src / vols[-1].name, a_dst / vols[-1].name)


def run(pit: Path, groups: int, size: int) -> tuple[float, float]:
    """User CPU and wall seconds an append of *size* records, over *groups*
    appends (user CPU: what holds the interpreter lock; the fsyncs' kernel
    time does not)."""
    arch = Archive(pit)
    seq, prev = arch.last_seq(), arch.last_hash()
    batches = []
    for _ in range(groups):
        batch = []
        for _ in range(size):
            seq += 1
            m = record(seq, prev)
            batch.append((m, "notary", "2026-11-22T00:52:38Z"))
            prev = archive.record_hash(m)
        batches.append(batch)
    c0, w0 = os.times().user, time.perf_counter()
    for batch in batches:
        arch.append(batch)
    return ((os.times().user - c0) / groups, (time.perf_counter() - w0) / groups)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--big", default="/work/bench-cache/startup/replay-10000000")
    p.add_argument("--groups", type=int, default=300)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--plain", action="store_true",
                   help="archive.KEEP_KNOWN off: every append reads and checks it all again")
    args = p.parse_args(argv)
    if args.plain:
        archive.KEEP_KNOWN = False
    base = Path(tempfile.mkdtemp(prefix=f"append-ab-{os.getpid()}-"))
    try:
        small = base / "small"
        Archive(small).append([(record(1, archive.ZERO_HASH), "notary", "2026-11-22T00:52:38Z")])
        big = base / "big"
        sparse_copy(Path(args.big), big)
        nvol = len(Archive(big).volumes())
        print(f"{archive.__file__} KEEP_KNOWN={getattr(archive, 'KEEP_KNOWN', '-')}; "
              f"load {os.getloadavg()[0]:.1f}; {args.groups} appends a run, {args.runs} runs; "
              f"big: {nvol} volumes (copy of {args.big})")
        for name, pit in (("small", small), ("big", big)):
            for size in (1, 13):
                if args.profile:
                    prof = cProfile.Profile()
                    prof.enable()
                    run(pit, args.groups, size)
                    prof.disable()
                    print(f"--- {name}, groups of {size}")
                    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(14)
                    continue
                res = [run(pit, args.groups, size) for _ in range(args.runs)]
                if size == 1:
                    arch = Archive(pit)
                    t = []
                    for _ in range(args.runs):
                        c0 = time.process_time()
                        for _ in range(args.groups):
                            arch.last_seq()
                        t.append((time.process_time() - c0) / args.groups * 1e6)
                    t.sort()
                    print(f"{name:5s} last_seq(): CPU us/call min {t[0]:.0f} median "
                          f"{statistics.median(t):.0f}")
                cpu = sorted(r[0] * 1e3 for r in res)
                wall = sorted(r[1] * 1e3 for r in res)
                print(f"{name:5s} group {size:2d}: user CPU ms/append min {cpu[0]:.3f} median "
                      f"{statistics.median(cpu):.3f}; wall min {wall[0]:.2f} median "
                      f"{statistics.median(wall):.2f}")
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
