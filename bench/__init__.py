"""pit's benchmarks (``make bench``, ``make bench-scale``): see bench/__main__.py."""

from pit.agents import exit_on_sigterm   # a benchmark's main() calls it: SIGTERM
                                        # stops what it started, as Ctrl-C does

__all__ = ["exit_on_sigterm"]
