"""pit rules N: move the pit to rules N (pit.kinds.rules), from this record on."""

from __future__ import annotations

from pit.commands.common import operator


def arguments(cmd) -> None:
    sp = cmd("rules", run, "move the pit to newer rules (2: the notary checks transfers' "
             "destinations and assets; specialists keep their own tickers only)",
             ["pit rules 2"])
    sp.add_argument("version", metavar="N", help="the rules' number (forward only)")


def run(args) -> int:
    return operator(args, "Rules", args.version)
