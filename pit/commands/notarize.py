"""pit notarize: notarize the mail waiting in the incoming maildir."""

from __future__ import annotations

from pit import ops
from pit.commands.common import find_pit


def arguments(cmd) -> None:
    cmd("notarize", run, "notarize the mail waiting in the pit's incoming maildir",
        ["pit notarize"])


def run(args) -> int:
    pit = find_pit(args.pit)
    decisions = ops.notary(pit).run_maildir()
    ok = [d for d in decisions if d.accepted]
    for d in decisions:
        if not d.accepted:
            print(f"refused: {d.reason}" + (f" ({d.sender})" if d.sender else ""))
    print(f"{len(ok)} notarized, {len(decisions) - len(ok)} refused"
          + (f" (records {ok[0].seq}-{ok[-1].seq})" if ok else ""))
    return 0
