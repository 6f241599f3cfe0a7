"""Mirror a pit's archive with rsync, and tell whether a replica is the source.

A member keeps a replica of the archive: ``pit mirror SRC DST``.  rsync's
delta transfer sends only what changed (volumes only grow, so an update
costs the new records).  The volumes go first and the index last, so a
reader of the replica never sees an index that promises records its volumes
do not have yet.  SRC may be a local path or an rsync remote (``host:pit``).

A replica is checked against its source with :func:`compare` (same records,
same bytes: per-volume SHA-256), and on its own with ``pit audit DST``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["MirrorError", "mirror", "compare"]


class MirrorError(Exception):
    """rsync is missing or failed."""


def _archives(path: str) -> str:
    """The archive folder of a pit path (local or remote), with a trailing slash."""
    p = path.rstrip("/")
    if ":" not in p.split("/")[0] and Path(p, "archives").is_dir():
        p += "/archives"
    return p + "/"


def mirror(src: str, dst: str | os.PathLike, rsync: str = "rsync") -> list[str]:
    """Bring the replica at *dst* (a folder; its ``archives/`` is made) up to
    date with *src*.  Returns rsync's list of transferred files."""
    exe = shutil.which(rsync)
    if exe is None:
        raise MirrorError("rsync is not installed (make install does it: scripts/sysdeps.sh)")
    dst = Path(dst)
    (dst / "archives").mkdir(parents=True, exist_ok=True)
    source, target = _archives(src), str(dst / "archives") + "/"
    changed: list[str] = []
    for args in (["--exclude", "index", "--exclude", "index.tmp", "--exclude", "*.lock"],
                 ["--checksum", "--include", "index", "--exclude", "*"]):
        p = subprocess.run([exe, "-a", "--delete-after", "--out-format=%n", *args, source, target],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise MirrorError(f"rsync {source} {target}: {p.stderr.strip()}")
        changed += [ln for ln in p.stdout.splitlines() if ln and not ln.endswith("/")]
    return changed


def _volume_digests(arch: Path) -> dict[str, str]:
    out = {}
    for v in sorted(arch.glob("0*.mbox")):
        h = hashlib.sha256()
        with open(v, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        out[v.name] = h.hexdigest()
    idx = arch / "index"
    out["index"] = hashlib.sha256(idx.read_bytes()).hexdigest() if idx.exists() else "missing"
    return out


def compare(src: str | os.PathLike, dst: str | os.PathLike) -> list[str]:
    """Differences between a local source archive and a replica, one line
    each (empty: identical).  O(archive bytes)."""
    a = Path(_archives(str(src)).rstrip("/"))
    b = Path(_archives(str(dst)).rstrip("/"))
    da, db = _volume_digests(a), _volume_digests(b)
    diffs = []
    for name in sorted(set(da) | set(db)):
        if name not in db:
            diffs.append(f"{name}: missing from the replica")
        elif name not in da:
            diffs.append(f"{name}: in the replica but not in the source")
        elif da[name] != db[name]:
            diffs.append(f"{name}: differs (source {da[name][:16]}, replica {db[name][:16]})")
    return diffs
