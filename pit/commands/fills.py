"""pit fills --account ACCOUNT: the trades an account took part in."""

from __future__ import annotations

from pit.commands.common import AT_HELP, at_record, emit, find_pit, known_account
from pit.query import trade_text, trades


def arguments(cmd) -> None:
    sp = cmd("fills", run, "trades an account took part in",
             ["pit fills --account alice"], json_flag=True)
    sp.add_argument("--account", required=True)
    sp.add_argument("--at", type=int, metavar="SEQ", help=AT_HELP)


def run(args) -> int:
    pit = find_pit(args.pit)
    known_account(pit, args.account)
    # a trading account (bob:ACME) took part in its owner's trades of its ticker
    owner, _, ticker = args.account.partition(":")
    emit(args, trades(pit, ticker or None, account=owner, at=at_record(pit, args.at)),
         trade_text)
    return 0
