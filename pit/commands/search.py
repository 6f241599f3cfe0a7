"""pit search: search the archive with mairix."""

from __future__ import annotations

import sys

from pit import mbox
from pit.commands.common import (BARS, EXIT, CliError, end_progress, find_pit, known_account,
                                 known_ticker, print_json, progress, record_row, write_mbox)


def arguments(cmd) -> None:
    sp = cmd("search", run, "search the archive with mairix (exit 1: nothing found)",
             ["pit search --ticker ACME --account alice", "pit search --ref 17 --account alice",
              "pit search --sender bob@example.org --format mbox | mutt -f /dev/stdin",
              "pit search s:seal", "pit search --ticker ACME --json"], json_flag=True)
    sp.add_argument("expressions", nargs="*", help="more mairix expressions (all must match)")
    sp.add_argument("--ticker"); sp.add_argument("--account"); sp.add_argument("--ref")
    sp.add_argument("--sender"); sp.add_argument("--date", metavar="YYYYMMDD[-YYYYMMDD]")
    sp.add_argument("--format", choices=["text", "mbox"], default="text")


def run(args) -> int:
    from pit import search
    pit = find_pit(args.pit)
    if args.ticker:
        known_ticker(pit, args.ticker)
    if args.account:
        known_account(pit, args.account)
    try:
        exprs = search.terms(args.ticker and args.ticker.upper(), args.account, args.ref,
                             args.sender, args.date, args.expressions)
        show = progress("indexing", unit="B")
        found = search.search(pit.root, exprs, progress=show if BARS else None)
        end_progress()
    except search.SearchError as e:
        raise CliError(str(e), EXIT["usage"]) from None
    if args.json:
        for msg in found:
            st = mbox.stamp(msg)
            seq = st.get("x-pit-seq", "")
            print_json(record_row(int(seq) if seq.isdigit() else 0, st))
    elif args.format == "mbox":
        for msg in found:
            write_mbox(sys.stdout.buffer, 0, msg)
        sys.stdout.flush()
    else:
        for msg in found:
            st = mbox.stamp(msg)
            print(f"{st.get('x-pit-seq', '-'):>7} {st.get('x-pit-kind', '')} "
                  f"{st.get('x-pit-account', '')} {st.get('x-pit-ref', '')}  "
                  f"{st.get('x-pit-request', '')}")
    if not found:
        raise CliError("no record matches")
    return 0
