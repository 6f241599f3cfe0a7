"""pit chart TICKER: draw a ticker's price, volume and depth chart."""

from __future__ import annotations

from pit.commands.common import EXIT, CliError, at_record, find_pit, known_ticker, one_or_more, plural
from pit.query import specialist_state


def arguments(cmd) -> None:
    sp = cmd("chart", run, "draw a ticker's price, volume and depth chart (PNG or SVG)",
             ["pit chart ACME", "pit chart ACME --at 300 -o acme-300.svg",
              "pit chart BTC --format svg --depth 100"], json_flag=True)
    sp.add_argument("ticker"); sp.add_argument("--at", type=int, metavar="SEQ",
                                               help="as of record SEQ (the book replayed to it)")
    sp.add_argument("-o", "--output", metavar="FILE", help="default TICKER.png (or .svg)")
    sp.add_argument("--format", choices=["png", "svg"], default="png",
                    help="without -o: the file's kind")
    sp.add_argument("--depth", type=one_or_more, default=50, help="price levels a side in the depth chart")


def run(args) -> int:
    from pit import chart
    pit = find_pit(args.pit)
    ticker, _ = known_ticker(pit, args.ticker)
    at_record(pit, args.at)
    if args.at is not None and ticker not in specialist_state(pit, ticker, args.at).engine.tickers():
        raise CliError(f"{ticker} is not yet defined at record {args.at}", EXIT["usage"])
    out = args.output or f"{ticker}.{args.format}"
    try:
        drawn = chart.draw(pit, ticker, out, at=args.at, depth=args.depth)
    except ValueError as e:
        raise CliError(str(e), EXIT["usage"]) from None
    if args.json:
        import json
        print(json.dumps(drawn, sort_keys=True))
    else:
        print(f"{drawn['path']}: {ticker} price and volume ({plural(drawn['trades'], 'trade')}), "
              f"depth ({plural(drawn['bids'], 'bid level')}, {plural(drawn['asks'], 'ask level')})")
    return 0
