"""pit currency add CODE MINOR: define a currency."""

from __future__ import annotations

from pit.commands.common import operator


def arguments(cmd) -> None:
    sp = cmd("currency", None, "define currencies")
    cs = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = cmd("add", run_add, "define a currency and its minor unit", ["pit currency add USD 0.01"], cs)
    c.add_argument("code"); c.add_argument("minor")


def run_add(args) -> int:
    return operator(args, "Currency", f"{args.code} {args.minor}")
