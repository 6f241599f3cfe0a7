"""pit export: records as mbox, text, CSV or JSON lines."""

from __future__ import annotations

import sys

from pit.commands.common import (RECORD_FIELDS, find_pit, known_account, known_ticker,
                                 print_json, record_row, write_mbox)
from pit.query import records


def arguments(cmd) -> None:
    sp = cmd("export", run, "records as mbox, text, CSV or JSON lines",
             ["pit export --format csv --ticker ACME > acme.csv", "pit export --json --to 10",
              "pit export --account alice --format text", "pit export --from 100 --to 200 > part.mbox"])
    sp.add_argument("--from", dest="frm", type=int, default=1, metavar="SEQ")
    sp.add_argument("--to", type=int, metavar="SEQ")
    sp.add_argument("--ticker"); sp.add_argument("--account")
    sp.add_argument("--format", choices=["mbox", "text", "csv", "json"], default="mbox")
    sp.add_argument("--json", action="store_true", help="the same as --format json")


def _matches(st: dict, ticker: str | None, account: str | None) -> bool:
    if ticker and st.get("x-pit-ticker") != ticker and st.get("x-pit-account") != f"specialist:{ticker}":
        return False
    if account:
        a = st.get("x-pit-account", "")
        if a != account and not a.startswith(account + ":"):
            return False
    return True


def run(args) -> int:
    pit = find_pit(args.pit)
    ticker = known_ticker(pit, args.ticker)[0] if args.ticker else None
    if args.account:
        known_account(pit, args.account)
    out = sys.stdout
    if args.format == "csv":
        import csv              # only for --format csv
        writer = csv.writer(out, lineterminator="\n")
    else:
        writer = None
    if writer:
        writer.writerow(RECORD_FIELDS)
    fmt = "json" if args.json else args.format
    for seq, st, msg in records(pit, args.to, args.frm):
        if not _matches(st, ticker, args.account):
            continue
        if fmt == "json":
            print_json(record_row(seq, st))
            continue
        row = list(record_row(seq, st).values())
        if fmt == "mbox":
            out.flush()
            write_mbox(sys.stdout.buffer, seq, msg)
        elif writer:
            writer.writerow(row)
        else:
            print(" ".join(str(x) for x in row[:5]) + "  " + row[6])
    out.flush()
    return 0
