"""make bench: every benchmark, one after the other, each printing its figures.

    python -m bench                 all of them
    python -m bench core replay     just these
    python -m bench.core --help     one benchmark with its own options

Each benchmark states its target next to its figure.  They are meant for a
quiet machine: `uptime` is printed first so a loaded run can be recognised.
"""

import importlib
import os
import signal
import sys
import time
import traceback
from pathlib import Path

ORDER = ["core", "archive", "verify", "replay", "moderator", "lmtp", "audit", "mailman", "postfix", "hosts"]


def main(argv=None) -> int:
    from bench import exit_on_sigterm
    exit_on_sigterm()
    names = (sys.argv[1:] if argv is None else argv) or ORDER
    print(f"pit benchmarks, {time.strftime('%Y-%m-%d %H:%M:%S')}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    failed = []
    from pit.agents import stopped_after
    try:
        with stopped_after([Path(__file__).resolve().parent / "out"]):   # its pits' gpg-agents
            run(names, failed)
    finally:
        if failed:
            print(f"\nfailed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


def run(names: list[str], failed: list[str]) -> None:
    for name in names:
        print(f"\n== bench.{name} ==", flush=True)
        t = time.monotonic()
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as e:
            print(f"(not available: {e})")
            continue
        try:
            rc = mod.main([])
        except SystemExit as e:
            rc = e.code
            if isinstance(rc, str):        # a benchmark's reason for stopping
                print(rc, flush=True)
            elif rc == 128 + signal.SIGTERM:   # exit_on_sigterm: the whole run is stopped
                print(f"(bench.{name}: stopped by SIGTERM after "
                      f"{time.monotonic() - t:.0f} s)", flush=True)
                failed.append(name)
                raise
        except Exception:                  # a fault: say it, go on with the next one
            traceback.print_exc(file=sys.stdout)
            rc = "exception"
        if rc:
            failed.append(name)
            if not isinstance(rc, str):
                print(f"(bench.{name}: exit status {rc})", flush=True)
        print(f"(bench.{name}: {time.monotonic() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
