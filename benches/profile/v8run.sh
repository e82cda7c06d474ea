#!/bin/sh
# CPU profiles of four workloads for wasm-alloc, dlmalloc and wasmalloc: ./v8run.sh WASMDIR OUTDIR
# WASMDIR holds wl_*.wasm built with the name section (see README.md).
W=$1; OUT=$2; mkdir -p "$OUT"
HERE=$(dirname "$0")
for a in wasm_alloc dlmalloc wasmalloc; do
  while read -r id fn args; do
    node --no-liftoff --cpu-prof --cpu-prof-interval 50 --cpu-prof-dir "$OUT" --cpu-prof-name "$id.$a.cpuprofile" \
      "$HERE/v8prof.mjs" "$W/wl_$a.wasm" "$fn" $args >> "$OUT/runs.jsonl"
  done <<LIST
random-actions wl_random_actions 24301 40
churn wl_churn 24303 2000000
json wl_json 24304 4096 3
vec-growth wl_vec_growth 24302 32 3
LIST
done
