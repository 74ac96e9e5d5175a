#!/usr/bin/env bash
# Producer throughput: splitbrain's queue-workload producer (recording its
# full history) against Kafka's own ProducerPerformance
# (kafka-producer-perf-test), on the same real 3 ZooKeeper + 3 Kafka cluster
# in network namespaces, with the same acks, idempotence, record size and
# partitions. Prints both throughputs and their ratio (target >= 0.8), per
# round and for the best round of each (the machine's load makes single
# rounds noisy: run several).
# Needs root and the artifact cache (environments/artifacts/fetch).
# Cleans up the cluster and the environment on every exit path.
#
#   bench/producer.sh [RECORDS] [RECORD_SIZE] [PARTITIONS] [ROUNDS]
#
# Environment: ACKS (all), IDEMPOTENCE (true), LINGER_MS (5, given to both
# tools), SENDERS (8192: splitbrain processes, each with one send in flight),
# PROFILE (release; or debug).
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-200000}"
size="${2:-100}"
partitions="${3:-3}"
rounds="${4:-2}"
acks="${ACKS:-all}"
idem="${IDEMPOTENCE:-true}"
senders="${SENDERS:-8192}"
linger="${LINGER_MS:-5}"
profile="${PROFILE:-release}"
env_name="bench-producer-$$"
cache="${SPLITBRAIN_ARTIFACTS:-$PWD/.cache/artifacts}"
environments/artifacts/fetch --check >/dev/null

if [ "$profile" = release ]; then
  cargo build -q --release --bin splitbrain
  bin=target/release/splitbrain
else
  cargo build -q --bin splitbrain
  bin=target/debug/splitbrain
fi
work="$(mktemp -d)"

cleanup() {
  "$bin" cluster down --env-name "$env_name" >/dev/null 2>&1 || true
  "$bin" env down --env-name "$env_name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$bin" env up --nodes 6 --env-name "$env_name" >/dev/null
bootstrap=$("$bin" cluster up --zk 3 --kafka 3 --env-name "$env_name" | sed -n 's/^bootstrap.servers=//p')
[ -n "$bootstrap" ] || { echo "cluster up printed no bootstrap.servers" >&2; exit 2; }
echo "cluster up: bootstrap.servers=$bootstrap"

kafka_java() { java -Xmx512m -cp "$cache/kafka/lib/*" "$@" 2> >(grep -v "^log4j:WARN" >&2); }
create_topic() {
  kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --create \
    --topic "$1" --partitions "$partitions" --replication-factor 3 >/dev/null
}

best_sb=0 best_java=0
for r in $(seq 1 "$rounds"); do
  create_topic "sb-$r"
  out=$("$bin" bench-producer --bootstrap "$bootstrap" --topic "sb-$r" --partitions "$partitions" \
    --records "$records" --record-size "$size" --acks "$acks" --idempotence "$idem" \
    --senders "$senders" --linger-ms "$linger" --history "$work/history-$r.jsonl")
  echo "round $r: $out"
  sb=$(echo "$out" | sed -n 's/.* = \([0-9.]*\) records\/s.*/\1/p')
  lines=$(wc -l < "$work/history-$r.jsonl")
  echo "round $r: history has $lines lines"

  create_topic "java-$r"
  jout=$(kafka_java org.apache.kafka.tools.ProducerPerformance --topic "java-$r" \
    --num-records "$records" --record-size "$size" --throughput -1 \
    --producer-props bootstrap.servers="$bootstrap" acks="$acks" enable.idempotence="$idem" linger.ms="$linger" | tail -n1)
  echo "round $r: ProducerPerformance: $jout"
  java=$(echo "$jout" | sed -n 's/.* records sent, \([0-9.]*\) records\/sec.*/\1/p')
  printf 'round %d: ratio %s\n' "$r" "$(echo "scale=3; $sb / $java" | bc)"
  best_sb=$(echo "if ($sb > $best_sb) $sb else $best_sb" | bc)
  best_java=$(echo "if ($java > $best_java) $java else $best_java" | bc)
done
ratio=$(echo "scale=3; $best_sb / $best_java" | bc)
printf 'splitbrain producer (history recorded): %.0f records/s\n' "$best_sb"
printf 'ProducerPerformance:                    %.0f records/s\n' "$best_java"
printf 'ratio splitbrain/java: %s (target >= 0.8); best of %d rounds, %d records of %d B, %d partitions, acks=%s, idempotence=%s, linger.ms=%s\n' \
  "$ratio" "$rounds" "$records" "$size" "$partitions" "$acks" "$idem" "$linger"
