#!/usr/bin/env python3
"""Cross-checks a txn run against what the brokers' logs hold.

Usage: bench/txn-segments.py RUN_DIR [RUN_DIR ...]

RUN_DIR is a stored run of a `workload.kind = "txn"` test
(store/<test>/<timestamp>/): its history.jsonl and the segment dumps the
runner wrote before collecting the servers' logs
(nodes/<node>/kafka/logs_segments-txn.txt, Kafka's DumpLogSegments output).

For each broker and partition it replays the dump in offset order: data
records of a producer id wait for that producer's next control record
(COMMIT or ABORT); records with no control record after them are "open".
Then it checks, independently of the checker:
  - every replica of a partition holds the same records and markers
    (same offset, producer id, msg or marker);
  - every msg the history says was committed (txn `ok`) is in the log
    under COMMIT, exactly once;
  - no msg the history says was aborted (txn `fail`) is under COMMIT;
  - msgs of `info` transactions: how many ended COMMIT, ABORT, open;
  - no record is left open (a hanging transaction).
Prints one line per run and exits 1 if any check fails.
"""

import glob
import json
import os
import re
import sys

BATCH = re.compile(r"^baseOffset: (\d+) .*producerId: (-?\d+) .*isControl: (\w+)")
RECORD = re.compile(r"^\| offset: (\d+) .*?(?:endTxnMarker: (\w+)|payload: (\d+))")


def replay(path):
    """Per partition: list of (offset, pid, msg or marker), and per msg its
    fate (COMMIT/ABORT/open) and how many times it is in the log."""
    parts = {}
    part = None
    pid = None
    for line in open(path, errors="replace"):
        if line.startswith("Dumping "):
            part = line.split()[1].split("/")[0]
            parts.setdefault(part, [])
            continue
        m = BATCH.match(line)
        if m:
            pid = int(m.group(2))
            continue
        m = RECORD.match(line)
        if m and part is not None:
            offset = int(m.group(1))
            entry = m.group(2) or int(m.group(3))
            parts[part].append((offset, pid, entry))
    fates = {}
    copies = {}
    for part, entries in parts.items():
        pending = {}
        for _offset, p, entry in sorted(entries):
            if isinstance(entry, str):
                for msg in pending.pop(p, []):
                    fates[msg] = entry
            else:
                pending.setdefault(p, []).append(entry)
                copies[entry] = copies.get(entry, 0) + 1
        for msgs in pending.values():
            for msg in msgs:
                fates[msg] = "open"
    return parts, fates, copies


def history(path):
    outcome = {}
    for line in open(path):
        op = json.loads(line)
        if op.get("f") != "txn" or op["type"] == "invoke":
            continue
        for micro in op["value"]:
            if micro[0] == "send":
                v = micro[2]
                msg = v[1] if isinstance(v, list) else v
                outcome[msg] = op["type"]
    return outcome


def check(run):
    dumps = sorted(glob.glob(os.path.join(run, "nodes", "*", "kafka", "logs_segments-txn.txt")))
    if not dumps:
        return False, f"{run}: no segment dumps"
    replicas = [replay(d) for d in dumps]
    problems = []
    parts0 = replicas[0][0]
    for d, (parts, _, _) in zip(dumps[1:], replicas[1:]):
        for part in set(parts0) | set(parts):
            if sorted(parts0.get(part, [])) != sorted(parts.get(part, [])):
                problems.append(f"{part} differs between {dumps[0]} and {d}")
    _, fates, copies = replicas[0]
    outcome = history(os.path.join(run, "history.jsonl"))
    counts = {}
    for msg, kind in outcome.items():
        fate = fates.get(msg, "absent")
        counts[(kind, fate)] = counts.get((kind, fate), 0) + 1
        if kind == "ok" and (fate != "COMMIT" or copies.get(msg) != 1):
            problems.append(f"msg {msg}: committed in the history, {fate} x{copies.get(msg, 0)} in the log")
        if kind == "fail" and fate == "COMMIT":
            problems.append(f"msg {msg}: aborted in the history, COMMIT in the log")
    open_msgs = [m for m, f in fates.items() if f == "open"]
    if open_msgs:
        problems.append(f"{len(open_msgs)} records with no marker (open transaction): {open_msgs[:10]}")
    summary = ", ".join(f"{k}->{f}: {n}" for (k, f), n in sorted(counts.items()))
    markers = sum(1 for e in replicas[0][0].values() for x in e if isinstance(x[2], str))
    line = (f"{run}: {len(dumps)} replicas identical={not any('differs' in p for p in problems)}; "
            f"{markers} markers; history->log {summary}")
    if problems:
        line += "\n  PROBLEMS: " + "\n  ".join(problems[:20])
    return not problems, line


def main():
    ok = True
    for run in sys.argv[1:]:
        good, line = check(run)
        ok &= good
        print(line)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
