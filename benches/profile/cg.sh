#!/bin/sh
# Runs every workload of the harness under callgrind: ./cg.sh BIN OUTDIR
# (BIN: target/release/wasm-alloc-profile, or the dlmalloc build).
BIN=$1; OUT=$2; mkdir -p "$OUT"
while read -r name args; do
  valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$OUT/$name.cg" \
    "$BIN" "$name" $args > "$OUT/$name.txt" 2> "$OUT/$name.err"
done <<LIST
random-actions 2
small-churn 1000000
churn 300000
json 1024 2
vec-growth 4 2
strings 20000
markdown 256 2
LIST
