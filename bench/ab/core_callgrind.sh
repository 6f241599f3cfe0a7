#!/bin/sh
# Instructions a message of one tree's matching core, load-proof:
#   bench/ab/core_callgrind.sh TREE N [batch|single|deep]
# callgrind (PYTHONHASHSEED=0) runs this tree's bench.streams stream of N
# messages built with TREE's pit.book, once building it only and once building
# and running it (Engine.run in chunks of 10,000, or one call a message with
# gc paused; deep: on R=N*5 orders resting first, resting built in both runs),
# and prints (run - build) / N.  Figures: docs/pit-book.md, "Figures".
set -e
TREE=$(cd "$1" && pwd); N=$2; MODE=${3:-batch}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PIT_AB_PYTHON:-$(python -c "import sys; print(sys.executable)")}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cat > "$OUT/run.py" <<PYEOF
import gc, sys, importlib.util
sys.path.insert(0, "$TREE")
import pit.book as book
spec = importlib.util.spec_from_file_location("streams", "$HERE/streams.py")
streams = importlib.util.module_from_spec(spec); spec.loader.exec_module(streams)
n, mode, go = $N, "$MODE", sys.argv[1] == "run"
stream = streams.make_stream(n, 1)
eng = book.Engine(); eng.add_book("ACME"); ev = eng.events
if mode == "deep":
    r = 5 * n
    eng.run(streams.resting_orders(r)); ev.clear()
    stream = [(m[0], m[1] + r, m[2] + r) + m[3:] for m in stream]
chunks = [stream[i:i + 10000] for i in range(0, n, 10000)]
if mode == "single":
    table = {book.NEW: eng.new, book.CANCEL: eng.cancel}
    chunks = [[(table.get(m[0], eng.modify), m[1:]) for m in c] for c in chunks]
    gc.disable()
    if go:
        for c in chunks:
            for f, a in c:
                f(*a)
            del ev[:]
elif go:
    for c in chunks:
        eng.run(c); del ev[:]
PYEOF
for what in build run; do
  PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$what" \
    "$PY" "$OUT/run.py" $what 2>"$OUT/log.$what" >/dev/null
done
b=$(grep -m1 '^summary:' "$OUT/cg.build" | cut -d' ' -f2)
r=$(grep -m1 '^summary:' "$OUT/cg.run" | cut -d' ' -f2)
echo "$TREE $MODE n=$N: build $b, run $r, $(( (r - b) / N )) instructions a message"
