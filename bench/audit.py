"""Audit throughput over a large archive with real signatures.

    python -m bench.audit [--n 100000] [--algo ed25519] [--every 10000] [--rebuild]

Builds (once; cached under ``bench/out/pits/``) a pit whose archive holds *n*
signed orders from ``bench.fixtures``, notarized through the real notary in
batches of 1,000 (so sealed every 1,000), with the filters run and posted
every ``--every`` orders (``transfers``, then ``specialist ACME``), so the
audit also replays filters and compares their reports and checkpoints byte
for byte.  Then times ``pit.audit.audit`` over the whole pit: chain, seals
(stock gpg), every signature (in process), stamps, filter replay.  Target:
>= 2,000 messages/s, signatures included.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.fixtures import OUT, fresh_pit, signed_orders
from moderator.notary import Notary
from pit import ops, testkeys
from pit.audit import audit
from pit.pitdir import Pit

TARGET = 2_000
BATCH = 1_000
MAX_MESSAGE = 16 << 20


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def build(n: int, algo: str, every: int, rebuild: bool = False) -> Pit:
    """The benchmark pit, built unless a finished one is cached.  O(n)."""
    root = OUT / "pits" / f"audit-{algo}-n{n}-e{every}"
    done = root / ".bench-built"
    if done.exists() and not rebuild:
        print(f"  archive: cached in {root}")
        return Pit(root)
    if done.exists():
        done.unlink()
    t = time.perf_counter()
    # A specialist's report of 10,000 orders is ~0.7 MB and its checkpoint
    # passes 256 KiB (the default max_message_size) at ~30,000 orders of this
    # stream; a refused report makes the next one longer still.  The limit is
    # raised here so that the archive holds every filter output.
    pit = fresh_pit(root, max_message_size=str(MAX_MESSAGE))
    raws = signed_orders(pit, n, algo)
    print(f"  fixtures: {n} signed orders ({algo}) in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    notary = Notary(pit)
    refused = 0
    for i in range(0, n, BATCH):
        refused += sum(not d.accepted for d in notary.notarize(raws[i:i + BATCH]))
        if (i + BATCH) % every == 0 or i + BATCH >= n:
            for kind, args in (("transfers", []), ("specialist", ["ACME"])):
                _, decisions = ops.run_filter(pit, kind, args)
                refused += sum(not d.accepted for d in decisions)
            notary = Notary(pit)          # the filters' posts went through another notary
    if refused:
        raise SystemExit(f"bench.audit: {refused} messages refused while building {root}")
    print(f"  archive: built in {time.perf_counter() - t:.1f} s in {root}")
    done.write_text(f"{n} {algo} {every}\n")
    return pit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="signed orders in the archive")
    parser.add_argument("--algo", default="ed25519", choices=["ed25519", "rsa3072"],
                        help="the traders' key kind")
    parser.add_argument("--every", type=int, default=10_000, help="run the filters every so many orders")
    parser.add_argument("--rebuild", action="store_true", help="build the archive again")
    args = parser.parse_args(argv)
    if args.every % BATCH:
        parser.error(f"--every must be a multiple of {BATCH}")
    print(f"audit throughput, {args.n} signed orders ({args.algo}) ({_load()})")
    try:
        pit = build(args.n, args.algo, args.every, args.rebuild)
        wall, cpu = time.perf_counter(), time.process_time()
        result = audit(pit.root)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        testkeys.stop_agents(OUT / "pits")     # the pits' gpg-agents (seals, filter posts)
    print(result.summary(), end="")
    if not result.ok:
        return 1
    rate = result.records / wall
    verdict = "ok" if rate >= TARGET else f"BELOW the {TARGET:,}/s target"
    print(f"audit: {rate:,.0f} messages/s ({result.records} records, {result.signatures} signatures, "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU: {result.records / cpu:,.0f}/s CPU)  [{verdict}]")
    print(f"done ({_load()})")
    return 0 if rate >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
