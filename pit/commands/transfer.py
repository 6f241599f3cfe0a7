"""pit transfer AMOUNT ASSET TO: sign and send a transfer between one's accounts."""

from __future__ import annotations

from pit.commands.common import find_pit, known_account, known_asset
from pit.commands.sending import send, trader_opts


def arguments(cmd) -> None:
    sp = cmd("transfer", run, "sign and send a transfer between your accounts",
             ["pit transfer 100.00 USD alice:ACME --account alice",
              "pit transfer 50.00 USD alice --account alice:ACME"])
    sp.add_argument("amount"); sp.add_argument("asset"); sp.add_argument("to")
    trader_opts(sp)


def run(args) -> int:
    pit = find_pit(args.pit)
    asset = known_asset(pit, args.asset)
    known_account(pit, args.to)
    return send(args, pit, "Transfer", f"{args.amount} {asset} to {args.to}")
