"""A judge process's work against the same work in process (docs/pit-book.md,
"Throughput over LMTP": the judges).

    python -m bench.ab.judges [--n 3000] [--judges 2] [--every 0.001]

On a fresh bench pit (ed25519 traders, signed in process): the CPU an
order of ``moderator.notary.prejudge`` in this process, then of
``moderator.judges.Judges`` (its processes' CPU from /proc, and this
process's: submitting and reading the replies) with the orders fed in one
burst, and one every ``--every`` seconds.  Prints the load beside each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.fixtures import fresh_pit, signed_orders
from bench.lmtp import _load, _new_orders_only, _process_cpu
from moderator.judges import Judges
from moderator.notary import prejudge
from pit import testkeys
from pit.keystore import KeyStore, StoreVerifier


def _fed(pit, raws: list[bytes], judges: int, every: float) -> tuple[float, float, int, int]:
    """(judges' CPU, this process's CPU) an order in ms, how many no judge
    took (their pipes full: the notary would judge those) and how many went
    unanswered."""
    pool = Judges(pit.gnupg, 10 ** 6, judges).start()
    try:
        pool.wait_ready(60)
        for raw in raws[:50]:                     # warm: the judges read their keys
            pool.submit(raw)
        time.sleep(1)
        pids = pool.pids()
        before = {p: _process_cpu(p) for p in pids}
        mine = time.process_time()
        tickets = []
        for raw in raws[50:]:
            tickets.append(pool.submit(raw))
            if every:
                time.sleep(every)
        deadline = time.time() + 60
        while any(t is not None and not t.done for t in tickets) and time.time() < deadline:
            time.sleep(0.01)
        mine = time.process_time() - mine
        n = len(raws) - 50
        theirs = sum(_process_cpu(p) - before[p] for p in pids)
        return (theirs / n * 1000, mine / n * 1000, sum(t is None for t in tickets),
                sum(t is not None and not t.done for t in tickets))
    finally:
        pool.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab.judges", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--judges", type=int, default=2)
    parser.add_argument("--every", type=float, default=0.001)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pit-bench-judges-") as tmp:
        pit = fresh_pit(Path(tmp) / "pit")
        try:
            raws = [r.replace(b"\r\n", b"\n") for r in
                    _new_orders_only(signed_orders(pit, args.n, "ed25519", cache=False))]
            verifier = StoreVerifier(KeyStore(pit.gnupg))
            t = time.process_time()
            for raw in raws:
                prejudge(raw, verifier, 10 ** 6)
            print(f"prejudge in process: {(time.process_time() - t) / len(raws) * 1000:.3f} ms "
                  f"an order ({_load()})")
            for every in (0.0, args.every):
                theirs, mine, untaken, lost = _fed(pit, raws, args.judges, every)
                how = "in one burst" if not every else f"one every {every * 1000:g} ms"
                print(f"{args.judges} judges, fed {how}: judges {theirs:.3f} ms an order, "
                      f"this process {mine:.3f} (submit, replies{', sleeps' if every else ''}); "
                      f"{untaken} not taken (pipes full), {lost} unanswered ({_load()})")
        finally:
            testkeys.stop_agents(Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
