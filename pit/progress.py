"""Progress bars for long runs, on a terminal only.

A long command (pit audit, pit replay, the demo's bursts) shows a bar with
the count, the total when it is known, the rate and the time left, on
stderr, when stderr is a terminal; in a pipe, a file or a test it shows
nothing and tqdm is not even imported.  tqdm draws the bar and throttles it, so callers
may report as often as they like.
"""

from __future__ import annotations

import sys

__all__ = ["bar", "Quiet"]


class Quiet:
    """What :func:`bar` gives when stderr is not a terminal: does nothing."""

    n = 0
    total = None

    def update(self, n: int = 1) -> None:
        pass

    def goto(self, n: int, total: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Bar(Quiet):
    def __init__(self, desc: str, total: int | None, unit: str):
        import os
        from tqdm import tqdm
        try:
            cols, rows = os.get_terminal_size(sys.stderr.fileno())
        except (OSError, ValueError):
            cols = rows = 0
        # a terminal that tells no size (a bare pseudo-terminal) gets 80x24:
        # tqdm hides a bar below a screen of height 0
        self._t = tqdm(desc=desc, total=total, unit=unit, file=sys.stderr, leave=False,
                       ncols=None if cols else 80, nrows=None if rows else 24,
                       dynamic_ncols=bool(cols), mininterval=0.2, smoothing=0.1,
                       unit_scale=unit == "B", unit_divisor=1024 if unit == "B" else 1000)

    @property
    def n(self) -> int:
        return self._t.n

    def update(self, n: int = 1) -> None:
        self._t.update(n)

    def goto(self, n: int, total: int | None = None) -> None:
        """Set the count to *n* (and the total, when it becomes known)."""
        if total is not None and total != self._t.total:
            self._t.total = total
            self._t.refresh()
        if n > self._t.n:
            self._t.update(n - self._t.n)

    def close(self) -> None:
        self._t.close()


def bar(desc: str, total: int | None = None, unit: str = "record", stream=None) -> Quiet:
    """A progress bar on stderr when *stream* (stderr) is a terminal, else
    a :class:`Quiet` one.  Use as a context manager, or call close()."""
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return _Bar(desc, total, unit) if tty else Quiet()
