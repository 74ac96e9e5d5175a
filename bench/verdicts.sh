#!/usr/bin/env bash
# How far can a verdict be trusted? Runs each *safe* test N times on fresh
# netns clusters and prints, per test, how many runs passed, failed (with the
# anomalies that failed them) or ended in ERROR/UNKNOWN.
#
#   bench/verdicts.sh [N] [TIME_LIMIT]
#
# N (default 5) runs of each of: kills-safe, the five partitions-safe kinds,
# incident-2020-safe and incident-2020; the no-fault run gets 2N runs (it is
# the baseline: any anomaly there is the checker's or the workload's own).
# TIME_LIMIT (default: each test's own) shortens the load of every run.
#
# Nothing is tolerated: each test's `tolerate` list is emptied (the point is
# to see what a safe configuration really shows), except what TOLERATE
# (comma-separated anomaly names, default empty) names. `expect` is kept
# (incident-2020 expects the split brain it stages).
#
# Needs root and the set-up of scripts/setup. About 60-150 s per run on a
# 2-core machine. Every run is kept in store/verdicts-<stamp>/ for reading.
# ONLY (a regular expression over test names) runs a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-5}"
limit="${2:-}"
only="${ONLY:-.}"
tolerate="${TOLERATE:-}"

cargo build -q --bin splitbrain
bin=target/debug/splitbrain
stamp=$(date +%Y%m%d-%H%M%S)
store="store/verdicts-$stamp"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$store"

# The safe tests as full test files, from the campaigns' own dry runs (so
# the bench runs exactly what the campaigns run).
split() { # campaign file -> one TOML per test in $work
  "$bin" campaign --dry-run "$1" | awk -v dir="$work" '
    /^# [A-Za-z0-9_.-]+$/ { file = dir "/" substr($0, 3) ".toml"; next }
    file != "" { print > file }'
}
split campaigns/kills.toml
split campaigns/partitions.toml
split campaigns/incident-2020.toml
split campaigns/incident-2020-safe.toml
cat >"$work/no-faults.toml" <<'EOF'
name = "no-faults"
cluster = { zookeeper = 3, kafka = 3 }
workload = { rate = 200, senders = 8, consumers = 2 }
EOF

tol_toml="[$(echo "$tolerate" | sed -E 's/([^,]+)/"\1"/g')]"
tests=()
for f in "$work"/*.toml; do
  t=$(basename "$f" .toml)
  case "$t" in *unsafe*|*acks1*) continue ;; esac
  [[ "$t" =~ $only ]] || continue
  sed -i -E "s/^tolerate = .*/tolerate = $tol_toml/" "$f"
  grep -q '^tolerate' "$f" || sed -i "1a tolerate = $tol_toml" "$f"
  tests+=("$t")
done

results="$store/verdicts.tsv"
printf 'test\trun\toutcome\tanomalies\tdir\twhy\n' >"$results"
for t in "${tests[@]}"; do
  runs=$n
  [ "$t" = no-faults ] && runs=$((2 * n))
  for i in $(seq 1 "$runs"); do
    args=(run "$work/$t.toml" --store "$store")
    [ -n "$limit" ] && args+=(--time-limit "$limit")
    echo "== $t run $i/$runs" >&2
    "$bin" "${args[@]}" >"$work/out" 2>&1 || true
    dir=$(readlink -f "$store/$t/latest" 2>/dev/null || true)
    if [ -n "$dir" ] && [ -f "$dir/results.json" ]; then
      python3 - "$dir/results.json" "$t" "$i" "$dir" >>"$results" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
outcome = (r.get("outcome") or "?").split(":")[0]
found = sorted(k for k, a in (r.get("anomalies") or {}).items()
               if (a.get("count") or 0) > 0)
found = ",".join(f"{k}={r['anomalies'][k]['count']}" for k in found) or "-"
why = (r.get("outcome") or "").split(":", 1)[-1].strip().replace("\t", " ")
print("\t".join([sys.argv[2], sys.argv[3], outcome, found, sys.argv[4], why]))
print("\t".join(["#", sys.argv[2], (r.get("outcome") or "").replace("\t", " ")]), file=sys.stderr)
EOF
    else
      printf '%s\t%s\tERROR\tno results.json (%s)\t-\t-\n' "$t" "$i" \
        "$(tail -1 "$work/out" | tr '\t' ' ')" >>"$results"
    fi
    tail -1 "$results" | cut -f1-4 >&2
  done
done

echo
python3 - "$results" <<'EOF'
import csv, sys, collections
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = collections.OrderedDict()
for r in rows:
    by.setdefault(r["test"], []).append(r)
print("| test | runs | PASS | FAIL (why, as the outcome says) | ERROR/UNKNOWN |")
print("|---|---|---|---|---|")
for t, rs in by.items():
    p = sum(r["outcome"] == "PASS" for r in rs)
    failed = [r for r in rs if r["outcome"] == "FAIL"]
    other = len(rs) - p - len(failed)
    kinds = collections.Counter(r["why"] for r in failed)
    what = "; ".join(f"{k} ×{v}" for k, v in sorted(kinds.items()))
    print(f"| {t} | {len(rs)} | {p} | {len(failed)}{' (' + what + ')' if what else ''} | {other} |")
EOF
echo "runs kept in $store (per run: $results)"
