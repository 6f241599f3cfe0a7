"""Tickers at scale: a one-ticker specialist in pits of 1 to 10,000 instruments.

    python -m bench.tickers [--tickers 1,100,10000] [--orders 2000] [--runs 5]

For each count T: a pit (cached under ``bench/out/``) whose registry holds T
instruments (ACME and T-1 others, each an operator record signed in process
and notarized in batches of 1,000), ``--orders`` ACME orders from the
seeded stream of ``bench.streams`` (the records ``bench.replay`` makes),
then the specialist's checkpoint posted and 20 more orders.  Timed, min and
median of ``--runs``: the incremental run ``pit replay specialist ACME |
pit-specialist ACME`` (two real processes, as bench.replay times it).
Target: at 10,000 tickers within 2x of the same run in a one-ticker pit.
Wall and CPU time (both processes) are shown: on a loaded machine a run of
~0.1 s is mostly waiting for a CPU.
Also printed: the size of the one-ticker specialist's checkpoint.

``--all``: the same run, the same 20 ACME orders, by one specialist serving
every ticker of the pit (``specialist A-Z``, pit.tickerset), in pits of its
own (``tickers-T-nN-all``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import time

from bench.fixtures import OUT
from bench.replay import append_orders, fund_owners, pipeline
from bench.streams import make_stream
from pit import mbox, ops, testkeys
from pit.pitdir import Pit
from pit.signer import Signer

TARGET = 2.0


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def build(tickers: int, orders: int, words: tuple[str, ...] = ("ACME",)) -> Pit:
    suffix = "" if words == ("ACME",) else "-all"
    root = OUT / f"tickers-{tickers}-n{orders}{suffix}"
    marker = root / "bench-marker"
    if marker.exists() and marker.read_text() == f"tickers {tickers} {orders} {' '.join(words)}\n":
        return Pit(root)
    shutil.rmtree(root, ignore_errors=True)
    t = time.perf_counter()
    pit = ops.init(root, "bench", max_message_size=str(1 << 30), rate_limit="0")
    ring, fpr = ops._operator(pit)
    signer = Signer.from_keyring(ring, fpr)
    notary = ops.notary(pit)
    values = [("Currency", "USD 0.01"), ("Instrument", "ACME USD tick 0.01 lot 1")]
    values += [("Instrument", f"T{i:05d} USD tick 0.01 lot 1") for i in range(1, tickers)]
    for start in range(0, len(values), 1000):
        raws = [ops.sign_request(pit, ops.request_text(pit, "operator", f"op-{start + j}", k, v),
                                 signer, fpr, f"{pit.name}-operator@{pit.domain}")
                for j, (k, v) in enumerate(values[start:start + 1000])]
        bad = [d.reason for d in notary.notarize(raws) if not d.accepted]
        if bad:
            raise RuntimeError(f"setting up {root}: {bad[0]}")
    fund_owners(pit)
    append_orders(pit, make_stream(orders, seed=7))
    # the specialist's checkpoint, then 20 orders after it
    _, out = pipeline(pit, words)
    ck = [m for m in mbox.iter_messages(out) if _subject(words) in m.split(b"\n\n", 1)[0]]
    ds = ops.post(pit, "specialist " + " ".join(words), ck)
    assert ds and ds[0].accepted, [d.reason for d in ds]
    append_orders(pit, make_stream(orders + 20, seed=7)[orders:])
    marker.write_text(f"tickers {tickers} {orders} {' '.join(words)}\n")
    print(f"  (built the {tickers:,}-ticker pit in {time.perf_counter() - t:.1f} s)")
    return pit


def _subject(words: tuple[str, ...]) -> bytes:
    return f"\nSubject: {' '.join(words)} checkpoint".encode()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tickers", description=__doc__.split("\n")[0])
    ap.add_argument("--tickers", default="1,100,10000")
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--all", action="store_true",
                    help="also time one specialist serving every ticker (specialist A-Z)")
    args = ap.parse_args(argv)
    counts = [int(s.replace("_", "")) for s in args.tickers.split(",") if s]
    print(f"bench.tickers: {', '.join(f'{c:,}' for c in counts)} tickers, {_load()}")
    try:
        _run(counts, args)
        if args.all:
            _run(counts, args, ("A-Z",))
    finally:
        for count in counts:                  # the pits' gpg-agents (key making, seals)
            testkeys.stop_agents(OUT / f"tickers-{count}-n{args.orders}")
            testkeys.stop_agents(OUT / f"tickers-{count}-n{args.orders}-all")
    print(f"  ({_load()})")
    return 0


def _run(counts: list[int], args, words: tuple[str, ...] = ("ACME",)) -> None:
    base = None
    if words != ("ACME",):
        print(f"  one specialist serving every ticker: specialist {' '.join(words)}")
    for count in counts:
        pit = build(count, args.orders, words)
        runs, cpus = [], []
        for _ in range(args.runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            dt, out = pipeline(pit, words)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            runs.append(dt)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        ck = [m for m in mbox.iter_messages(out) if _subject(words) in m.split(b"\n\n", 1)[0]]
        size = len(ck[-1]) if ck else 0
        best, cpu = min(runs), min(cpus)
        base = base if base is not None else (best, cpu)
        verdict = "ok" if best <= TARGET * base[0] else "ABOVE target"
        print(f"  {count:>6,} tickers: incremental run (checkpoint + 20 orders) wall min {best * 1000:.0f} ms, "
              f"median {statistics.median(runs) * 1000:.0f} ms = {best / base[0]:.2f}x the first pit's "
              f"(target <= {TARGET:.0f}x at 10,000: {verdict}); CPU min {cpu * 1000:.0f} ms, median "
              f"{statistics.median(cpus) * 1000:.0f} ms = {cpu / base[1]:.2f}x; "
              f"checkpoint {size / 1000:,.0f} kB", flush=True)


if __name__ == "__main__":
    sys.exit(main())
