#!/usr/bin/env bash
# Runs the membership scenarios of nemeses/tests/membership.rs N times each
# (default 5): rapid-add and safe-add of 4 ZooKeeper servers to a 3-server
# ensemble with Kafka broker 2 moved onto them, each checked by the
# split-brain checker. Prints, per procedure, in how many runs
# `split-brain` and `multiple-controllers` were reported. Needs root, sshd,
# java and the artifact cache (environments/artifacts/fetch). About 70 s per
# run on a 2-core machine.
#
#   bench/rapid-add.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-5}"
SPLITBRAIN_REPEAT="$n" cargo test -p splitbrain-nemeses --test membership \
  repeat_both_scenarios -- --ignored --nocapture --test-threads 1 2>&1 |
  grep -E '^(run [0-9]+|Rapid|Safe|test result)|panicked'
