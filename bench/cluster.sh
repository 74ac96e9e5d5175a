#!/usr/bin/env bash
# Times `splitbrain cluster up --zk 3 --kafka 3` from a clean environment
# (fresh netns nodes, no ZooKeeper/Kafka data), RUNS times (default 3).
# Target: under 30 s on a 2-core machine. Needs root and the artifact cache
# (environments/artifacts/fetch). Cleans up on every exit path.
#
#   bench/cluster.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
env_name="bench-cluster-$$"

cargo build -q --bin splitbrain
bin=target/debug/splitbrain

cleanup() {
  "$bin" cluster down --kill --env-name "$env_name" >/dev/null 2>&1 || true
  "$bin" env down --env-name "$env_name" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
times=()
for i in $(seq 1 "$runs"); do
  "$bin" env up --nodes 6 --env-name "$env_name" >/dev/null
  start=$(now)
  out=$("$bin" cluster up --zk 3 --kafka 3 --env-name "$env_name")
  end=$(now)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
  line="${out%%$'\n'*}"
  times+=("$secs")
  printf 'run %d: cluster up --zk 3 --kafka 3: %.1f s wall  [%s]\n' "$i" "$secs" "$line"
  status=$("$bin" cluster status --env-name "$env_name")
  echo "$status" | awk 'NR <= 4' | sed 's/^/  /'
  cleanup
done
printf '%s\n' "${times[@]}" | sort -n | awk '
  { a[NR] = $1; s += $1 }
  END { printf "cluster up --zk 3 --kafka 3 over %d runs: min %.1f s, median %.1f s, max %.1f s (target < 30 s)\n", NR, a[1], a[int((NR + 1) / 2)], a[NR] }'
