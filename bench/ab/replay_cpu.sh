#!/bin/sh
# replay_cpu.sh TREE: `pit replay specialist ACME` of the 1M bench archive to /dev/null, CPU "user sys"
# (the code of TREE; $PIT_AB_PYTHON, $PIT_AB_PIT: bench/ab/README.md)
here=$(cd "$(dirname "$0")/../.." && pwd)
py=${PIT_AB_PYTHON:-python3}
pit=${PIT_AB_PIT:-$here/bench/out/replay-1000000}
cd "$1" && /usr/bin/time -f "%U %S" "$py" -c "import sys; from pit.cli import main; sys.exit(main(['--pit', '$pit', 'replay', 'specialist', 'ACME']))" > /dev/null
