"""pit trades: the trades reported by the specialists."""

from __future__ import annotations

from pit.commands.common import AT_HELP, at_record, emit, find_pit, known_ticker
from pit.query import trade_text, trades


def arguments(cmd) -> None:
    sp = cmd("trades", run, "trades reported by the specialists",
             ["pit trades --ticker ACME", "pit trades --json | tail -1"], json_flag=True)
    sp.add_argument("--ticker"); sp.add_argument("--at", type=int, metavar="SEQ", help=AT_HELP)


def run(args) -> int:
    pit = find_pit(args.pit)
    ticker = known_ticker(pit, args.ticker)[0] if args.ticker else None
    emit(args, trades(pit, ticker, at_record(pit, args.at)), trade_text)
    return 0
