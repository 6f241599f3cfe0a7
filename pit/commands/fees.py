"""pit fees: the pit's default maker and taker fee rates."""

from __future__ import annotations

from pit.commands.common import operator


def arguments(cmd) -> None:
    sp = cmd("fees", run, "set the pit's default maker and taker fee rates",
             ["pit fees --maker 0.1% --taker 0.2%"])
    sp.add_argument("--maker", required=True); sp.add_argument("--taker", required=True)


def run(args) -> int:
    return operator(args, "Fees", f"maker {args.maker} taker {args.taker}")
