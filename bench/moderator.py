"""Notary throughput: a burst of signed orders, verified and notarized.

    python -m bench.moderator [--n 10000] [--batch 1000] [--algo ed25519 rsa3072]

For each member key kind, a fresh pit (no rate limit, default message size
limit) gets *n* signed orders from ``bench.fixtures`` (made and cached once,
signed in process), and the notary takes them in batches of ``--batch``:
``Notary.notarize`` verifies each signature in process, checks the request,
stamps, chains, seals each batch (one gpg clearsign) and appends with fsync.
The rate is over the whole burst (sustained), with the slowest batch beside
it.  A second fresh pit takes the same burst through the incoming maildir
(``Notary.run_maildir``: claim, notarize, unlink, directory fsyncs).  The
target is >= 1,000 orders/s for each key kind.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.fixtures import OUT, fresh_pit, signed_orders
from moderator.notary import Notary, deliver
from pit import testkeys

TARGET = 1_000


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def _check(decisions, n: int, what: str) -> None:
    refused = [d for d in decisions if not d.accepted]
    if len(decisions) != n or refused:
        raise SystemExit(f"bench.moderator: {what}: {len(refused)} of {len(decisions)} refused, "
                         f"first: {refused[0].reason if refused else '-'}")


def bench_notarize(algo: str, n: int, batch: int) -> float:
    pit = fresh_pit(OUT / "pits" / f"moderator-{algo}")
    t = time.perf_counter()
    raws = signed_orders(pit, n, algo)
    print(f"  fixtures: {n} signed orders ({algo}) ready in {time.perf_counter() - t:.1f} s "
          f"(cached under {OUT / 'orders'})")
    t = time.perf_counter()
    notary = Notary(pit)
    print(f"  Notary(pit) loads in {time.perf_counter() - t:.3f} s")
    decisions, slowest = [], 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, n, batch):
        b = time.perf_counter()
        decisions += notary.notarize(raws[i:i + batch])
        slowest = max(slowest, time.perf_counter() - b)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    _check(decisions, n, f"{algo} notarize")
    rate = n / wall
    verdict = "ok" if rate >= TARGET else f"BELOW the {TARGET:,}/s target"
    print(f"  notarize, batches of {batch}: {rate:,.0f} orders/s ({n} in {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU: {n / cpu:,.0f}/s CPU); slowest batch {batch / slowest:,.0f}/s  [{verdict}]")
    return rate


def bench_maildir(algo: str, n: int, batch: int) -> float:
    pit = fresh_pit(OUT / "pits" / f"moderator-{algo}-maildir")
    raws = signed_orders(pit, n, algo)
    for i, raw in enumerate(raws):
        deliver(pit, raw, name=f"{i:09d}.bench")
    notary = Notary(pit)
    wall, cpu = time.perf_counter(), time.process_time()
    decisions = notary.run_maildir(batch=batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    _check(decisions, n, f"{algo} run_maildir")
    rate = n / wall
    verdict = "ok" if rate >= TARGET else f"BELOW the {TARGET:,}/s target"
    print(f"  run_maildir, batches of {batch}: {rate:,.0f} orders/s ({n} in {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU)  [{verdict}]")
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.moderator",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="orders in the burst (default 10000)")
    parser.add_argument("--batch", type=int, default=1_000, help="orders per notarize call")
    parser.add_argument("--algo", nargs="+", default=["ed25519", "rsa3072"],
                        choices=["ed25519", "rsa3072"], help="member key kinds")
    parser.add_argument("--no-maildir", action="store_true", help="skip the maildir path")
    args = parser.parse_args(argv)
    print(f"notary throughput, {args.n} signed orders per key kind ({_load()})")
    low = False
    try:
        for algo in args.algo:
            print(f"{algo} members:")
            low |= bench_notarize(algo, args.n, args.batch) < TARGET
            if not args.no_maildir:
                low |= bench_maildir(algo, args.n, args.batch) < TARGET
    finally:
        testkeys.stop_agents(OUT / "pits")     # the pits' gpg-agents (seals, key making)
    print(f"done ({_load()})")
    return 1 if low else 0


if __name__ == "__main__":
    raise SystemExit(main())
