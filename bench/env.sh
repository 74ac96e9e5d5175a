#!/usr/bin/env bash
# Benchmark of issue 2 (run as root):
#  1. wall time of `splitbrain env up --nodes 5` (target < 3 s);
#  2. `true` on 9 nodes concurrently: 9 fresh `ssh` processes vs reused
#     sessions of the control layer, measured in the same run (target >= 5x).
# Uses the debug build unless PROFILE=release is set.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/env.sh: run as root (it creates namespaces): sudo bench/env.sh" >&2
  exit 2
fi
profile=${PROFILE:-debug}
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build -q "${flag[@]}" --bin splitbrain -p splitbrain
cargo build -q "${flag[@]}" -p splitbrain-environments --example fanout
bin=target/$profile/splitbrain
fanout=target/$profile/examples/fanout
up5=bench-up5-$$
fan9=bench-fan9-$$
cleanup() {
  "$bin" env down --env-name "$up5" >/dev/null 2>&1 || true
  "$bin" env down --env-name "$fan9" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

for i in 1 2 3; do
  start=$(date +%s%N)
  "$bin" env up --env-name "$up5" --nodes 5 >/dev/null
  end=$(date +%s%N)
  printf 'env up --nodes 5 (run %d): %d ms\n' "$i" $(( (end - start) / 1000000 ))
  "$bin" env down --env-name "$up5" >/dev/null
done

"$bin" env up --env-name "$fan9" --nodes 9 >/dev/null
"$fanout" "$fan9" "${ROUNDS:-15}"
