"""pit instrument add TICKER CURRENCY: define an instrument."""

from __future__ import annotations

from pit import query
from pit.commands.common import EXIT, CliError, find_pit, operator


def arguments(cmd) -> None:
    sp = cmd("instrument", None, "define instruments")
    cs = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = cmd("add", run_add, "define an instrument: ticker, currency, tick and lot",
            ["pit instrument add ACME USD --tick 0.01 --lot 1",
             "pit instrument add BTC EUR --tick 0.5 --lot 0.1 --maker 0.05% --taker 0.1%"], cs)
    c.add_argument("ticker"); c.add_argument("currency")
    c.add_argument("--tick", required=True); c.add_argument("--lot", required=True)
    c.add_argument("--maker"); c.add_argument("--taker")


def run_add(args) -> int:
    reg = query.registry(find_pit(args.pit))
    if args.currency.upper() not in reg.currencies:
        known = ", ".join(sorted(reg.currencies)) or "none yet: pit currency add CODE MINOR"
        raise CliError(f"unknown currency {args.currency} (this pit has {known})", EXIT["usage"])
    value = f"{args.ticker} {args.currency} tick {args.tick} lot {args.lot}"
    if args.maker or args.taker:
        if not (args.maker and args.taker):
            raise CliError("give both --maker and --taker", EXIT["usage"])
        value += f" maker {args.maker} taker {args.taker}"
    return operator(args, "Instrument", value)
