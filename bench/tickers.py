"""Tickers at scale: a one-ticker specialist in pits of 1 to 10,000 instruments.

    python -m bench.tickers [--tickers 1,100,10000] [--orders 2000] [--runs 5]
                            [--rules 1,2] [--all] [--members 1000,10000]

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

``--rules``: the pits' rules (pit.kinds.rules, ``pit init --rules``),
each a pit of its own: under rules 2 (the default; pits ``...-r2``) a
specialist's checkpoint holds its own instruments only; under rules 1
every instrument and member of the pit.

``--members``: the one-ticker pit with that many members (certificates made
in process, made members by the real notary in bulk) besides the bench's
order owners, under each of ``--rules``: the checkpoint's size and the same
incremental run.
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


def _root(tickers: int, orders: int, words: tuple[str, ...], rules: int, members: int = 0):
    suffix = ("" if words == ("ACME",) else "-all") + (f"-m{members}" if members else "")
    return OUT / f"tickers-{tickers}-n{orders}{suffix}{'-r2' if rules == 2 else ''}"


def build(tickers: int, orders: int, words: tuple[str, ...] = ("ACME",), rules: int = 2,
          members: int = 0) -> Pit:
    root = _root(tickers, orders, words, rules, members)
    marker = root / "bench-marker"
    what = f"tickers {tickers} {orders} {' '.join(words)}"
    what += (f" rules {rules}" if rules != 1 else "") + (f" members {members}" if members else "")
    if marker.exists() and marker.read_text() == what + "\n":
        return Pit(root)
    shutil.rmtree(root, ignore_errors=True)
    t = time.perf_counter()
    pit = ops.init(root, "bench", max_message_size=str(1 << 30), rate_limit="0", rules=rules)
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
    if members:
        certs = ((testkeys.certificate(f"member{i}")[0], [f"member{i}"]) for i in range(members))
        bad = [d.reason for _, d in ops.add_members(pit, certs) if not d.accepted]
        if bad:
            raise RuntimeError(f"setting up {root}: {bad[0]}")
    fund_owners(pit)
    append_orders(pit, make_stream(orders, seed=7))
    # the specialist's checkpoint, then 20 orders after it
    _, out = pipeline(pit, words)
    # its report, then its checkpoint (the notary takes a checkpoint that closes a report)
    new = [m for m in mbox.iter_messages(out) if not mbox.stamp(m)]
    ds = ops.post(pit, "specialist " + " ".join(words), new)
    assert ds and all(d.accepted for d in ds), [d.reason for d in ds]
    append_orders(pit, make_stream(orders + 20, seed=7)[orders:])
    marker.write_text(what + "\n")
    print(f"  (built {root.name} in {time.perf_counter() - t:.1f} s)")
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
    ap.add_argument("--rules", default="2", help="the pits' rules: 1, 2 or 1,2")
    ap.add_argument("--members", default="",
                    help="member counts of one-ticker pits, e.g. 1000,10000 (rules 1 and 2)")
    ap.add_argument("--build-only", action="store_true",
                    help="build the pits (outside the bench lock), time nothing")
    args = ap.parse_args(argv)
    counts = [int(s.replace("_", "")) for s in args.tickers.split(",") if s]
    rules = [int(r) for r in args.rules.split(",") if r]
    members = [int(s.replace("_", "")) for s in args.members.split(",") if s]
    print(f"bench.tickers: {', '.join(f'{c:,}' for c in counts)} tickers, rules "
          f"{', '.join(map(str, rules))}, {_load()}")
    try:
        for r in rules:
            _run(counts, args, rules=r)
            if args.all:
                _run(counts, args, ("A-Z",), rules=r)
        for r in rules if members else ():
            _run([1], args, rules=r, members=members)
    finally:                                  # the pits' gpg-agents (key making, seals)
        for root in OUT.glob("tickers-*"):
            testkeys.stop_agents(root)
    print(f"  ({_load()})")
    return 0


def _run(counts: list[int], args, words: tuple[str, ...] = ("ACME",), rules: int = 2,
         members: list[int] = ()) -> None:
    base = None
    if words != ("ACME",):
        print(f"  one specialist serving every ticker: specialist {' '.join(words)}, rules {rules}")
    else:
        print(f"  rules {rules}:")
    for count, m in [(c, 0) for c in counts] if not members else [(1, m) for m in members]:
        pit = build(count, args.orders, words, rules, m)
        if args.build_only:
            continue
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
        base = base if base is not None else (best, cpu, size)
        if words == ("ACME",) and not m:
            verdict = "ok" if best <= TARGET * base[0] else "ABOVE target"
            target = f"(target <= {TARGET:.0f}x at 10,000 tickers: {verdict})"
        else:                     # no target: its own 10,000 books, or the members' lines
            target = "(no target)"
        what = f"{count:>6,} tickers" if not m else f"{m:>7,} members"
        print(f"  {what}: incremental run (checkpoint + 20 orders) wall min {best * 1000:.0f} ms, "
              f"median {statistics.median(runs) * 1000:.0f} ms = {best / base[0]:.2f}x the first pit's "
              f"{target}; CPU min {cpu * 1000:.0f} ms, median "
              f"{statistics.median(cpus) * 1000:.0f} ms = {cpu / base[1]:.2f}x; "
              f"checkpoint {size / 1000:,.1f} kB = {size / base[2]:.2f}x", flush=True)


if __name__ == "__main__":
    sys.exit(main())
