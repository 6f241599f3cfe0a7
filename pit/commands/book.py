"""pit book TICKER: best bids and offers of a ticker."""

from __future__ import annotations

from pit.commands.common import AT_HELP, EXIT, CliError, at_record, find_pit, known_ticker, one_or_more
from pit.query import book_levels, specialist_state


def arguments(cmd) -> None:
    sp = cmd("book", run, "best bids and offers of a ticker",
             ["pit book ACME", "pit book ACME --depth 10 --at 300", "pit book ACME --json"],
             json_flag=True)
    sp.add_argument("ticker"); sp.add_argument("--depth", type=one_or_more, default=5)
    sp.add_argument("--at", type=int, metavar="SEQ", help=AT_HELP)


def run(args) -> int:
    pit = find_pit(args.pit)
    ticker, _ = known_ticker(pit, args.ticker)
    flt = specialist_state(pit, ticker, at_record(pit, args.at))
    if ticker not in flt.engine.tickers():
        raise CliError(f"{ticker} is not yet defined at record {args.at}", EXIT["usage"])
    b = book_levels(flt, ticker, args.depth)
    if args.json:
        import json
        print(json.dumps(b, sort_keys=True))
        return 0
    print(f"{ticker} ({b['currency']})  last {b['last'] or '-'}")
    print(f"{'orders':>6} {'bid qty':>12} {'bid':>12} | {'ask':<12} {'ask qty':<12} {'orders':<6}")
    for i in range(max(len(b["bids"]), len(b["asks"]), 1)):
        bid = b["bids"][i] if i < len(b["bids"]) else None
        ask = b["asks"][i] if i < len(b["asks"]) else None
        print(f"{bid['orders'] if bid else '':>6} {bid['qty'] if bid else '':>12} "
              f"{bid['price'] if bid else '':>12} | {ask['price'] if ask else '':<12} "
              f"{ask['qty'] if ask else '':<12} {ask['orders'] if ask else '':<6}".rstrip())
    return 0
