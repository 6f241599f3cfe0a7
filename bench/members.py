"""Members at scale: bulk add, one more member, notary start-up and memory.

    python -m bench.members [--sizes 1000,10000,100000] [--runs 3] [--audit-orders 5000]

For each size N: a fresh pit (``bench.fixtures.fresh_pit``) gets N members
made in process (``pit.testkeys.certificate``: real ed25519 certificates, no
gpg key generation), in 16 groups by their fingerprint's first hex digit:
a group's keys go into the pit's keyring of record (``Keyring.import_keys``:
one gpg import into each of its shard homes, two at a time), then
``pit.ops.add_members`` records them (one member record each, the notary's
batches of 1,000), each part timed.  With ``--cache DIR`` each pit is built
once (``DIR/members-N``) and reused.  Then, min and median over ``--runs``:

* adding one member to a running notary (judge, gpg import, store update,
  record on disk, seal), target <= 1 s at 1,000,000 members;
* one key into the keyring alone (``Keyring.import_key``: gpg's import
  into its shard, the store's update);
* the same as the operator's command does it (``ops.add_member``: a notary
  start-up, then the above);
* notary start-up in a fresh process (``Notary(pit)``: the key store, the
  notary's state), target <= 2 s, and its peak memory, target <= 1 GB, at
  1,000,000 members;
* with ``--orders K``, order throughput: K signed orders a run through
  ``Notary.notarize`` (batches of 1,000), beside the first size's (target:
  unchanged).

With ``--keyring-only``, only the keyring of record: N keys into a bare
keyring (``Keyring.import_keys``), then one key more (``import_key``) and
``load_verifier``, min and median over ``--runs``: the gpg side of a bulk
add and of one add, without the member records.

With ``--audit-orders K`` (default 5,000; 0 to skip), the smallest size's
pit also gets K signed orders from ``bench.fixtures`` and ``pit.audit`` is
timed over it (the audit replays membership: one gpg import of every first
certificate, not a gpg run per member record).

Keys are deterministic (a hash of the member's name), so runs compare.
Figures go to docs/pit-book.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.fixtures import OUT, fresh_pit, signed_orders
from pit import ops, testkeys
from pit.keyring import Keyring
from pit.keystore import SHARDS
from pit.pitdir import Pit

ADD_ONE_TARGET = 1.0          # s, at 1,000,000 members
STARTUP_TARGET = 2.0          # s
MEMORY_TARGET = 1 << 30       # bytes


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _certificates(n: int, prefix: str = "member") -> list[tuple[str, list[str]]]:
    return [(testkeys.certificate(f"{prefix}{i:07d}")[0], [f"{prefix}{i:07d}"]) for i in range(n)]


def _startup(root) -> tuple[float, int]:
    """(seconds, peak RSS bytes) of ``Notary(pit)`` in a fresh process.  The
    peak is the process's own (``VmHWM`` of its memory after exec):
    ``ru_maxrss`` would also count the parent's pages that the child
    shared until its exec (vfork), which is the whole bench process."""
    code = ("import sys, time\n"
            "t = time.perf_counter()\n"
            "from moderator.notary import Notary\n"
            "n = Notary(sys.argv[1])\n"
            "n.verifier.key(n.pit.operator)\n"
            "s = time.perf_counter() - t\n"
            "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
            "print(s, int(hwm.split()[1]) * 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), int(out[1])


def _fmt(values: list[float]) -> str:
    return f"min {min(values):.3f} s, median {statistics.median(values):.3f} s"


def _rss() -> str:
    line = next(l for l in open("/proc/self/status") if l.startswith("VmRSS:"))
    return f"{int(line.split()[1]) / 1024:,.0f} MiB"


def build(n: int, root: Path, log=print) -> tuple[Pit, str]:
    """A pit of *n* members at *root*, built once: (the pit, its build line).

    A pit built before (its ``bench-built`` file, written last) is reused as
    it is.  The members are made in process, then added in 16 groups by the
    first hex digit of their fingerprint (each group its own shard homes, so
    each shard is imported into once): per group the keyring of record first
    (``Keyring.import_keys``: gpg, one import a shard), then the member
    records (``ops.add_members``, which finds every key imported, byte for
    byte), each part timed; a progress line per group with its rates."""
    done = root / "bench-built"
    if done.exists():
        return Pit(root), done.read_text().strip() + " (built before, reused)"
    pit = fresh_pit(root)
    t0 = time.perf_counter()
    groups: dict[str, list] = {}
    for i in range(n):
        name = f"member{i:07d}"
        armored, signer = testkeys.certificate(name)
        groups.setdefault(signer.fingerprint[0], []).append((armored, [name]))
        if n >= 100_000 and (i + 1) % 100_000 == 0:
            log(f"    {i + 1:,} certificates made, {time.perf_counter() - t0:.0f} s, {_rss()}, {_load()}")
    made = time.perf_counter() - t0
    keyring = records = 0.0
    added = 0
    for digit in sorted(groups):
        certs = groups.pop(digit)
        t = time.perf_counter()
        imported = Keyring(pit.gnupg).import_keys([a for a, _ in certs])
        k = time.perf_counter() - t
        bad = [r for r in imported if not isinstance(r, str)]
        if bad:
            raise RuntimeError(f"gpg refused {len(bad)} keys: {bad[0]}")
        t = time.perf_counter()
        results = ops.add_members(pit, certs)
        r = time.perf_counter() - t
        refused = [d.reason for _, d in results if not d.accepted]
        if refused:
            raise RuntimeError(f"bulk add refused {len(refused)}: {refused[0]}")
        keyring, records, added = keyring + k, records + r, added + len(certs)
        if n >= 100_000:
            log(f"    group {digit}: {len(certs):,} members, gpg {k:.0f} s ({len(certs) / k:,.0f}/s), "
                f"records {r:.0f} s ({len(certs) / r:,.0f}/s); {added:,} of {n:,} members in "
                f"{time.perf_counter() - t0:.0f} s; {_rss()}, {_load()}")
    bulk = keyring + records
    shards = len(list((pit.gnupg / SHARDS).iterdir()))
    line = (f"{n:>9,} members: certificates made in {made:.1f} s; bulk add {bulk:.1f} s "
            f"({n / bulk:,.0f} members/s; target: finishes at 1,000,000): gpg import into "
            f"{shards:,} shard homes {keyring:.1f} s ({n / keyring:,.0f}/s), "
            f"member records {records:.1f} s ({n / records:,.0f}/s); "
            f"built {time.strftime('%Y-%m-%d %H:%M')}, {_load()}")
    done.write_text(line + "\n")
    return pit, line


def order_throughput(pits: dict[int, Pit], orders: int, runs: int) -> None:
    """Orders a second through ``Notary.notarize`` (batches of 1,000, as
    bench.moderator) in each pit, the pits taken in turn in each of *runs*
    rounds (so each sees the same load); each run a new slice of *orders*
    signed orders of the bench's traders (new refs to the pit: the slices
    already notarized are counted in its ``bench-orders-used``).  Printed
    beside the first pit's (target: unchanged)."""
    from moderator.notary import Notary
    raws = {n: _new_orders(pit, orders * runs) for n, pit in pits.items()}
    rates: dict[int, list[float]] = {n: [] for n in pits}
    for i in range(runs):
        for n, pit in pits.items():
            part = raws[n][i * orders:(i + 1) * orders]
            notary = Notary(pit)
            t = time.perf_counter()
            for j in range(0, len(part), 1000):
                ds = notary.notarize(part[j:j + 1000])
                bad = [d.reason for d in ds if not d.accepted]
                if bad:
                    raise RuntimeError(f"orders refused: {len(bad)}, first: {bad[0]}")
            rates[n].append(len(part) / (time.perf_counter() - t))
    first = next(iter(pits))
    base = statistics.median(rates[first])
    for n, r in rates.items():
        print(f"  order throughput at {n:>9,} members: min {min(r):,.0f}, median "
              f"{statistics.median(r):,.0f} orders/s, {orders:,} orders a run, the pits in turn  "
              f"(target: unchanged: {statistics.median(r) / base:.2f}x the {first:,}-member "
              f"pit's median)", flush=True)


