"""pit run [FILTER ARGS]: run the filters and post their output."""

from __future__ import annotations

from pit import ops, query
from pit.commands.common import EXIT, FILTER_HELP, CliError, find_pit, known_filter_names, plural
from pit.pitdir import Pit


def arguments(cmd) -> None:
    sp = cmd("run", run, "run transfers and every specialist, posting their output",
             ["pit run", "pit run specialist ACME", "pit run transfers"])
    sp.add_argument("filter", nargs="?", metavar="FILTER", help=FILTER_HELP)
    sp.add_argument("args", nargs="*")


def run_all(pit: Pit, only: list[str] | None = None, say=print) -> list:
    """Run transfers, then the specialists (ops.specialist_jobs: each key's
    tickers and ranges, and one per instrument none of them serves),
    posting their output.  With *only* (``["specialist", "ACME"]``), run
    that filter alone."""
    if only:
        # a filter run by name is the pit's from now on: its key (made and
        # granted its accounts now, if it has none) names it to the next
        # 'pit run', whether it has anything to post yet or not
        ops.filter_key(pit, ops.filter_class(only[0])(only[1:]).name)
    jobs = [only] if only else [["transfers"]] + ops.specialist_jobs(pit)
    out = []
    for job in jobs:
        flt, decisions = ops.run_filter(pit, job[0], job[1:])
        seqs = [d.seq for d in decisions if d.accepted]
        bad = [d.reason for d in decisions if not d.accepted]
        say(f"{flt.name}: {plural(len(flt.lines), 'report line')}"
            + (f", posted as records {seqs[0]}-{seqs[-1]}" if seqs else ", nothing new"))
        for reason in bad:
            say(f"{flt.name}: the notary refused its output: {reason}")
        out.append((flt, decisions))
    return out


def run(args) -> int:
    pit = find_pit(args.pit).not_a_replica()    # before a filter's key is made
    if args.filter:
        known_filter_names(pit, args.filter, args.args)
    try:
        run_all(pit, [args.filter] + args.args if args.filter else None)
    except ValueError as e:
        raise CliError(str(e), EXIT["usage"]) from None
    return 0
