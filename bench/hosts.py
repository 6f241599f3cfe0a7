"""Order -> trade when the specialist is on a host of its own.

    python -m bench.hosts [PAIRS] [RUNS]         (make bench: 30 2)

Sets up what tests/test_hosts.py sets up (tests/hosts_harness.py): host A
(a network namespace) with Mailman, Postfix and the notary for pit
``alpha``; host B with its own key, a replica kept by ``pit mirror``
over rsync before each look (``pit mailman daemon --mirror --poll 0.2``)
and its own Postfix relaying to A's.  Then PAIRS crossing pairs (bob
sells, alice buys one lot) go to A's Postfix one pair at a time; each is
timed from handing the buy to A's Postfix until the specialist's report
with its trade lands in alice's mailbox: A's notary, Mailman, B's next
look (rsync), B's report through B's and A's Postfix, the notary, Mailman,
Postfix.  Prints p50, p99 and the worst; with RUNS > 1 (each set up
afresh) the min, median and max over the runs.  The orders' rate into A
is bench.postfix's: B does not take part in accepting them.

Needs root (network namespaces, Postfix instances of its own), Postfix
and Mailman (``make sysdeps``); skipped otherwise.  Every wait times out.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hosts_harness import pit_on_three_hosts, wait_until  # noqa: E402
from mailman_harness import mailman_available  # noqa: E402
from netns_harness import Hosts, netns_available  # noqa: E402
from postfix_harness import postfix_available, seq_of  # noqa: E402

from bench.mailman import _load  # noqa: E402
from bench.postfix import _p99  # noqa: E402
from pit import testkeys  # noqa: E402


def run(pairs: int) -> dict:
    from conftest import _stop_agents
    base = Path(tempfile.mkdtemp(prefix="pit-bench-hosts-"))
    os.chmod(base, 0o755)
    try:
        keyhome = base / "keys"
        testkeys.make_keys(keyhome, [("alice", "ed25519"), ("bob", "ed25519")])
        with Hosts(["a", "b", "c"]) as hosts, \
                pit_on_three_hosts(hosts, base, keyhome) as world:
            world.start_daemon()
            latencies = []
            for k in range(pairs + 1):              # the first pair warms up
                buy, sell = world.order_pair(f"p{k}")
                world.send(sell, "bob")
                wait_until(f"the sell of pair {k}", lambda: seq_of(world.alpha, sell),
                           detail=world.detail)
                t0 = time.perf_counter()
                world.send(buy, "alice")
                wait_until(f"the trade of pair {k}",
                           lambda: world.has_trade("alice", f"buyer alice p{k} seller bob p{k} "),
                           timeout=300, detail=world.detail)
                if k:
                    latencies.append(time.perf_counter() - t0)
    finally:
        _stop_agents(base)
        shutil.rmtree(base, ignore_errors=True)
    return {"p50": statistics.median(latencies), "p99": _p99(latencies), "max": max(latencies)}


def main(argv: list[str] | None = None) -> int:
    from bench import exit_on_sigterm
    exit_on_sigterm()
    argv = sys.argv[1:] if argv is None else argv
    try:
        pairs = int(argv[0]) if argv else 30
        runs = int(argv[1]) if len(argv) > 1 else 2
        if min(pairs, runs) < 1:
            raise ValueError
    except ValueError:
        print("usage: python -m bench.hosts [PAIRS] [RUNS]  (positive integers)", file=sys.stderr)
        return 2
    for reason in (postfix_available(), mailman_available(), netns_available()):
        if reason:
            print(f"bench.hosts: skipped: {reason}")
            return 0
    print(f"hosts: order -> trade with the specialist on host B (its replica by rsync, its "
          f"reports through its own Postfix), {pairs} pairs one at a time")
    results = []
    for k in range(runs):
        load = _load()
        r = run(pairs)
        results.append(r)
        print(f"  run {k + 1}: p50 {r['p50'] * 1000:.0f} ms, p99 {r['p99'] * 1000:.0f} ms, "
              f"worst {r['max'] * 1000:.0f} ms; {load} before", flush=True)
    if runs > 1:
        for key in ("p50", "p99"):
            values = [r[key] * 1000 for r in results]
            print(f"  trade {key}: min {min(values):.0f} ms, median "
                  f"{statistics.median(values):.0f} ms, max {max(values):.0f} ms over {runs} runs")
    print(f"hosts: {_load()} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
