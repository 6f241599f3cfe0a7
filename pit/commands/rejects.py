"""pit rejects: what the notary and the filters refused, and why."""

from __future__ import annotations

from pit.commands.common import emit, find_pit
from pit.query import filter_rejections, rejections


def arguments(cmd) -> None:
    cmd("rejects", run, "what the notary and the filters refused, and why",
        ["pit rejects", "pit rejects --json"], json_flag=True)


def run(args) -> int:
    pit = find_pit(args.pit)
    emit(args, ({"kind": "notary", **r} for r in rejections(pit)),
         lambda r: f"{r['time']} {r['from']}: {r['reason']}")
    emit(args, ({"kind": "filter", **r} for r in filter_rejections(pit)),
         lambda r: f"report {r['report']} {r['filter']}: {r['line']}")
    return 0
