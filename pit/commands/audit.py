"""pit audit [PATH]: re-verify every record and replay every filter."""

from __future__ import annotations

import os
from pathlib import Path

from pit.commands.common import EXIT, CliError, end_progress, fingerprint, print_json, progress


def arguments(cmd) -> None:
    sp = cmd("audit", run, "verify the records new since the last audit (all with --full) "
             "and replay every filter",
             ["pit audit", "pit mirror pit-host:/srv/pits/demo copy && pit audit copy",
              "pit audit copy --full",
              "pit audit copy --notary 9647B5B8FCC30BFBE8C790B08F9B3AE9A036F739",
              "pit audit --json | jq .ok"], json_flag=True)
    sp.add_argument("path", nargs="?", help="a pit, a replica or a copy of its archive "
                    "(default the pit)")
    sp.add_argument("--notary", metavar="FPR", help="the notary key the genesis record must "
                    "name (pinned in the copy's state from then on)")
    sp.add_argument("--full", action="store_true", help="check every record from record 1 "
                    "and replay every filter from there, not only what is new since the "
                    "auditor's state (audit-state/ beside the archive)")


def run(args) -> int:
    try:
        from pit.audit import audit
    except ImportError:
        raise CliError("this installation has no pit.audit module yet") from None
    root = args.path or (args.pit or os.environ.get("PIT_DIR") or ".")
    if not Path(root).exists():
        raise CliError(f"{root} does not exist", EXIT["no-pit"])
    if not any((Path(root) / p).exists() for p in ("pit.conf", "replica.conf", "archives", "index")):
        raise CliError(f"{root}: not a pit (no pit.conf, replica.conf, archives/ or index: give "
                       "a pit, a replica or a copy of its archives/)", EXIT["no-pit"])
    notary = fingerprint(args.notary) if args.notary else None
    try:
        result = audit(root, progress=progress("audit"), notary=notary, remember=True,
                       full=args.full)
    except ValueError as e:            # a damaged [verified] state: the message says what to do
        raise CliError(str(e)) from None
    end_progress()
    if args.json:
        print_json(audit_row(result))
    else:
        print(result.summary())
    return 0 if result.ok else 1


AUDIT_FIELDS = ("ok", "path", "pit", "notary", "records", "first_time", "last_time", "head",
                "tree_root", "seals", "heads", "signatures", "kinds", "filters", "reports",
                "checkpoints", "consistency", "mode", "since", "incremental", "fallback",
                "problem", "seconds")


def audit_row(result) -> dict:
    """An audit's result as one JSON object (pit audit --json)."""
    row = {f: getattr(result, f, None) for f in AUDIT_FIELDS}
    row["seconds"] = round(row["seconds"] or 0.0, 3)
    return row
