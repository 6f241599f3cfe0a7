"""Search a pit's archive with mairix.

mairix indexes the archive's mbox volumes where they lie (no copy): the
``From``, ``To``, ``Subject``, ``Date`` and ``Message-ID`` headers and the
words of the body.  A pit message names its account, ref and order in the
signed body (``Account: alice``, ``Ref: 17``, ``Order: buy 100 ACME ...``),
so those are body words.  The database and the result folder live beside
the archive, in ``<pit>/search/``; the index is updated incrementally.

    pit search --ticker ACME --account alice      mairix b:ACME,alice
    pit search --ref 17 --account alice           mairix b:alice,17
    pit search --sender bob@example.org           mairix f:bob@example.org
    pit search --date 20261101-20261130           mairix d:20261101-20261130

Any other mairix expression can be given as it is (``s:seal``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pit import mbox

__all__ = ["SearchError", "configure", "index", "terms", "search"]


class SearchError(Exception):
    """mairix is missing, or refused the query or the archive."""


def _dirs(root: str | os.PathLike) -> tuple[Path, Path]:
    """(archive folder, search folder) for a pit directory or an archive copy."""
    root = Path(root)
    arch = root / "archives" if (root / "archives").is_dir() else root
    if not (arch / "index").exists() and not any(arch.glob("0*.mbox")):
        raise SearchError(f"{root}: no archive volumes to search")
    return arch, (root / "search" if arch != root else root.parent / (root.name + ".search"))


def configure(root: str | os.PathLike) -> Path:
    """Write the mairix configuration for the archive at *root*; returns its path."""
    arch, work = _dirs(root)
    work.mkdir(parents=True, exist_ok=True)
    rc = work / "mairixrc"
    text = (f"base={arch.resolve()}\n"
            "mbox=0*.mbox\n"                 # every volume; mairix expands the wildcard
            f"database={(work / 'mairix.db').resolve()}\n"
            f"mfolder={(work / 'results.mbox').resolve()}\n"
            "mformat=mbox\n")
    if not rc.exists() or rc.read_text() != text:
        rc.write_text(text)
    return rc


def _mairix(rc: Path, args: list[str]) -> str:
    exe = shutil.which("mairix")
    if exe is None:
        raise SearchError("mairix is not installed (make install does it: scripts/sysdeps.sh)")
    p = subprocess.run([exe, "-f", str(rc), *args], capture_output=True, text=True)
    if p.returncode not in (0, 1):          # 1: the search matched nothing
        raise SearchError(f"mairix {' '.join(args)}: {(p.stderr or p.stdout).strip()}")
    return p.stdout


def index(root: str | os.PathLike) -> str:
    """Bring the index up to date with the volumes (incremental)."""
    return _mairix(configure(root), []).strip()


def _index_showing(rc: Path, root: str | os.PathLike, show) -> None:
    """Index as :func:`index` does, calling ``show(bytes done, bytes in all)``
    as mairix (verbose) says how far into each volume it has scanned."""
    import re
    exe = shutil.which("mairix")
    if exe is None:
        raise SearchError("mairix is not installed (make install does it: scripts/sysdeps.sh)")
    arch, _ = _dirs(root)
    sizes = {str(p.resolve()): p.stat().st_size for p in sorted(arch.glob("0*.mbox"))}
    before, acc = {}, 0
    for path, size in sizes.items():
        before[path], acc = acc, acc + size
    show(0, acc)
    scanned = re.compile(rb"Scanning mbox (\S+) :\s*(\d+)% done")
    p = subprocess.Popen([exe, "-v", "-f", str(rc)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    tail = b""
    for chunk in iter(lambda: p.stdout.read1(1 << 16), b""):
        text, tail = tail + chunk, chunk[-200:]
        for m in scanned.finditer(text):
            path = m.group(1).decode(errors="replace")
            if path in sizes:
                show(before[path] + sizes[path] * int(m.group(2)) // 100, acc)
    err = p.stderr.read().decode(errors="replace")
    if p.wait() not in (0, 1):
        raise SearchError(f"mairix: {err.strip()}")


def terms(ticker: str | None = None, account: str | None = None, ref: str | None = None,
          sender: str | None = None, date: str | None = None, words=()) -> list[str]:
    """mairix expressions for the usual questions (all must match)."""
    body = [w for w in (ticker, account, ref) if w]
    out = [f"b:{','.join(body)}"] if body else []
    if sender:
        out.append(f"f:{sender}")
    if date:
        out.append(f"d:{_days(date)}")
    out.extend(words)
    if not out:
        raise SearchError("nothing to search for: give a ticker, account, ref, sender, date "
                          "or a mairix expression")
    return out


def _unmark(msg: bytes) -> bytes:
    """mairix puts an ``X-source-folder:`` line on top of each result; what
    is below it is the record as stored."""
    if msg.startswith(b"X-source-folder: "):
        return msg[msg.index(b"\n") + 1:]
    return msg


def _days(date: str) -> str:
    """``YYYYMMDD`` or ``YYYYMMDD-YYYYMMDD``, whole days inclusive, as mairix
    wants it (a mairix range starts at the end of its first day)."""
    from datetime import date as day, timedelta
    first, _, last = date.partition("-")
    last = last or first
    try:
        end = day(int(last[:4]), int(last[4:6]), int(last[6:8]))
        start = day(int(first[:4]), int(first[4:6]), int(first[6:8])) - timedelta(days=1)
    except ValueError:
        raise SearchError(f"bad date {date!r}: expected YYYYMMDD or YYYYMMDD-YYYYMMDD") from None
    return f"{start:%Y%m%d}-{end:%Y%m%d}"


def search(root: str | os.PathLike, expressions: list[str], progress=None) -> list[bytes]:
    """The messages matching every expression, in archive order, as stored.
    *progress*: ``progress(bytes indexed, bytes in all)`` while indexing."""
    rc = configure(root)
    if progress is None:
        _mairix(rc, [])                      # index first: searches see every record
    else:
        _index_showing(rc, root, progress)
    out = Path(rc.parent / "results.mbox")
    if out.exists():
        out.unlink()
    _mairix(rc, expressions)
    if not out.exists():
        return []
    msgs = [_unmark(m) for m in mbox.iter_file(out)]
    def key(m):
        s = mbox.stamp(m).get("x-pit-seq")
        return int(s) if s and s.isdigit() else 0
    return sorted(msgs, key=key)
