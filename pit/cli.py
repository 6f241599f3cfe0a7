"""The ``pit`` command: one subcommand a job, composable in pipes.

The commands are modules of pit.commands (one a command, its arguments
beside its run()); their queries are pit.query, their operations pit.ops.
This file is the entry point: it parses the command line, runs the
command, and turns errors into one line and an exit status (docs/pit.1.md):

    0  ok
    1  failure: the audit failed, a check did not pass, a filter rejected
    2  usage error: bad arguments, a malformed order, an unknown ticker
    3  pit not found, or not a pit
    4  key problem: no such key, no secret key, gpg refused
    5  refused by the notary (the reason is printed)
   64  pit mailman deliver: its command line is wrong (EX_USAGE: the MTA bounces)
   75  pit mailman deliver: try again later (EX_TEMPFAIL: the MTA retries)

The pit is ``--pit DIR``, else ``$PIT_DIR``, else the current directory.
Queries print one line a row, or one JSON object a line with ``--json``.
"""

from __future__ import annotations

import os
import sys

from pit import message
from pit.archive import ArchiveError
from pit.commands import build_parser, _command_named, _plain_replay
from pit.commands.common import EXIT, CliError, gnupghome
from pit.pitdir import PitError
from pit.units import UnitError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _plain_replay(argv)
    if args is None:
        parser = build_parser(_command_named(argv))
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:
            return int(e.code or 0)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT["usage"]
    if not hasattr(args, "pit"):
        args.pit = None
    if args.command in _NO_GPG:
        return _run(args)
    from pit.agents import stopped_after
    with stopped_after(_gpg_homes(args)):
        return _run(args)


# Commands that never run gpg: no look for gpg-agents to stop after them
# (`pit start` leaves the daemon it starts to stop its own).
_NO_GPG = {"replay", "start", "stop", "show", "export", "trades", "search", "mirror"}


def _gpg_homes(args) -> list:
    """The GnuPG homes a command may start gpg-agents in: the pit's (its
    notary's, operator's, filters' homes are under it), a new pit's, an
    audited copy's, and the trader's home."""
    homes = [args.pit or os.environ.get("PIT_DIR") or ".",
             getattr(args, "dir", None), getattr(args, "path", None)]
    if hasattr(args, "gnupghome") or args.command in ("order", "transfer"):
        homes.append(gnupghome(getattr(args, "gnupghome", None)))
    return [h for h in homes if h]


def _run(args) -> int:
    """Run the command; errors become one line on stderr and an exit status."""
    try:
        return args.func(args)
    except CliError as e:
        print(f"pit {args.command}: {e}", file=sys.stderr)
        return e.code
    except (message.MessageError, UnitError) as e:
        print(f"pit {args.command}: {e}", file=sys.stderr)
        return EXIT["usage"]
    except PitError as e:
        print(f"pit {args.command}: {e}", file=sys.stderr)
        return EXIT[getattr(e, "exit", "no-pit")]     # a refusal on the pit's behalf: 5
    except ArchiveError as e:
        print(f"pit {args.command}: archive: {e}", file=sys.stderr)
        return EXIT["failure"]
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except RuntimeError as e:
        keyring = sys.modules.get("pit.keyring")     # imported by the commands that use gpg
        if keyring is None or not isinstance(e, keyring.KeyringError):
            raise
        print(f"pit {args.command}: key problem: {e}", file=sys.stderr)
        return EXIT["key"]


if __name__ == "__main__":
    sys.exit(main())
