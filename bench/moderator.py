"""Notary throughput: a burst of signed orders, verified and notarized.

    python -m bench.moderator [--n 10000] [--batch 1000] [--algo ed25519 rsa3072] [--compare-tree]

For each member key kind, a fresh pit (no rate limit, default message size
limit) gets *n* signed orders from ``bench.fixtures`` (made and cached once,
signed in process), and the notary takes them in batches of ``--batch``:
``Notary.notarize`` verifies each signature in process, checks the request,
stamps, chains, seals each batch (one gpg clearsign) and appends with fsync.
The rate is over the whole burst (sustained), with the slowest batch beside
it.  A second fresh pit takes the same burst through the incoming maildir
(``Notary.run_maildir``: claim, notarize, unlink, directory fsyncs).  The
target is >= 1,000 orders/s for each key kind.

``--compare-tree`` measures only what the log's Merkle tree costs the
notary: the same burst notarized with the tree and with a stand-in that
hashes nothing, interleaved, in CPU time.
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


class _NoTree:
    """A stand-in for the notary's Merkle frontier that hashes nothing
    (its seals then sign a zero root): the tree's cost is the difference."""

    def __init__(self):
        self.size = 0

    def append(self, leaf: bytes) -> None:
        self.size += 1

    def root(self) -> bytes:
        return bytes(32)

    def copy(self) -> "_NoTree":
        return self

    def to_text(self) -> str:
        return "-"

    @classmethod
    def from_text(cls, text: str):
        raise ValueError(text)


def compare_tree(algo: str, n: int, batch: int, rounds: int = 3) -> None:
    """The notary's CPU rate with its Merkle tree and with a stand-in that
    hashes nothing, runs interleaved (a shared machine's speed drifts)."""
    from pit import merkle
    real = merkle.Frontier
    rates: dict[bool, list[float]] = {True: [], False: []}
    try:
        for r in range(rounds):
            for tree in (False, True):
                merkle.Frontier = real if tree else _NoTree
                pit = fresh_pit(OUT / "pits" / f"moderator-{algo}-tree-{tree}")
                raws = signed_orders(pit, n, algo)
                notary = Notary(pit)
                cpu = time.process_time()
                for i in range(0, n, batch):
                    _check(notary.notarize(raws[i:i + batch]), len(raws[i:i + batch]), "compare")
                rates[tree].append(n / (time.process_time() - cpu))
                merkle.Frontier = real
    finally:
        merkle.Frontier = real
    for tree in (False, True):
        print(f"  notarize {'with the tree   ' if tree else 'without the tree'}: "
              + ", ".join(f"{x:,.0f}" for x in rates[tree]) + " orders/s of CPU")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.moderator",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="orders in the burst (default 10000)")
    parser.add_argument("--batch", type=int, default=1_000, help="orders per notarize call")
    parser.add_argument("--algo", nargs="+", default=["ed25519", "rsa3072"],
                        choices=["ed25519", "rsa3072"], help="member key kinds")
    parser.add_argument("--no-maildir", action="store_true", help="skip the maildir path")
    parser.add_argument("--compare-tree", action="store_true",
                        help="only the cost of the Merkle tree: the notary with and without it")
    args = parser.parse_args(argv)
    if args.compare_tree:
        try:
            for algo in args.algo:
                print(f"the Merkle tree's cost on the notary, {args.n} orders ({algo}, {_load()})")
                compare_tree(algo, args.n, args.batch)
        finally:
            testkeys.stop_agents(OUT / "pits")
        return 0
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