def _new_orders(pit: Pit, k: int) -> list[bytes]:
    """*k* signed orders (bench.fixtures) whose refs the pit has not seen: the
    orders of the fixtures' stream after those taken from it before, which
    the pit's ``bench-orders-used`` counts (a built pit is reused)."""
    used_file = pit.root / "bench-orders-used"
    used = int(used_file.read_text()) if used_file.exists() else 0
    raws = signed_orders(pit, used + k, "ed25519")[used:]
    used_file.write_text(f"{used + k}\n")
    return raws


def bench_size(n: int, runs: int, startup: bool = True, cache: Path | None = None) -> Pit:
    root = (cache or OUT / "pits") / f"members-{n}"
    if cache is None and (root / "bench-built").exists():
        (root / "bench-built").unlink()       # bench/out's pits are made afresh
    pit, line = build(n, root, log=lambda text: print(text, flush=True))
    print(f"  {line}", flush=True)
    have = len(ops.notary(pit).members)
    print(f"    members in the pit: {have:,}{'' if have >= n else ' (its build was stopped)'}", flush=True)
    running, command, alone, starts, peaks = [], [], [], [], []
    # new keys at every run of the bench (a built pit is reused)
    stamp = int(time.time())
    extra = _certificates(runs * 3, prefix=f"extra{n}-{stamp}-")
    notary = ops.notary(pit)
    for i in range(runs):
        armored, accounts = extra[3 * i]
        fpr = testkeys.certificate(accounts[0])[1].fingerprint
        value = f"add {fpr} accounts {accounts[0]}"
        ring, op = ops._operator(pit)
        text = ops.request_text(pit, "operator", f"bench-{n}-{stamp}-{i}", "Member", value) \
            + "\n" + armored.strip() + "\n"
        raw = ops.sign_request(pit, text, ring, op, "operator@bench")
        t = time.perf_counter()
        d = notary.notarize([raw])[0]
        running.append(time.perf_counter() - t)
        assert d.accepted, d.reason
        armored, accounts = extra[3 * i + 1]
        t = time.perf_counter()
        _, d = ops.add_member(pit, armored, accounts)
        command.append(time.perf_counter() - t)
        assert d.accepted, d.reason
        armored, _ = extra[3 * i + 2]
        ring = Keyring(pit.gnupg)
        t = time.perf_counter()
        ring.import_key(armored)
        alone.append(time.perf_counter() - t)
        if startup:
            s, rss = _startup(pit.root)
            starts.append(s)
            peaks.append(rss)
    ok = lambda good: "ok" if good else "ABOVE target"   # noqa: E731
    print(f"    add one member, running notary: {_fmt(running)}  "
          f"(target <= {ADD_ONE_TARGET:.0f} s at 1M: {ok(min(running) <= ADD_ONE_TARGET)})")
    print(f"    one key into the keyring:       {_fmt(alone)}  (gpg import, store update)")
    print(f"    add one member, pit member add: {_fmt(command)}  (a notary start-up included)")
    if startup:
        print(f"    notary start-up:                {_fmt(starts)}  "
              f"(target <= {STARTUP_TARGET:.0f} s: {ok(min(starts) <= STARTUP_TARGET)})")
        print(f"    notary peak memory:             {max(peaks) / 2**20:,.0f} MiB  "
              f"(target <= 1024 MiB: {ok(max(peaks) <= MEMORY_TARGET)})", flush=True)
    return pit


