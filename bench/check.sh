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
cargo build --release -q -p splitbrain-core --example op_parse
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

# Each command runs under /usr/bin/time; we keep, per command, the best wall
# time and the best CPU time (user+sys) over RUNS alternating runs. CPU time is
# the fairer yardstick when other work shares the machine.
runs="${RUNS:-5}"
measure() {  # prints "wall cpu"
  local out
  out=$( { /usr/bin/time -f '%e %U %S' "$@" > /dev/null 2> "$dir/cmd.err"; } 2>&1 ) || true
  tail -1 "$dir/cmd.err" | awk '{printf "%s %.2f", $1, $2 + $3}'
}
best() { sort -g | head -1; }
: > "$dir/value.t"; : > "$dir/ignored.t"; : > "$dir/check.t"
for _ in $(seq "$runs"); do
  measure "$baseline" "$history" value >> "$dir/value.t"; echo >> "$dir/value.t"
  measure "$baseline" "$history" ignored >> "$dir/ignored.t"; echo >> "$dir/ignored.t"
  measure "$bin" check "$history" --stats --json "$dir/results.json" >> "$dir/check.t"; echo >> "$dir/check.t"
  cp "$dir/cmd.err" "$dir/check.err"
done
"$bin" check "$history" > "$dir/check.out" || [ $? -eq 1 ]
head -1 "$dir/check.out"
lines=$(wc -l < "$history")
cw=$(cut -d' ' -f1 "$dir/check.t" | best);   cc=$(cut -d' ' -f2 "$dir/check.t" | best)
vw=$(cut -d' ' -f1 "$dir/value.t" | best);   vc=$(cut -d' ' -f2 "$dir/value.t" | best)
iw=$(cut -d' ' -f1 "$dir/ignored.t" | best); ic=$(cut -d' ' -f2 "$dir/ignored.t" | best)
awk -v cw="$cw" -v cc="$cc" -v vw="$vw" -v vc="$vc" -v iw="$iw" -v ic="$ic" -v n="$lines" -v r="$runs" 'BEGIN {
  printf "best of %d runs each (wall s / cpu s):\n", r
  printf "splitbrain check:               %6.2f / %6.2f  -> %.0f ops/s (wall), %.0f ops/s (cpu)\n", cw, cc, n / cw, n / cc
  printf "bare parse to serde_json Value: %6.2f / %6.2f  -> ratio check/parse %.2f (wall), %.2f (cpu)   (target <= 1.5)\n", vw, vc, cw / vw, cc / vc
  printf "bare parse, IgnoredAny:         %6.2f / %6.2f  -> ratio check/parse %.2f (wall), %.2f (cpu)\n", iw, ic, cw / iw, cc / ic
}'
grep '^stats:' "$dir/check.err" | awk '{ for (k = 1; k <= NF; k++) if ($k == "bytes/op") printf "peak memory of splitbrain check (VmHWM): %s bytes = %s bytes/op (target <= 100)\n", $(k-4), $(k-1) }'

# Which parser: the same lines parsed into operations by serde_json's typed
# visitors, by the scanner for the writers' layout (what `check` uses, with
# serde for other lines) and by sonic-rs driving the same visitors, against
# the syntax-only parse. Best of RUNS, seconds.
: > "$dir/parsers.t"
for _ in $(seq "$runs"); do
  target/release/examples/op_parse "$history" serde scanner sonic ignored >> "$dir/parsers.t"
done
echo "parsers (best of $runs, parse only, file in memory):"
for mode in serde scanner sonic ignored; do
  grep "^$mode:" "$dir/parsers.t" | awk '{print $5}' | sort -g | head -1 | xargs printf "  %-8s %6.2f s\n" "$mode"
done

