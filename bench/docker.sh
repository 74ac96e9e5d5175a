#!/usr/bin/env bash
# Times `splitbrain env up --env docker --nodes 5` with a warm image cache.
# Target (issue 8): under 15 s.
#
#   bench/docker.sh [RUNS]   (default 3; needs root)
#
# Not timed: building splitbrain, starting the Docker engine, and one warm-up
# `env up` + `env down` that builds the node image if it is not cached. Each
# timed run is a fresh `env up` (engine, cached image, key pair, network, 5
# containers, host keys, one SSH login per node) followed by an untimed
# `env down`. The base image is $SPLITBRAIN_DOCKER_BASE, else the locally
# made splitbrain/bookworm-base (no registry needed).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
[ "$(id -u)" -eq 0 ] || { echo "bench/docker.sh: run as root (sudo bench/docker.sh)" >&2; exit 2; }
export SPLITBRAIN_DOCKER_BASE=${SPLITBRAIN_DOCKER_BASE:-splitbrain/bookworm-base}
name="bench-docker-$$"

cargo build -q --bin splitbrain
bin=target/debug/splitbrain
environments/docker/engine start >/dev/null
# Base image (debootstrap) if this base is the local one and missing.
if [ "$SPLITBRAIN_DOCKER_BASE" = splitbrain/bookworm-base ]; then
  eval "$(environments/docker/engine status)"; export DOCKER_HOST
  environments/docker/base-image "$SPLITBRAIN_DOCKER_BASE"
fi
trap '"$bin" env down --env-name "$name" >/dev/null 2>&1 || true' EXIT

echo "warm-up (builds the node image if not cached)..." >&2
"$bin" env up --env docker --env-name "$name" --nodes 5 >/dev/null
"$bin" env down --env-name "$name" >/dev/null

times=()
for i in $(seq 1 "$runs"); do
  start=$(date +%s.%N)
  "$bin" env up --env docker --env-name "$name" --nodes 5 >/dev/null
  end=$(date +%s.%N)
  "$bin" env down --env-name "$name" >/dev/null
  t=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
  times+=("$t")
  printf 'run %d: env up --env docker --nodes 5: %.2f s\n' "$i" "$t"
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")
printf 'median of %d: %.2f s (target < 15 s, warm image cache)\n' "$runs" "$median"
