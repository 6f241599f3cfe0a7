"""The LMTP server's committer thread alone (docs/pit-book.md, "Throughput
over LMTP": the committer): ``NotaryService.group`` over signed orders in
groups of G, as the committer takes them, without the server around it.

    python -m bench.ab.committer [--n 3000] [--group 13] [--runs 3] [--profile FILE]

On a fresh bench pit (ed25519 traders, signed in process, new orders only,
as bench.lmtp sends): CPU (``time.process_time``: this process has no
other busy thread) an order of each run, min and median, and the load.
Each run starts on a fresh pit.  ``--profile FILE``: one more run under
cProfile, its stats written to FILE (``python -m pstats FILE``).

For instruction counts that do not swing with the machine's load
(bench/ab/committer_callgrind.sh): ``--prepare DIR`` makes the pit and
its orders once (DIR/pit, DIR/orders.mbox); ``--from DIR --copy TMP
--mode build|run`` runs one group pass on a copy of that pit (build:
open and warm only), so callgrind's two runs differ by the groups alone;
a run prints its CPU an order (A/B of two trees on the same orders).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.fixtures import fresh_pit, signed_orders
from bench.lmtp import _load, _new_orders_only
from pit import testkeys


def timed_groups(service, raws: list[bytes], group: int) -> None:
    """The committer's work: one ``group`` call a G deliveries."""
    for i in range(0, len(raws), group):
        service.group([(raw, "trader@traders.example") for raw in raws[i:i + group]])


def one_run(root: Path, n: int, group: int, profile: str | None = None) -> float:
    """CPU an order (ms) of the groups on a fresh pit at *root*."""
    from pit.daemon import NotaryService
    pit = fresh_pit(root)
    try:
        raws = _new_orders_only(signed_orders(pit, n, "ed25519"))
        service = NotaryService(pit, smtp=None, seal_seconds=1.0)
        service.notary.seal_signer()                 # read the key before timing
        timed_groups(service, raws[:2 * group], group)     # warm
        raws = raws[2 * group:]
        if profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
            timed_groups(service, raws, group)
            prof.disable()
            prof.dump_stats(profile)
            return 0.0
        start = time.process_time()
        timed_groups(service, raws, group)
        return (time.process_time() - start) / len(raws) * 1000
    finally:
        testkeys.stop_agents(pit.root)


def prepare(root: Path, n: int) -> None:
    """A bench pit at root/pit with its signed new orders in root/orders.mbox."""
    from pit import mbox
    pit = fresh_pit(root / "pit")
    try:
        raws = _new_orders_only(signed_orders(pit, n, "ed25519"))
        with open(root / "orders.mbox", "wb") as f:
            for raw in raws:
                mbox.write_message(f, raw, "trader@traders.example", 0)
    finally:
        testkeys.stop_agents(pit.root)


def from_prepared(root: Path, copy: Path, group: int, run: bool) -> None:
    """One pass of the groups on a copy of a prepared pit (*run* false:
    open and warm only)."""
    import shutil
    from pit import mbox
    from pit.daemon import NotaryService
    from pit.pitdir import Pit
    shutil.copytree(root / "pit", copy, symlinks=True, ignore=shutil.ignore_patterns("S.gpg-agent*"))
    pit = Pit(copy)
    try:
        raws = list(mbox.iter_file(root / "orders.mbox"))
        service = NotaryService(pit, smtp=None, seal_seconds=1.0)
        service.notary.seal_signer()
        timed_groups(service, raws[:2 * group], group)
        if run:
            raws = raws[2 * group:]
            import resource
            before = resource.getrusage(resource.RUSAGE_THREAD)
            start = time.process_time()
            timed_groups(service, raws, group)
            cpu = (time.process_time() - start) / len(raws) * 1000
            after = resource.getrusage(resource.RUSAGE_THREAD)
            user, sys_ = ((getattr(after, f) - getattr(before, f)) / len(raws) * 1000
                          for f in ("ru_utime", "ru_stime"))
            print(f"{cpu:.4f} ms an order (this thread: user {user:.4f}, sys {sys_:.4f}), "
                  f"{len(raws)} orders in groups of {group}; {_load()}")
    finally:
        testkeys.stop_agents(pit.root)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab.committer",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--group", type=int, default=13)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--prepare", default=None)
    parser.add_argument("--from", dest="prepared", default=None)
    parser.add_argument("--copy", default=None)
    parser.add_argument("--mode", choices=("build", "run"), default="run")
    args = parser.parse_args(argv)
    if args.prepare:
        prepare(Path(args.prepare), args.n)
        return 0
    if args.prepared:
        from_prepared(Path(args.prepared), Path(args.copy), args.group, args.mode == "run")
        return 0
    with tempfile.TemporaryDirectory(prefix=f"ab-committer-{os.getpid()}-") as tmp:
        if args.profile:
            one_run(Path(tmp) / "pit", args.n, args.group, args.profile)
            print(f"profile written to {args.profile}")
            return 0
        cpu = []
        for _ in range(args.runs):
            cpu.append(one_run(Path(tmp) / "pit", args.n, args.group))
            print(f"  run: {cpu[-1]:.3f} ms an order (groups of {args.group}), {_load()}",
                  flush=True)
        print(f"committer CPU an order, groups of {args.group}: min {min(cpu):.3f}, "
              f"median {statistics.median(cpu):.3f} ms; {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
