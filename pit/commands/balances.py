"""pit balances, pit positions: balances of every asset, per account."""

from __future__ import annotations

from pit.commands.common import AT_HELP, at_record, emit, find_pit, known_account
from pit.query import positions


def arguments(cmd) -> None:
    for name in ("balances", "positions"):
        sp = cmd(name, run, "balances of every asset, per account",
                 [f"pit {name} --account alice", f"pit {name} --at 500 --json"], json_flag=True)
        sp.add_argument("--account", required=(name == "balances"))
        sp.add_argument("--at", type=int, metavar="SEQ", help=AT_HELP)


def run(args) -> int:
    pit = find_pit(args.pit)
    if args.account:
        known_account(pit, args.account)
    emit(args, positions(pit, args.account, at_record(pit, args.at)),
         lambda r: f"{r['account']:<20} {r['amount']:>18} {r['asset']}")
    return 0
