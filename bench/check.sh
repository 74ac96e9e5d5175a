#!/usr/bin/env bash
# Benchmark of `splitbrain check` on a generated 10-million-operation history.
# Prints checker throughput (ops/s), peak memory (bytes/op, from the check
# process's own VmHWM) and the ratio of `splitbrain check` wall time to a bare
# line-by-line serde_json parse of the same file, measured in the same run.
# Targets: ratio <= 1.5 and <= 100 bytes/op.
#
# Usage: bench/check.sh [OPS]   (default 10000000; the history is cached in
# target/bench/ and reused while OPS and the generator are unchanged)
set -euo pipefail
cd "$(dirname "$0")/.."
ops="${1:-10000000}"
cargo build --release -q -p splitbrain --bin splitbrain --example parse_baseline
bin=target/release/splitbrain
baseline=target/release/examples/parse_baseline
dir=target/bench
mkdir -p "$dir"
history="$dir/history-$ops.jsonl"
if [ ! -s "$history" ] || [ "$history" -ot "$bin" ]; then
  rm -f "$history"
  echo "generating $history ..."
  "$bin" gen-history --ops "$ops" --seed 1 --plant lost-write=3,duplicate=3,poll-skip=2 -o "$history"
fi
echo "history: $(wc -l < "$history") lines, $(du -h "$history" | cut -f1)"
cat "$history" > /dev/null   # warm the page cache so both runs read from memory

now() { date +%s.%N; }
run_check() {
  local t0 t1
  t0=$(now)
  "$bin" check "$history" --stats --json "$dir/results.json" > "$dir/check.out" 2> "$dir/check.err" || [ $? -eq 1 ]
  t1=$(now)
  echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}
# Alternate the runs and keep the best of three of each, to damp noise from
# other work on the machine.
best_check=""; best_value=""; best_ignored=""
for _ in 1 2 3; do
  v=$("$baseline" "$history" value | cut -d' ' -f1)
  i=$("$baseline" "$history" ignored | cut -d' ' -f1)
  c=$(run_check)
  best_value=$(printf '%s\n%s\n' "$v" "${best_value:-$v}" | sort -g | head -1)
  best_ignored=$(printf '%s\n%s\n' "$i" "${best_ignored:-$i}" | sort -g | head -1)
  best_check=$(printf '%s\n%s\n' "$c" "${best_check:-$c}" | sort -g | head -1)
done
head -1 "$dir/check.out"
stats=$(grep '^stats:' "$dir/check.err")
echo "$stats"
lines=$(wc -l < "$history")
awk -v c="$best_check" -v v="$best_value" -v i="$best_ignored" -v n="$lines" 'BEGIN {
  printf "splitbrain check:              %.3f s  (%.0f ops/s, wall time of the whole command)\n", c, n / c
  printf "bare parse to serde_json Value: %.3f s  -> ratio check/parse = %.2f (target <= 1.5)\n", v, c / v
  printf "bare parse, IgnoredAny:         %.3f s  -> ratio check/parse = %.2f\n", i, c / i
}'
echo "$stats" | awk '{ for (k = 1; k <= NF; k++) if ($k == "bytes/op") printf "peak memory: %s bytes/op (target <= 100)\n", $(k-1) }'
