#!/usr/bin/env bash
# Benchmark of the transaction checker: `splitbrain check` on a generated
# history of 1 million transactions (`gen-history --txn`: transactional
# producers with interleaved sends, aborts, unknown commits and polls inside
# transactions, plus read_committed consumers, with a few planted cycles
# and anomalies). Prints transactions/s and peak memory in bytes per
# micro-operation (the check process's own VmHWM, reader included).
# Targets (issue 15): >= 200 000 transactions/s and <= 200 bytes/micro-op
# on a 2-core machine.
#
# Usage: bench/txn.sh [TXNS]   (default 1000000; the history is cached in
# target/bench/ and reused while TXNS and the binary are unchanged)
set -euo pipefail
cd "$(dirname "$0")/.."
txns="${1:-1000000}"
cargo build --release -q -p splitbrain --bin splitbrain
bin=target/release/splitbrain
dir=target/bench
mkdir -p "$dir"
history="$dir/txn-history-$txns.jsonl"
plants="G1c=3,G1c-realtime=2,G1a=2,lost-write=2,int-poll-skip=1"
if [ ! -s "$history" ] || [ "$history" -ot "$bin" ]; then
  rm -f "$history"
  echo "generating $history ..."
  "$bin" gen-history --txn --ops "$txns" --seed 1 --plant "$plants" -o "$history"
fi
echo "history: $(wc -l < "$history") lines, $(du -h "$history" | cut -f1)"
cat "$history" > /dev/null   # warm the page cache

# Each run under /usr/bin/time; we keep the best wall time and the best CPU
# time (user+sys) over RUNS runs. CPU time is the fairer yardstick when
# other work shares the machine (wall time then includes waiting for a core).
runs="${RUNS:-3}"
: > "$dir/txn-check.t"
for _ in $(seq "$runs"); do
  /usr/bin/time -f 'time %e %U %S' "$bin" check "$history" --stats --json "$dir/txn-results.json" \
    > "$dir/txn-check.out" 2> "$dir/txn-check.err" || true
  peak=$(grep '^stats:' "$dir/txn-check.err" | awk '{print $12}')
  grep '^time ' "$dir/txn-check.err" | awk -v p="$peak" '{printf "%s %.2f %s\n", $2, $3 + $4, p}' >> "$dir/txn-check.t"
done
head -1 "$dir/txn-check.out"
count() { grep -o "\"$1\": [0-9]*" "$dir/txn-results.json" | head -1 | awk '{print $2}'; }
n=$(count txns); mops=$(count txn-micro-ops); reads=$(count txn-reads); sends=$(count txn-sends)
edges=$(count txn-graph-edges)
for a in G1c G1c-realtime G1a lost-write int-poll-skip G0 int-send-skip; do
  printf '%s=%s ' "$a" "$(grep -A1 "\"$a\": {" "$dir/txn-results.json" | grep -o '"count": [0-9]*' | awk '{print $2}')"
done; echo "(planted: $plants; G0 and int-send-skip occur naturally and are informational)"
wall=$(cut -d' ' -f1 "$dir/txn-check.t" | sort -g | head -1)
cpu=$(cut -d' ' -f2 "$dir/txn-check.t" | sort -g | head -1)
peak=$(cut -d' ' -f3 "$dir/txn-check.t" | sort -g | head -1)
awk -v w="$wall" -v c="$cpu" -v n="$n" -v m="$mops" -v r="$reads" -v s="$sends" -v p="$peak" -v e="$edges" -v runs="$runs" 'BEGIN {
  printf "transactions: %d (%d micro-ops: %d sends, %d records polled; %d graph edges)\n", n, m, s, r, e
  printf "splitbrain check, best of %d runs: %.2f s wall -> %.0f transactions/s; %.2f s cpu -> %.0f transactions/s (target >= 200000)\n", runs, w, n / w, c, n / c
  printf "peak memory (VmHWM): %d bytes = %.1f bytes/micro-op (target <= 200), %.1f bytes/transaction\n", p, p / m, p / n
}'
printf 'load average while measuring: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
