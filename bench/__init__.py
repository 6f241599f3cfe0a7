"""pit's benchmarks (``make bench``, ``make bench-scale``): see bench/__main__.py."""

import signal
import sys


def exit_on_sigterm() -> None:
    """Make SIGTERM (``kill``, ``timeout``) end a benchmark through its
    ``finally`` blocks, so what it started (Mailman, Postfix, servers,
    gpg-agents) is stopped as on Ctrl-C.  Call from a benchmark's main()."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
