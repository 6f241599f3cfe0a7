"""Signature verification throughput: in process vs stock gpg.

    python -m bench.verify [--orders 10000] [--gpg 200] [--distinct 200]

For each key kind (ed25519, rsa3072) it signs ``--distinct`` different
clearsigned orders with gpg (signing is not what is measured), repeats
them to ``--orders`` messages and times ``pit.signed.extract`` plus the
in-process verifier on every message (nothing is cached between
messages).  Then it times gpg through python-gnupg (one process per
verification) on ``--gpg`` of the same messages.  When ``pysequoia``
(Sequoia-PGP) is importable (``pip install pysequoia``; not a dependency
of the pit) it times ``pit.signed.extract`` plus ``pysequoia.verify`` the
same way, the alternative the pit weighed against its own verifier
(docs/pit-book.md).  The notary needs >= 1,000/s, the audit >= 2,000/s.
Keys live in a temporary GnuPG home.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pit import signed, testkeys
from pit.keyring import Keyring


def _orders(keyring: Keyring, fpr: str, n: int) -> list[bytes]:
    headers = {"From": "trader@pit.test", "To": "demo@pit.test", "Subject": "order"}
    return [signed.compose_clearsigned(
                headers, f"Pit: demo\nAccount: alice\nRef: {i}\nOrder: buy {i + 1} ACME at 12.50\n",
                keyring, fpr)
            for i in range(n)]


def _rate(count: int, seconds: float, cpu: float | None = None) -> str:
    """The wall-clock rate, and the CPU-time rate (steadier on a shared machine)."""
    text = f"{count / seconds:,.0f}/s ({count} in {seconds:.2f} s)"
    return text if cpu is None else text + f", {count / cpu:,.0f}/s CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=10_000, help="messages verified in process per key kind")
    parser.add_argument("--gpg", type=int, default=200, help="messages verified by gpg per key kind")
    parser.add_argument("--distinct", type=int, default=200, help="distinct signed orders made with gpg")
    args = parser.parse_args(argv)
    try:
        import pysequoia
    except ImportError:
        pysequoia = None
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "gnupg"
        fprs = testkeys.make_keys(home, [("ed25519", "ed25519"), ("rsa3072", "rsa3072")])
        keyring = Keyring(home)
        verifier = keyring.load_verifier()
        print(f"signature verification, clearsigned orders, extract + verify "
              f"({args.distinct} distinct orders signed by gpg, repeated)")
        for kind, fpr in fprs.items():
            distinct = _orders(keyring, fpr, args.distinct)
            messages = [distinct[i % len(distinct)] for i in range(args.orders)]
            start, cpu = time.perf_counter(), time.process_time()
            good = sum(signed.extract(m).verify(verifier).ok for m in messages)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            assert good == len(messages), f"{len(messages) - good} {kind} orders did not verify"
            print(f"  {kind:8} in process      {_rate(len(messages), elapsed, cpu)}")
            if pysequoia is not None:
                cert = pysequoia.Cert.from_bytes(keyring.export(fpr).encode())
                start, cpu = time.perf_counter(), time.process_time()
                for m in messages:
                    s = signed.extract(m)
                    pysequoia.verify(bytes=s.signed_bytes, store=lambda ids: [cert],
                                     signature=pysequoia.Sig.from_bytes(s.signature))
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
                print(f"  {kind:8} pysequoia       {_rate(len(messages), elapsed, cpu)}")
            sample = messages[:args.gpg]
            start = time.perf_counter()
            good = sum(signed.extract(m).verify_gpg(keyring).ok for m in sample)
            elapsed = time.perf_counter() - start
            assert good == len(sample), f"gpg refused {len(sample) - good} {kind} orders"
            print(f"  {kind:8} gpg (python-gnupg) {_rate(len(sample), elapsed)}")
        keyring.stop_agent()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
