"""pit replay FILTER ARGS: a filter's input as mbox, its checkpoint, then newer records."""

from __future__ import annotations

from pit import mbox, ops
from pit.archive import Archive
from pit.commands.common import BARS, EXIT, CliError, end_progress, find_pit, known_filter, known_filter_names, progress
from pit.pitdir import Pit, PitError


def arguments(cmd) -> None:
    sp = cmd("replay", run, "a filter's input as mbox: its checkpoint, then newer records",
             ["pit replay specialist ACME --from-start | pit-specialist ACME | grep ^trade",
              "pit replay transfers --from-start | pit-transfers > out.mbox"])
    sp.add_argument("filter"); sp.add_argument("args", nargs="*")
    sp.add_argument("--from-start", action="store_true", help="ignore checkpoints")


def run(args) -> int:
    pit = find_pit(args.pit)
    known_filter(args.filter)
    try:
        cls = ops.filter_class(args.filter)
        flt = cls(args.args)
    except (PitError, ValueError) as e:
        raise CliError(str(e), EXIT["usage"]) from None
    if args.filter == "specialist" and (args.from_start or not _has_checkpoint(pit, flt.name)):
        known_filter_names(pit, args.filter, args.args)  # a ticker run before is known: no archive scan
    out = mbox.stdout_writer()
    mbox.widen_pipe(out)
    show = progress("replay")
    total = Archive(pit.root).last_seq() if BARS else None    # on a terminal only
    if total:
        show(0, total)
    try:
        for seq, piece in ops.replay_pieces(pit, flt, from_start=args.from_start):
            out.write(piece)
            if total and seq:                   # how far into the archive
                show(seq, total)
        out.flush()
    except BrokenPipeError:
        mbox.drop_stdout()
    end_progress()
    return 0


def _has_checkpoint(pit: Pit, name: str) -> bool:
    """Whether ``checkpoints/index`` names filter *name* (read, not the archive)."""
    try:
        text = (pit.checkpoints / "index").read_text()
    except OSError:
        return False
    slug = ops.slug(name)
    return any(line.split(" ", 1)[0] == slug for line in text.splitlines())
