"""pit orders: open orders (resting or waiting on a trigger)."""

from __future__ import annotations

from pit.commands.common import AT_HELP, at_record, emit, find_pit, known_account
from pit.query import open_orders


def arguments(cmd) -> None:
    sp = cmd("orders", run, "open orders (resting or waiting on a trigger)",
             ["pit orders --account alice", "pit orders --json | jq .ref"], json_flag=True)
    sp.add_argument("--account")
    sp.add_argument("--at", type=int, metavar="SEQ", help=AT_HELP)


def run(args) -> int:
    pit = find_pit(args.pit)
    if args.account:
        known_account(pit, args.account)
    emit(args, open_orders(pit, args.account, at_record(pit, args.at)),
         lambda r: f"{r['seq']:>7} {r['account']} {r['ref']} {r['side']} {r['remaining']} "
                   f"{r['ticker']} {r['type']}"
                   + (f" at {r['price']}" if r['price'] else "")
                   + (f" stop {r['stop']}" if r['stop'] else ""))
    return 0
