"""pit deposit, pit withdraw: money and instruments in and out of an account."""

from __future__ import annotations

from pit.commands.common import find_pit, known_account, known_asset, operator


def arguments(cmd) -> None:
    for name, func, word in (("deposit", run_deposit, "to"), ("withdraw", run_withdraw, "from")):
        sp = cmd(name, func, f"record a {name} (executed by the transfers filter)",
                 [f"pit {name} 1000.00 USD alice", f"pit {name} 50 ACME bob"])
        sp.add_argument("amount"); sp.add_argument("asset", type=str.upper); sp.add_argument("account")


def _funds_names(args) -> None:
    pit = find_pit(args.pit)
    args.asset = known_asset(pit, args.asset)
    known_account(pit, args.account)


def run_deposit(args) -> int:
    _funds_names(args)
    return operator(args, "Deposit", f"{args.amount} {args.asset} to {args.account}")


def run_withdraw(args) -> int:
    _funds_names(args)
    return operator(args, "Withdrawal", f"{args.amount} {args.asset} from {args.account}")
