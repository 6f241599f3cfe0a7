"""pit order WORDS: sign and send an order."""

from __future__ import annotations

from pit import message
from pit.commands.common import EXIT, CliError, find_pit, known_ticker
from pit.commands.sending import send, trader_opts


def arguments(cmd) -> None:
    sp = cmd("order", run, "sign and send an order",
             ["pit order buy 100 ACME at 12.50 --account alice",
              "pit order sell 10 ACME market --account bob",
              "pit order sell 10 ACME stop 11.00 --account bob",
              "pit order sell 10 ACME stop 11 limit 10.9 --account bob",
              "pit order sell 5 ACME take-profit 14 --account bob",
              "pit order buy 10 ACME ioc 12.50 --account alice --ref 7",
              "pit order cancel 7 --account alice",
              "pit order modify 7 qty 90 price 12.45 --account alice",
              "pit order buy 1 ACME at 12.5 --account alice --send stdout | less"])
    sp.add_argument("words", nargs="+", help="the order, e.g. buy 100 ACME at 12.50")
    trader_opts(sp)


def run(args) -> int:
    pit = find_pit(args.pit)
    words = " ".join(args.words)
    if ":" in (args.account or ""):
        owner = args.account.partition(":")[0]
        raise CliError(f"--account {args.account}: orders are placed by a plain account "
                       f"({owner}); its trading account {owner}:TICKER holds their funds",
                       EXIT["usage"])
    try:
        o = message.parse_order(words)
    except message.MessageError as e:
        raise CliError(f"bad order {words!r}: {e.reason}", EXIT["usage"]) from None
    if isinstance(o, message.Order):
        _, reg = known_ticker(pit, o.ticker)
        req = message.Request(pit.name, args.account or "x", "x", o)
        try:
            o = message.resolve(req, reg.instruments, reg.currencies).instruction
        except message.MessageError as e:
            raise CliError(f"bad order {words!r}: {e.reason}", EXIT["usage"]) from None
    return send(args, pit, "Order", message.instruction_text(o))
