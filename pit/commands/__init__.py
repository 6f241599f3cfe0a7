"""The ``pit`` commands: one module a command (or a small family of them),
each with its arguments and its ``run()`` side by side, loaded by name.

A command module has ``arguments(cmd)``, which declares its command(s)
with ``cmd(name, run, help, examples, parent=..., json_flag=...)`` and adds
their arguments; ``cmd`` returns the command's parser.  :data:`COMMANDS`
names, in the order ``pit --help`` lists them, the module of each command.
"""

from __future__ import annotations

from pit.commands.common import EXIT

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

__all__ = ["COMMANDS", "build_parser"]

# command -> its module under pit/commands/, in the order of `pit --help`
COMMANDS = {
    # operator
    "init": "init", "currency": "currency", "instrument": "instrument", "fees": "fees",
    "rules": "rules",
    "member": "member", "deposit": "funds", "withdraw": "funds", "notarize": "notarize",
    "run": "run", "start": "daemon", "daemon": "daemon", "stop": "daemon",
    # trader
    "key": "key", "order": "order", "transfer": "transfer", "orders": "orders",
    "fills": "fills", "balances": "balances", "positions": "balances",
    # auditor
    "audit": "audit", "verify": "verify", "show": "show", "export": "export",
    "rejects": "rejects",
    # member
    "replay": "replay", "book": "book", "chart": "chart", "trades": "trades",
    "search": "search", "mirror": "mirror", "mailman": "mailman",
}


def module(name: str):
    """The module of command *name* (pit.commands.<module>)."""
    import importlib
    return importlib.import_module(f"pit.commands.{COMMANDS[name]}")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join("  " + l for l in lines)


def _command_named(argv: list[str]) -> str | None:
    """The command word of *argv* when it is plain to see: the first
    argument, or the one after ``--pit DIR`` or ``--pit=DIR``; None when
    anything else comes first (an option, ``--help``, an abbreviation)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--pit":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None
            i += 2
        elif word.startswith("--pit="):
            i += 1
        elif word.startswith("-"):
            return None
        else:
            return word
    return None


def _parser_class():
    import argparse

    class Parser(argparse.ArgumentParser):
        """pit(1) errors are one line: no usage line before the error."""

        usage_exit = EXIT["usage"]     # a command may set its own (pit mailman deliver: 64)

        def error(self, message):
            self.exit(self.usage_exit, f"{self.prog}: {message} (see {self.prog} --help)\n")

        def parse_args(self, args=None, namespace=None):
            """As argparse's, but words no parser took are the error of the
            command they were given to (``pit book: unrecognized ...``)."""
            ns, extras = self.parse_known_args(args, namespace)
            if extras:
                parser = self
                while True:             # down to the (sub)command the line named
                    sub = next((a for a in parser._actions
                                if isinstance(a, argparse._SubParsersAction)), None)
                    name = getattr(ns, sub.dest, None) if sub else None
                    if name not in getattr(sub, "choices", {}):
                        break
                    parser = sub.choices[name]
                parser.error(f"unrecognized arguments: {' '.join(extras)}")
            return ns

    return Parser


def build_parser(only: str | None = None) -> "argparse.ArgumentParser":
    """The ``pit`` command's parser: every command's, or with *only*, the
    name of a command, the commands of its module alone (loaded by name).
    A command line that names *only* parses the same either way: the same
    result, the same usage and help text, the same errors
    (tests/test_cli_parse.py)."""
    import argparse
    p = _parser_class()(
        prog="pit", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A trading pit whose record is a mailing list archive.",
        epilog=_examples("pit init demo-pit --name demo", "export PIT_DIR=demo-pit",
                         "pit order buy 100 ACME at 12.50 --account alice --notarize",
                         "pit book ACME", "pit audit") +
        "\n\nexit status: 0 ok, 1 failure, 2 usage error, 3 pit not found, 4 key problem, "
        "5 refused by the notary\nsee pit(1): docs/pit.1.md")
    p.add_argument("--pit", metavar="DIR", help="the pit directory (default $PIT_DIR or .)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name, func, help, examples=(), parent=sub, json_flag=False):
        sp = parent.add_parser(name, help=help, description=help,
                               formatter_class=argparse.RawDescriptionHelpFormatter,
                               epilog=_examples(*examples) if examples else None)
        sp.set_defaults(func=func)
        sp.add_argument("--pit", metavar="DIR", default=argparse.SUPPRESS,
                        help="the pit directory (default $PIT_DIR or .)")
        if json_flag:
            sp.add_argument("--json", action="store_true", help="one JSON object a line")
        return sp

    for mod in dict.fromkeys(module(name) for name in ([only] if only in COMMANDS else COMMANDS)):
        mod.arguments(cmd)
    return p


def _plain_replay(argv: list[str]):
    """What the parser makes of a plain ``pit [--pit DIR] replay FILTER
    [ARG...]`` (no option after the command, nothing starting with "-"),
    without importing argparse or building a parser: the incremental run
    ``pit replay specialist T | pit-specialist T`` that bench.tickers times
    is mostly start-up (docs/pit-book.md, "Start-up");
    tests/test_cli_parse.py holds it to the parser.  None for any other
    command line, which goes to the parser."""
    words = list(argv)
    pit = None
    if words[:1] == ["--pit"] and len(words) > 1:
        pit, words = words[1], words[2:]
    elif words[:1] and words[0].startswith("--pit="):
        pit, words = words[0][len("--pit="):], words[1:]
    if words[:1] != ["replay"] or len(words) < 2 or any(w.startswith("-") for w in words) \
            or (pit is not None and pit.startswith("-")):
        return None
    from types import SimpleNamespace
    return SimpleNamespace(pit=pit, command="replay", func=module("replay").run, filter=words[1],
                           args=words[2:], from_start=False)