def bench_keyring(n: int, runs: int) -> None:
    """The keyring of record alone at N keys: the bulk import into the
    shard homes, then one key more (gpg's import into its shard and the
    store's update), and the verifier's load (a stat a home)."""
    root = OUT / "pits" / f"keyring-{n}"
    if root.exists():
        import shutil
        shutil.rmtree(root)
    ring = Keyring(root)
    t = time.perf_counter()
    certs = [a for a, _ in _certificates(n)]
    made = time.perf_counter() - t
    t = time.perf_counter()
    bad = [r for r in ring.import_keys(certs) if not isinstance(r, str)]
    bulk = time.perf_counter() - t
    del certs
    if bad:
        raise RuntimeError(f"gpg refused {len(bad)} keys: {bad[0]}")
    print(f"  {n:>9,} keys: certificates made in {made:.1f} s; gpg import into "
          f"{len(ring.store.homes()) - 1:,} shard homes {bulk:.1f} s ({n / bulk:,.0f}/s)", flush=True)
    one, loads = [], []
    for armored, _ in _certificates(runs, prefix=f"one{n}-"):
        t = time.perf_counter()
        ring.import_key(armored)
        one.append(time.perf_counter() - t)
        t = time.perf_counter()
        Keyring(root).load_verifier()
        loads.append(time.perf_counter() - t)
    ok = "ok" if min(one) <= ADD_ONE_TARGET else "ABOVE target"
    print(f"    one key more:     {_fmt(one)}  (target <= {ADD_ONE_TARGET:.0f} s at 1M: {ok})")
    print(f"    load_verifier():  {_fmt(loads)}  (a stat a home)", flush=True)


