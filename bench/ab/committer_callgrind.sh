#!/bin/sh
# Instructions an order of one tree's committer, load-proof:
#   bench/ab/committer_callgrind.sh TREE PREPARED [GROUP]
# PREPARED: a directory made once by 'python -m bench.ab.committer --prepare
# DIR --n N' (a bench pit and its signed orders; use the same one for every
# tree).  callgrind (PYTHONHASHSEED=0) runs TREE's committer on a copy of
# that pit twice: open and warm only, then open, warm and every group of
# GROUP (default 13); prints (run - build) / orders.  Figures:
# docs/pit-book.md, "Throughput over LMTP".
set -e
TREE=$(cd "$1" && pwd); PREP=$(cd "$2" && pwd); GROUP=${3:-13}
PY=${PIT_AB_PYTHON:-$TREE/.venv/bin/python}
OUT=${CG_KEEP:-$(mktemp -d)}    # CG_KEEP=DIR keeps callgrind's files (callgrind_annotate)
mkdir -p "$OUT"
[ -n "$CG_KEEP" ] || trap 'rm -rf "$OUT"' EXIT
N=$(grep -c '^From ' "$PREP/orders.mbox")
N=$((N - 2 * GROUP))
for what in build run; do
  (cd "$TREE" && PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$what" \
    "$PY" -m bench.ab.committer --from "$PREP" --copy "$OUT/pit.$what" --group "$GROUP" \
    --mode $what 2>"$OUT/log.$what" >/dev/null) || { cat "$OUT/log.$what"; exit 1; }
done
b=$(grep -m1 '^summary:' "$OUT/cg.build" | cut -d' ' -f2)
r=$(grep -m1 '^summary:' "$OUT/cg.run" | cut -d' ' -f2)
echo "$TREE group=$GROUP orders=$N: build $b, run $r, $(( (r - b) / N )) instructions an order"
