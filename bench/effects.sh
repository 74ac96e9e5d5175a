#!/usr/bin/env bash
# The effect store's cost to a consumer: messages applied per second with
# the SQLite store (WAL, one connection per consumer, one transaction per
# poll-sized batch, effect + dedup record per message; the file in a
# temporary directory on the machine's disk) and without a database (the
# same dedup and effect in memory), and their ratio. No cluster: this is the
# apply path alone; a real consumer also waits for Kafka's fetches.
#
#   bench/effects.sh [MESSAGES] [BATCH] [CONSUMERS] [ROUNDS]
#
# Defaults 200000, 500 (the workload's max_poll_records), 2, 3.
# Environment: PROFILE (release; or dev).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${PROFILE:-release}"
cargo run -q --profile "$profile" -p splitbrain-workloads --example effects_bench -- \
  "${1:-200000}" "${2:-500}" "${3:-2}" "${4:-3}"
