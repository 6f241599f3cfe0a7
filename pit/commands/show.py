"""pit show SEQ[-SEQ]: print records as mbox."""

from __future__ import annotations

import sys

from pit import mbox
from pit.archive import Archive
from pit.commands.common import EXIT, CliError, find_pit, print_json, record_row, write_mbox


def arguments(cmd) -> None:
    sp = cmd("show", run, "print records as mbox (--json: one summary a record)",
             ["pit show 42", "pit show 40-50 | grep X-Pit-Request", "pit show 1-10 --json"],
             json_flag=True)
    sp.add_argument("range", metavar="SEQ[-SEQ]")


def _range(text: str) -> tuple[int, int]:
    a, _, b = text.partition("-")
    try:
        first, last = int(a), int(b or a)
    except ValueError:
        raise CliError(f"bad record range {text!r}: expected SEQ or SEQ-SEQ", EXIT["usage"]) from None
    if first < 1 or last < first:
        raise CliError(f"bad record range {text!r}", EXIT["usage"])
    return first, last


def run(args) -> int:
    pit = find_pit(args.pit)
    first, last = _range(args.range)
    out = sys.stdout.buffer
    n = 0
    for seq, msg in Archive(pit.root).read(first, last):
        if args.json:
            print_json(record_row(seq, mbox.stamp(msg)))
        else:
            write_mbox(out, seq, msg)
        n += 1
    if not n:
        raise CliError(f"no records {args.range} (the archive ends at {Archive(pit.root).last_seq()})",
                       EXIT["usage"])
    return 0
