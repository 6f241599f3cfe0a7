"""pit deposit, pit withdraw: money and instruments in and out of an account."""

from __future__ import annotations

from pit.commands.common import EXIT, CliError, find_pit, known_account, known_asset, operator


def arguments(cmd) -> None:
    for name, func, word in (("deposit", run_deposit, "to"), ("withdraw", run_withdraw, "from")):
        sp = cmd(name, func, f"record a {name} (executed by the transfers filter)",
                 [f"pit {name} 1000.00 USD alice", f"pit {name} 50 ACME bob"])
        sp.add_argument("amount"); sp.add_argument("asset", type=str.upper); sp.add_argument("account")


def _funds_names(args) -> None:
    pit = find_pit(args.pit)
    args.asset = known_asset(pit, args.asset)
    known_account(pit, args.account)
    if ":" in args.account:         # the transfers filter would reject it: 'unknown account'
        raise CliError(f"{args.account} is a trading or fee account (its specialist holds it): "
                       "deposits and withdrawals are of plain accounts; pit transfer moves "
                       "funds in and out", EXIT["usage"])


def run_deposit(args) -> int:
    _funds_names(args)
    return operator(args, "Deposit", f"{args.amount} {args.asset} to {args.account}")


def run_withdraw(args) -> int:
    _funds_names(args)
    return operator(args, "Withdrawal", f"{args.amount} {args.asset} from {args.account}")
