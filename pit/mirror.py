"""Mirror a pit's archive with rsync, and tell whether a replica is the source.

A member keeps a replica of the archive: ``pit mirror SRC DST``.  SRC is a
pit directory, a replica, or an archive folder, given as a local path, an
rsync remote (``host:/srv/pits/demo``, over ssh or ``RSYNC_RSH``) or an
rsync daemon URL (``rsync://host/module/demo``).  Whatever the form, rsync
is first asked what SRC holds (``--list-only``): its ``archives/`` folder,
or SRC itself when it is one (it holds ``index``).  Then only the archive
is copied, by name: ``index`` and the ``NNNNNN.mbox`` volumes, every other
name excluded.  So a replica never holds a private key, ``pit.conf`` or any
secret of the pit, whatever lies beside the archive at the source; the
archive's genesis and member records carry the public keys an audit needs.

rsync's delta transfer sends only what changed (volumes only grow, so an
update costs the new records).  The source's notary may append while rsync
copies, so the index is copied first, under another name, then the
volumes; the volumes are cut back to what that index says (the records
appended meanwhile come with the next update) and only then is the copied
index put in place.  So a replica is always one whole state of the source:
its index never promises records its volumes lack, and its volumes hold
nothing the index does not name.  :func:`compare` then asks rsync again, with
``--checksum`` and ``--dry-run``, which files differ between the source
and the replica (both ends hash every byte): the replica is called
identical only when that list is empty.

An update is checked before it is kept: the archive the replica verified
is hard-linked aside first (:func:`keep_verified`); when the new copy's
log does not extend the head the replica remembers, the new copy is moved
to ``DST/refused-WHEN/`` and the verified one put back (:func:`put_back`),
with the first record where they differ (:func:`first_difference`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["MirrorError", "mirror", "compare", "grown", "source_archive", "ARCHIVE_NAMES",
           "keep_verified", "first_difference", "put_back", "strays"]

# Everything a replica copies; every other name is excluded.
ARCHIVE_NAMES = ["--include=/index", "--include=/[0-9][0-9][0-9][0-9][0-9][0-9].mbox",
                 "--exclude=*"]
_VOLUMES_ONLY = ["--include=/[0-9][0-9][0-9][0-9][0-9][0-9].mbox", "--exclude=*"]
_INDEX_ONLY = ["--include=/index", "--exclude=*"]


class MirrorError(Exception):
    """rsync is missing or failed, or the source holds no archive."""


def _rsync(rsync: str = "rsync") -> str:
    exe = shutil.which(rsync)
    if exe is None:
        raise MirrorError("rsync is not installed (make install does it: scripts/sysdeps.sh)")
    return exe


def _run(args: list[str]) -> str:
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise MirrorError(f"{' '.join(args[-2:])}: {p.stderr.strip() or f'rsync exit {p.returncode}'}")
    return p.stdout


def _is_remote(path: str) -> bool:
    return path.startswith("rsync://") or ":" in path.split("/")[0]


def source_archive(src: str, rsync: str = "rsync") -> str:
    """The archive folder of *src* as an rsync source, with a trailing
    slash: ``SRC/archives/`` when SRC holds one, SRC itself when it holds
    an ``index``.  Asks rsync (one listing), so it works for every form of
    source.  Raises :class:`MirrorError` when SRC holds no archive."""
    base = src.rstrip("/") + "/"
    if not _is_remote(src) and not Path(src).is_dir():
        raise MirrorError(f"{src}: no such directory")
    names = {}
    for line in _run([_rsync(rsync), "--list-only", base]).splitlines():
        parts = line.split(None, 4)
        if len(parts) == 5:
            names[parts[4]] = parts[0][:1]
    if names.get("archives") == "d":
        return base + "archives/"
    if names.get("index") == "-":
        return base
    raise MirrorError(f"{src}: no pit archive there (neither archives/ nor an index)")


def mirror(src: str, dst: str | os.PathLike, rsync: str = "rsync") -> list[str]:
    """Bring the replica at *dst* (a folder; its ``archives/`` is made) up to
    date with *src*: the archive's index and volumes only.  Returns rsync's
    list of transferred files.  O(new bytes) over the wire."""
    exe = _rsync(rsync)
    dst = Path(dst)
    (dst / "archives").mkdir(parents=True, exist_ok=True)
    source, target = source_archive(src, rsync), str(dst / "archives") + "/"
    index, incoming = dst / "archives" / "index", dst / "archives" / ".index.incoming"
    if index.exists():
        shutil.copy2(index, incoming)      # so an unchanged index is not sent again
    out = _run([exe, "-a", "--checksum", "--out-format=%n", source + "index", str(incoming)])
    changed = [ln for ln in out.splitlines() if ln and not ln.endswith("/")]
    out = _run([exe, "-a", "--out-format=%n", "--delete-after", *_VOLUMES_ONLY, source, target])
    changed = [ln for ln in out.splitlines() if ln and not ln.endswith("/")] + changed
    _cut_to(incoming)
    os.replace(incoming, index)
    return changed


def _cut_to(index: Path) -> None:
    """Cut the volumes beside *index* to the bytes it gives them and remove
    the volumes it does not name (appended at the source while rsync ran).
    An index that cannot be read is left for the audit to refuse."""
    try:
        sizes = {parts[0]: int(parts[4]) for parts in
                 (line.split() for line in index.read_text("ascii").splitlines())
                 if len(parts) == 5 and parts[4].isdigit()}
    except (OSError, UnicodeDecodeError):
        return
    for vol in index.parent.iterdir():
        if not re.fullmatch(r"[0-9]{6}\.mbox", vol.name):
            continue
        if vol.name not in sizes:
            vol.unlink()
        elif vol.stat().st_size > sizes[vol.name]:
            # a cut copy, not a truncate: the volume may be a hard link to
            # the verified copy kept aside (keep_verified)
            cut = vol.with_name(f".{vol.name}.cut")
            with open(vol, "rb") as whole, open(cut, "wb") as out:
                left = sizes[vol.name]
                while left:
                    chunk = whole.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    out.write(chunk)
                    left -= len(chunk)
            os.replace(cut, vol)


def compare(src: str | os.PathLike, dst: str | os.PathLike, rsync: str = "rsync") -> list[str]:
    """Differences between the source's archive and the replica's, one
    line each (empty: identical), by rsync ``--checksum --dry-run``: every
    byte of both is hashed, at each end.  O(archive bytes)."""
    source = source_archive(str(src), rsync)
    target = str(Path(dst) / "archives") + "/"
    out = _run([_rsync(rsync), "-a", "--dry-run", "--checksum", "--delete",
                "--out-format=%i %n", *ARCHIVE_NAMES, source, target])
    diffs = []
    for line in out.splitlines():
        flags, _, name = line.partition(" ")
        name = name.strip()
        if not name or name.endswith("/"):
            continue
        if flags.startswith("*deleting"):
            diffs.append(f"{name}: in the replica but not in the source")
        elif "+++++++" in flags:
            diffs.append(f"{name}: missing from the replica")
        else:
            diffs.append(f"{name}: differs from the source")
    return diffs


def grown(src: str | os.PathLike, dst: str | os.PathLike, diffs: list[str],
          rsync: str = "rsync") -> tuple[int, int] | None:
    """When every difference in *diffs* (:func:`compare`) is the source's
    notary having appended records since the replica was copied (its index,
    the replica's last volume, volumes after it), ``(the replica's last
    record, the source's now)``; else None.  Reads the source's index (one
    small rsync): it must extend the replica's line for line.  The grown
    volume's bytes are not compared here: the replica's log check (chain,
    digests, seals) covers every one of them.  O(volumes)."""
    import tempfile
    mine = _index_lines(Path(dst) / "archives" / "index")
    with tempfile.TemporaryDirectory() as tmp:
        _run([_rsync(rsync), "-a", source_archive(str(src), rsync) + "index", tmp + "/index"])
        theirs = _index_lines(Path(tmp) / "index")
    if not mine or not theirs or len(theirs) < len(mine) or theirs == mine:
        return None
    last, now = mine[-1], theirs[len(mine) - 1]
    if theirs[:len(mine) - 1] != mine[:-1] or now[:2] != last[:2] \
            or now[2] < last[2] or now[4] < last[4]:
        return None
    allowed = {"index", last[0]} | {line[0] for line in theirs[len(mine):]}
    if any(d.split(": ", 1)[0] not in allowed or d.endswith("not in the source") for d in diffs):
        return None
    return int(last[2]), int(theirs[-1][2])


def _index_lines(path: Path) -> list[tuple] | None:
    """An index's lines as (volume, first, last, count, bytes); None when
    it does not read."""
    try:
        lines = [line.split() for line in path.read_text("ascii").splitlines()
                 if line and not line.startswith("#")]
        return [(v, int(a), int(b), int(c), int(d)) for v, a, b, c, d in lines]
    except (OSError, UnicodeDecodeError, ValueError):
        return None


_NAME = re.compile(r"^(index|[0-9]{6}\.mbox)$")


def keep_verified(dst: str | os.PathLike) -> Path | None:
    """Before an update: hard-link the replica's archive (index and volumes)
    into ``DST/.verified/archives``.  rsync writes each changed file anew and
    renames it into place, so the links keep the bytes the replica
    verified, at no cost in space.  None when there is nothing yet.
    O(files)."""
    a = Path(dst) / "archives"
    if not (a / "index").exists():
        return None
    snap = Path(dst) / ".verified"
    if snap.exists():
        shutil.rmtree(snap)
    (snap / "archives").mkdir(parents=True)
    for name in os.listdir(a):
        if _NAME.match(name):
            try:
                os.link(a / name, snap / "archives" / name)
            except OSError:
                shutil.copy2(a / name, snap / "archives" / name)
    return snap


def first_difference(old_root: str | os.PathLike, new_root: str | os.PathLike) -> str:
    """The first record where the archive at *new_root* differs from the one
    at *old_root* (both pit-like directories), as a sentence.  O(archive)."""
    from pit.archive import Archive, record_hash
    old, new = Archive(old_root).read(), Archive(new_root).read()
    seq = 0
    for a in old:
        b = next(new, None)
        seq = a[0]
        if b is None:
            return (f"the new copy ends at record {seq - 1}; the verified copy went on to "
                    f"record {Archive(old_root).last_seq()}")
        if record_hash(a[1]) != record_hash(b[1]):
            return (f"record {seq} is the first that differs from the verified copy "
                    f"(record hash {record_hash(b[1])[:16]}..., verified {record_hash(a[1])[:16]}...)")
    return f"the verified copy's records 1-{seq} are all in the new copy unchanged"


def put_back(dst: str | os.PathLike, snap: Path) -> Path:
    """After a refused update: the copy rsync brought goes to
    ``DST/refused-WHEN/archives`` for inspection and the verified one back
    in place.  Returns where the refused copy is."""
    import time
    dst = Path(dst)
    refused = dst / f"refused-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    refused.mkdir()
    os.rename(dst / "archives", refused / "archives")
    os.rename(snap / "archives", dst / "archives")
    shutil.rmtree(snap)
    return refused


def strays(dst: str | os.PathLike) -> list[str]:
    """Files in the replica's ``archives/`` that are not the archive (an
    older ``pit mirror`` copied whole pit directories there)."""
    d = Path(dst) / "archives"
    keep = re.compile(r"^(index|[0-9]{6}\.mbox|quarantine)$")
    return sorted(n for n in os.listdir(d) if not keep.match(n)) if d.is_dir() else []
