#!/bin/sh
# replay_callgrind.sh TREE TAG: callgrind instructions of `pit replay specialist ACME` over the
# 1M bench archive with the code of TREE; the output's md5 in $TMPDIR/cgrep.TAG.md5
here=$(cd "$(dirname "$0")/../.." && pwd)
py=${PIT_AB_PYTHON:-python3}
pit=${PIT_AB_PIT:-$here/bench/out/replay-1000000}
tmp=${TMPDIR:-/tmp}
cd "$1" && PYTHONHASHSEED=0 nice valgrind --tool=callgrind --callgrind-out-file="$tmp/cgrep.$2.$$.out" \
  "$py" -c "import sys; from pit.cli import main; sys.exit(main(['--pit', '$pit', 'replay', 'specialist', 'ACME']))" \
  2>"$tmp/cgrep.$2.err" | md5sum > "$tmp/cgrep.$2.md5"
grep "Collected" "$tmp/cgrep.$2.err"
rm -f "$tmp/cgrep.$2.$$.out"
