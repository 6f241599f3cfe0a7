"""make bench-scale: members, records and tickers at scale, each figure beside its target.

    python -m bench.scale [--members 1000,10000,100000] [--records 100000,1000000]
                          [--tickers 1,100,10000] [--audit 100000,1000000] [--runs 3]

* members (bench.members): bulk add of N members made in process (each pit
  built once in the cache, ``members-N``, and reused); adding one more
  (running notary, and `pit member add`); notary start-up and peak memory;
  order throughput beside the smallest pit's.  Targets at 1,000,000
  members: one add <= 1 s, start-up <= 2 s, memory <= 1 GB, the bulk add
  finishes, order throughput unchanged.
* records: notary start-up and peak memory over archives of N order
  records (bench.replay's archive: synthetic order records after a real
  genesis, currency, instrument and transfers report).  Target: start-up
  <= 2 s and memory independent of the record count.
* tickers (bench.tickers): a one-ticker specialist's incremental run in
  pits of 1 / 100 / 10,000 instruments, under rules 1 and 2 (its
  checkpoint's size beside it; ``--ticker-members``: pits of that many
  members).  Target: within 2x at 10,000.
* audit (bench.incremental): ``pit audit`` of 10,000 new records on a copy
  whose auditor's state is kept at N records.  Target: <= 10 s at
  10,000,000, the same at every N.

Sizes are lists so that the curves show; the largest points (1,000,000
members, 10,000,000 records) take hours to build on a small machine: pass
them explicitly.  `uptime`'s load is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from bench import members, tickers
from bench.fixtures import OUT


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_records(sizes: list[int], runs: int, cache: Path) -> None:
    """Notary start-up over archives of N order records (bench.replay's,
    built once in *cache*).  The first start folds the whole archive into
    the notary's state (pit.notarystate), once: its time is printed apart;
    the timed starts open that state and fold nothing."""
    from bench.replay import build
    from pit.notarystate import STATE_NAME
    base = None
    for n in sizes:
        root = cache / f"replay-{n}"
        # (unsealed, as the caches of up to 10M records were built: the
        # start-up folds the records either way)
        pit = build(n, root, sealed=False)
        first = root / "bench-first-start"
        if not first.exists():
            s, rss = members._startup(pit.root)
            first.write_text(f"{s} {rss}\n")
        s0, rss0 = first.read_text().split()
        if not runs:
            print(f"  {n:>10,} records: built; first start {float(s0):.1f} s, "
                  f"{int(rss0) / 2**20:,.0f} MiB", flush=True)
            continue
        size = sum(p.stat().st_size for p in (root / "archives").glob(STATE_NAME + "*"))
        times, peaks = [], []
        for _ in range(runs):
            s, rss = members._startup(pit.root)
            times.append(s)
            peaks.append(rss)
        best, peak = min(times), max(peaks)
        base = base or (n, peak)
        print(f"  {n:>10,} records: notary start-up min {best:.2f} s, median "
              f"{statistics.median(times):.2f} s (target <= 2 s: {'ok' if best <= 2 else 'ABOVE target'}); "
              f"peak memory {peak / 2**20:,.0f} MiB ({peak / base[1]:.2f}x the "
              f"{base[0]:,}-record pit's; target: independent of the record count); "
              f"first start, the state folded from the whole archive once: {float(s0):.1f} s, "
              f"{int(rss0) / 2**20:,.0f} MiB; the state: {size / 2**20:,.0f} MiB on disk",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    ap.add_argument("--members", default="1000,10000")
    ap.add_argument("--records", default="100000")
    ap.add_argument("--tickers", default="1,100,10000")
    ap.add_argument("--ticker-members", default="1000,10000",
                    help="member counts of bench.tickers' one-ticker pits (checkpoint size)")
    ap.add_argument("--rules", default="1,2", help="bench.tickers' pits' rules")
    ap.add_argument("--audit", default="100000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build-only", action="store_true",
                    help="build the record archives and make the first start (which folds "
                         "each into the notary's state), time none of the starts")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("PIT_BENCH_CACHE", OUT)),
                    help="where the member pits and record archives are built once and kept "
                         "(default: $PIT_BENCH_CACHE, else bench/out)")
    args = ap.parse_args(argv)
    sizes = lambda text: [int(s.replace("_", "")) for s in text.split(",") if s]   # noqa: E731
    print(f"bench.scale {time.strftime('%Y-%m-%d %H:%M:%S')}, {_load()}, {os.cpu_count()} cores")
    if args.members:
        print("members:")
        members.main(["--sizes", args.members, "--runs", str(args.runs), "--audit-orders", "5000",
                      "--orders", "5000", "--cache", str(args.cache)])
    if args.records:
        print("records:")
        from pit.agents import stopped_after
        with stopped_after([args.cache]):           # the built pits' gpg-agents
            bench_records(sizes(args.records), 0 if args.build_only else args.runs, args.cache)
    if args.tickers:
        print("tickers:")
        tickers.main(["--tickers", args.tickers, "--runs", str(max(args.runs, 5)),
                      "--rules", args.rules, "--members", args.ticker_members])
    if args.audit:
        print("audit:")
        from bench import incremental
        incremental.main(["--sizes", args.audit, "--runs", str(args.runs)])
    print(f"({_load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
