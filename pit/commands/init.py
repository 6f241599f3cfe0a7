"""pit init DIR --name NAME: create a pit."""

from __future__ import annotations

from pathlib import Path

from pit import ops
from pit.commands.common import EXIT, CliError
from pit.pitdir import PitError


def arguments(cmd) -> None:
    sp = cmd("init", run, "create a pit: directories, notary and operator keys, genesis record",
             ["pit init demo-pit --name demo", "pit init /srv/pits/fx --name fx --algo rsa3072"])
    sp.add_argument("dir", metavar="DIR")
    sp.add_argument("--name", required=True, help="the pit's name (lower case)")
    sp.add_argument("--algo", choices=["ed25519", "rsa3072"], default="ed25519")
    sp.add_argument("--rules", type=int, choices=[1, 2], default=None,
                    help="the pit's rules (pit-messages(5), Rules): 2, the latest, unless "
                         "it must behave as pits made before rules 2")


def run(args) -> int:
    root = Path(args.dir)
    if (root / "pit.conf").exists():
        raise CliError(f"{root}: a pit already exists here", EXIT["usage"])
    try:
        pit = ops.init(root, args.name, algo=args.algo, rules=args.rules)
    except PitError as e:
        raise CliError(str(e), EXIT["usage"]) from None
    print(f"pit {pit.name} created in {root}")
    print(f"notary key   {pit.notary}")
    print(f"operator key {pit.operator}")
    return 0