def bench_audit(pit: Pit, orders: int) -> None:
    from moderator.notary import Notary
    from pit.audit import audit
    raws = _new_orders(pit, orders)
    notary = Notary(pit)
    for i in range(0, len(raws), 1000):
        notary.notarize(raws[i:i + 1000])
    res = audit(pit.root)
    if not res.ok:
        raise RuntimeError(f"audit failed: {res.problem}")
    print(f"  audit of {res.records:,} records ({orders:,} orders, "
          f"{res.kinds.get('member', 0):,} member records): {res.seconds:.1f} s "
          f"({res.records / res.seconds:,.0f} records/s)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.members", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000", help="member counts, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--audit-orders", type=int, default=5000)
    ap.add_argument("--keyring-only", action="store_true",
                    help="the keyring of record alone: bulk import, one key more (no pit, no records)")
    ap.add_argument("--no-startup", action="store_true",
                    help="skip the notary start-up figures (it re-reads the archive)")
    ap.add_argument("--orders", type=int, default=0,
                    help="order throughput: ORDERS signed orders a run through the notary")
    ap.add_argument("--cache", type=Path, default=None,
                    help="build each pit once as CACHE/members-N and reuse it afterwards "
                         "(default: bench/out/pits, made afresh)")
    ap.add_argument("--build-only", action="store_true", help="build the pits (with --cache), time nothing")
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    print(f"bench.members: sizes {', '.join(f'{s:,}' for s in sizes)}, {_load()}")
    first = None
    pits: dict[int, Pit] = {}
    try:
        for n in sizes:
            if args.keyring_only:
                bench_keyring(n, args.runs)
                continue
            if args.build_only:
                root = (args.cache or OUT / "pits") / f"members-{n}"
                print(f"  {build(n, root, log=lambda text: print(text, flush=True))[1]}", flush=True)
                continue
            pit = bench_size(n, args.runs, startup=not args.no_startup, cache=args.cache)
            pits[n] = pit
            first = first or pit
        if args.orders and pits:
            order_throughput(pits, args.orders, args.runs)
        if args.audit_orders and first is not None:
            bench_audit(first, args.audit_orders)
    finally:
        testkeys.stop_agents(OUT / "pits")     # the pits' gpg-agents (key making, seals)
        for n in sizes if args.cache else ():
            testkeys.stop_agents(args.cache / f"members-{n}")
    print(f"  ({_load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
