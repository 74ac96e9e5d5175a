//! Hand-written histories: for each anomaly one that shows it and one that
//! does not.

use super::*;
use crate::catalog;
use serde_json::json;
use splitbrain_core::history::Op;

/// A tiny history builder: each call adds one line.
#[derive(Default)]
struct H {
    lines: Vec<String>,
}

impl H {
    fn op(&mut self, process: &str, ty: &str, f: &str, value: &str) -> &mut Self {
        let i = self.lines.len();
        self.lines.push(format!(
            r#"{{"index":{i},"time":{},"process":{process},"type":"{ty}","f":"{f}","value":{value}}}"#,
            i * 1000
        ));
        self
    }
    /// A transaction by process `p`: invoke then completion `ty`.
    fn txn(&mut self, p: u64, ty: &str, invoke: &str, done: &str) -> &mut Self {
        self.op(&p.to_string(), "invoke", "txn", invoke);
        self.op(&p.to_string(), ty, "txn", done)
    }
    fn invoke(&mut self, p: u64, v: &str) -> &mut Self {
        self.op(&p.to_string(), "invoke", "txn", v)
    }
    fn done(&mut self, p: u64, ty: &str, v: &str) -> &mut Self {
        self.op(&p.to_string(), ty, "txn", v)
    }
    fn check(&self) -> TxnResult {
        let mut c = TxnChecker::new(10);
        for l in &self.lines {
            let op = Op::parse(l).unwrap();
            c.observe(&op).unwrap();
        }
        c.finish()
    }
}

fn count(r: &TxnResult, name: &str) -> u64 {
    r.anomalies[name].count
}

/// Every count zero except `allowed`.
fn only(r: &TxnResult, allowed: &[&str]) {
    for (name, a) in &r.anomalies {
        if !allowed.contains(&name.as_str()) {
            assert_eq!(a.count, 0, "{name}: {:?}", a.examples);
        }
    }
}

#[test]
fn a_clean_history_is_clean() {
    let r = H::default()
        .txn(
            0,
            "ok",
            r#"[["send","k",1],["send","k",2]]"#,
            r#"[["send","k",[0,1]],["send","k",[1,2]]]"#,
        )
        .txn(
            1,
            "ok",
            r#"[["poll"]]"#,
            r#"[["poll",{"k":[[0,1],[1,2]]}]]"#,
        )
        .check();
    only(&r, &[]);
    assert_eq!(r.counts["txns"], 2);
    assert_eq!(r.counts["txn-sends"], 2);
    assert_eq!(r.counts["txn-reads"], 2);
}

#[test]
fn g1a_an_aborted_write_read_by_a_committed_reader() {
    let mut h = H::default();
    h.txn(0, "fail", r#"[["send","k",1]]"#, r#"[["send","k",[0,1]]]"#)
        .txn(1, "ok", r#"[["poll"]]"#, r#"[["poll",{"k":[[0,1]]}]]"#);
    let r = h.check();
    assert_eq!(count(&r, "G1a"), 1);
    only(&r, &["G1a"]);
    assert_eq!(r.anomalies["G1a"].examples[0]["read-op"], 3);
    assert_eq!(r.anomalies["G1a"].examples[0]["send-op"], 1);

    // The same read of a committed write, or an aborted write nobody read.
    let r = H::default()
        .txn(0, "ok", r#"[["send","k",1]]"#, r#"[["send","k",[0,1]]]"#)
        .txn(1, "ok", r#"[["poll"]]"#, r#"[["poll",{"k":[[0,1]]}]]"#)
        .txn(2, "fail", r#"[["send","k",2]]"#, r#"[["send","k",[1,2]]]"#)
        .check();
    only(&r, &[]);
    assert_eq!(r.counts["txns-failed"], 1);
}

#[test]
fn g1a_names_the_isolation_level_of_the_control() {
    let mut h = H::default();
    h.op(
        r#""workload""#,
        "info",
        "txn-settings",
        r#"{"isolation_level":"read_uncommitted"}"#,
    )
    .txn(0, "fail", r#"[["send","k",1]]"#, r#"[["send","k",1]]"#)
    .txn(1, "ok", r#"[["poll"]]"#, r#"[["poll",{"k":[[0,1]]}]]"#);
    let r = h.check();
    assert_eq!(count(&r, "G1a"), 1);
    assert_eq!(
        r.anomalies["G1a"].examples[0]["isolation-level"],
        "read_uncommitted"
    );
    // The workload's kebab-case settings name it too.
    let mut h = H::default();
    h.op(
        r#""workload""#,
        "info",
        "txn-settings",
        r#"{"isolation-level":"read_uncommitted","producers":2}"#,
    )
    .txn(0, "fail", r#"[["send","k",1]]"#, r#"[["send","k",1]]"#)
    .txn(1, "ok", r#"[["poll"]]"#, r#"[["poll",{"k":[[0,1]]}]]"#);
    let r = h.check();
    assert_eq!(
        r.anomalies["G1a"].examples[0]["isolation-level"],
        "read_uncommitted"
    );
}

#[test]
fn precommitted_read_a_transaction_reads_its_own_send() {
    let r = H::default()
        .txn(
            0,
            "ok",
            r#"[["send","k",1],["poll"]]"#,
            r#"[["send","k",[0,1]],["poll",{"k":[[0,1]]}]]"#,
        )
        .check();
    assert_eq!(count(&r, "precommitted-read"), 1);
    only(&r, &["precommitted-read"]);
    // Reading another transaction's committed message is fine.
    let r = H::default()
        .txn(0, "ok", r#"[["send","k",1]]"#, r#"[["send","k",[0,1]]]"#)
        .txn(
            1,
            "ok",
            r#"[["send","k",2],["poll"]]"#,
            r#"[["send","k",[1,2]],["poll",{"k":[[0,1]]}]]"#,
        )
        .check();
    only(&r, &[]);
}

#[test]
fn int_nonmonotonic_poll_backwards_or_repeating_within_a_transaction() {
    let r = H::default()
        .txn(
            0,
            "ok",
            r#"[["send","k",1],["send","k",2]]"#,
            r#"[["send","k",[0,1]],["send","k",[1,2]]]"#,
        )
        .txn(
            1,
            "ok",
            r#"[["poll"],["poll"]]"#,
            r#"[["poll",{"k":[[0,1],[1,2]]}],["poll",{"k":[[1,2]]}]]"#,
        )
        .check();
    assert_eq!(count(&r, "int-nonmonotonic-poll"), 1);
    only(&r, &["int-nonmonotonic-poll"]);
    let r = H::default()
        .txn(
            0,
            "ok",
            r#"[["send","k",1],["send","k",2]]"#,
            r#"[["send","k",[0,1]],["send","k",[1,2]]]"#,
        )
        .txn(
            1,
            "ok",
            r#"[["poll"],["poll"]]"#,
            r#"[["poll",{"k":[[0,1]]}],["poll",{"k":[[1,2]]}]]"#,
        )
        .check();
    only(&r, &[]);
}

#[test]
fn int_poll_skip_over_a_committed_message_but_not_over_a_marker() {
    // msgs 1, 2, 3 at offsets 0, 1, 2; a commit marker at 3; msg 4 at 4.
    let mut h = H::default();
    h.txn(
        0,
        "ok",
        r#"[["send","k",1],["send","k",2],["send","k",3]]"#,
        r#"[["send","k",[0,1]],["send","k",[1,2]],["send","k",[2,3]]]"#,
    )
    .txn(0, "ok", r#"[["send","k",4]]"#, r#"[["send","k",[4,4]]]"#)
    // Another consumer reads everything (so nothing is lost).
    .txn(
        2,
        "ok",
        r#"[["poll"]]"#,
        r#"[["poll",{"k":[[0,1],[1,2],[2,3],[4,4]]}]]"#,
    );
    let mut skip = H {
        lines: h.lines.clone(),
    };
    skip.txn(
        1,
        "ok",
        r#"[["poll"]]"#,
        r#"[["poll",{"k":[[0,1],[2,3]]}]]"#,
    );
    let r = skip.check();
    assert_eq!(count(&r, "int-poll-skip"), 1);
    only(&r, &["int-poll-skip"]);
    assert_eq!(
        r.anomalies["int-poll-skip"].examples[0]["skipped"],
        json!([[1, 2]])
    );
    // Jumping over offset 3 (no message there) is not a skip.
    h.txn(
        1,
        "ok",
        r#"[["poll"]]"#,
        r#"[["poll",{"k":[[2,3],[4,4]]}]]"#,
    );
    only(&h.check(), &[]);
}

#[test]
fn int_nonmonotonic_send_offsets_going_backwards_within_a_transaction() {
    let r = H::default()
        .txn(
            0,
            "ok",
            r#"[["send","k",1],["send","k",2]]"#,
            r#"[["send","k",[5,1]],["send","k",[3,2]]]"#,
        )
        .check();
    assert_eq!(count(&r, "int-nonmonotonic-send"), 1);
    only(&r, &["int-nonmonotonic-send"]);
    let r = H::default()
        .txn(
            0,
            "ok",
            r#"[["send","k",1],["send","k",2]]"#,
            r#"[["send","k",[3,1]],["send","k",[5,2]]]"#,
        )
        .check();
    only(&r, &[]);
}

#[test]
fn int_send_skip_and_g0_interleaved_sends_of_two_transactions() {
    // T0 sends 1 and 3, T1 sends 2 in between: T0 -ww-> T1 -ww-> T0.
    let mut h = H::default();
    h.invoke(0, r#"[["send","k",1],["send","k",3]]"#)
        .invoke(1, r#"[["send","k",2]]"#)
        .done(0, "ok", r#"[["send","k",[0,1]],["send","k",[2,3]]]"#)
        .done(1, "ok", r#"[["send","k",[1,2]]]"#);
    let r = h.check();
    assert_eq!(count(&r, "int-send-skip"), 1);
    assert_eq!(count(&r, "G0"), 1);
    only(&r, &["int-send-skip", "G0"]);
    let g0 = &r.anomalies["G0"].examples[0];
    assert_eq!(g0["ops"], json!([2, 3]));
    assert_eq!(g0["cycle"][0]["edge"], "ww");
    assert_eq!(g0["cycle"][0]["process"], 0);
    assert!(
        g0["cycle"][0]["why"]
            .as_str()
            .unwrap()
            .contains("it sent msg 1 to k at offset 0; the next message of that log, msg 2 at offset 1, was sent by process 1's transaction (op 3)"),
        "{g0}"
    );
    // Sends one after the other: no skip, no cycle.
    let r = H::default()
        .txn(
            0,
            "ok",
            r#"[["send","k",1],["send","k",2]]"#,
            r#"[["send","k",[0,1]],["send","k",[1,2]]]"#,
        )
        .txn(1, "ok", r#"[["send","k",3]]"#, r#"[["send","k",[2,3]]]"#)
        .check();
    only(&r, &[]);
}

#[test]
fn g0_process_and_g0_realtime_need_the_order_edges() {
    // T0 completes, then T1 is invoked, but T1's message sits before T0's:
    // T1 -ww-> T0 and T0 -> T1 in process (same process) or real time.
    for (p1, name) in [(0, "G0-process"), (1, "G0-realtime")] {
        let r = H::default()
            .txn(0, "ok", r#"[["send","k",1]]"#, r#"[["send","k",[1,1]]]"#)
            .txn(p1, "ok", r#"[["send","k",2]]"#, r#"[["send","k",[0,2]]]"#)
            .check();
        assert_eq!(count(&r, name), 1, "{name}");
        only(&r, &[name]);
        let steps = r.anomalies[name].examples[0]["cycle"]
            .as_array()
            .unwrap()
            .clone();
        let edges: Vec<&str> = steps.iter().map(|s| s["edge"].as_str().unwrap()).collect();
        let order = if p1 == 0 { "process" } else { "realtime" };
        assert_eq!(edges, vec![order, "ww"], "{steps:?}");
    }
}

#[test]
fn g1c_each_transaction_read_what_the_other_wrote() {
    let mut h = H::default();
    h.invoke(0, r#"[["send","a",1],["poll"]]"#)
        .invoke(1, r#"[["send","b",2],["poll"]]"#)
        .done(0, "ok", r#"[["send","a",[0,1]],["poll",{"b":[[0,2]]}]]"#)
        .done(1, "ok", r#"[["send","b",[0,2]],["poll",{"a":[[0,1]]}]]"#);
    let r = h.check();
    assert_eq!(count(&r, "G1c"), 1);
    only(&r, &["G1c"]);
    let e = &r.anomalies["G1c"].examples[0];
    assert_eq!(e["cycle"][0]["edge"], "wr");
    assert_eq!(e["cycle"][1]["edge"], "wr");
    assert_eq!(
        e["cycle"][0]["why"],
        "it sent msg 1 to a at offset 0, which process 1's transaction (op 3) polled"
    );
    // One reads the other's write, not the other way round: no cycle.
    let r = H::default()
        .txn(0, "ok", r#"[["send","a",1]]"#, r#"[["send","a",[0,1]]]"#)
        .txn(
            1,
            "ok",
            r#"[["send","b",2],["poll"]]"#,
            r#"[["send","b",[0,2]],["poll",{"a":[[0,1]]}]]"#,
        )
        .txn(0, "ok", r#"[["poll"]]"#, r#"[["poll",{"b":[[0,2]]}]]"#)
        .check();
    only(&r, &[]);
}

#[test]
fn g1c_process_and_g1c_realtime_read_from_the_future() {
    // T0 completes having read msg 2, which T1, invoked after T0
    // completed, wrote: T1 -wr-> T0 and T0 -> T1 in process or real time.
    for (p1, name) in [(0, "G1c-process"), (1, "G1c-realtime")] {
        let r = H::default()
            .txn(0, "ok", r#"[["poll"]]"#, r#"[["poll",{"k":[[0,2]]}]]"#)
            .txn(p1, "ok", r#"[["send","k",2]]"#, r#"[["send","k",[0,2]]]"#)
            .check();
        assert_eq!(count(&r, name), 1, "{name}");
        only(&r, &[name]);
    }
}

#[test]
fn lost_write_a_committed_message_below_what_was_read() {
    let mut h = H::default();
    h.txn(
        0,
        "ok",
        r#"[["send","k",1],["send","k",2]]"#,
        r#"[["send","k",[0,1]],["send","k",[1,2]]]"#,
    )
    .txn(0, "ok", r#"[["send","k",3]]"#, r#"[["send","k",[3,3]]]"#);
    let mut lost = H {
        lines: h.lines.clone(),
    };
    lost.txn(1, "ok", r#"[["poll"]]"#, r#"[["poll",{"k":[[1,2]]}]]"#);
    let r = lost.check();
    assert_eq!(count(&r, "lost-write"), 1);
    only(&r, &["lost-write"]);
    let e = &r.anomalies["lost-write"].examples[0];
    assert_eq!(
        (e["msg"].as_u64(), e["max-read-offset"].as_u64()),
        (Some(1), Some(1))
    );
    // Reading all of it up to offset 1: msg 3 beyond is merely unread.
    h.txn(
        1,
        "ok",
        r#"[["poll"]]"#,
        r#"[["poll",{"k":[[0,1],[1,2]]}]]"#,
    );
    only(&h.check(), &[]);
}

#[test]
fn duplicate_and_inconsistent_offsets() {
    let r = H::default()
        .txn(0, "ok", r#"[["send","k",1]]"#, r#"[["send","k",[0,1]]]"#)
        .txn(
            1,
            "ok",
            r#"[["poll"]]"#,
            r#"[["poll",{"k":[[0,1],[1,1]]}]]"#,
        )
        .check();
    assert_eq!(count(&r, "duplicate"), 1);
    only(&r, &["duplicate"]);
    let r = H::default()
        .txn(0, "ok", r#"[["send","k",1]]"#, r#"[["send","k",[0,1]]]"#)
        .txn(1, "ok", r#"[["send","k",2]]"#, r#"[["send","k",[0,2]]]"#)
        .check();
    assert_eq!(count(&r, "inconsistent-offsets"), 1);
    only(&r, &["inconsistent-offsets"]);
    let r = H::default()
        .txn(0, "ok", r#"[["send","k",1]]"#, r#"[["send","k",[0,1]]]"#)
        .txn(1, "ok", r#"[["send","k",2]]"#, r#"[["send","k",[1,2]]]"#)
        .txn(
            2,
            "ok",
            r#"[["poll"]]"#,
            r#"[["poll",{"k":[[0,1],[1,2]]}]]"#,
        )
        .check();
    only(&r, &[]);
}

#[test]
fn an_unknown_commit_read_by_a_committed_reader_must_have_committed() {
    // T0 ended info; its msg 1 was read, so its msg 2 (offset 1, below the
    // highest read) is lost; an info transaction nobody read proves nothing.
    let mut h = H::default();
    h.txn(
        0,
        "info",
        r#"[["send","k",1],["send","k",2]]"#,
        r#"[["send","k",[0,1]],["send","k",[1,2]]]"#,
    )
    .txn(1, "ok", r#"[["send","k",3]]"#, r#"[["send","k",[2,3]]]"#);
    let mut seen = H {
        lines: h.lines.clone(),
    };
    seen.txn(
        2,
        "ok",
        r#"[["poll"]]"#,
        r#"[["poll",{"k":[[0,1],[2,3]]}]]"#,
    );
    let r = seen.check();
    assert_eq!(count(&r, "lost-write"), 1);
    assert_eq!(r.anomalies["lost-write"].examples[0]["msg"], 2);
    h.txn(2, "ok", r#"[["poll"]]"#, r#"[["poll",{"k":[[2,3]]}]]"#);
    only(&h.check(), &[]);
    // Never completed: unknown too; its read message is no aborted read.
    let r = H::default()
        .invoke(0, r#"[["send","k",1]]"#)
        .txn(1, "ok", r#"[["poll"]]"#, r#"[["poll",{"k":[[0,1]]}]]"#)
        .check();
    only(&r, &[]);
    assert_eq!(r.counts["txns-unknown"], 1);
}

#[test]
fn bad_input_is_refused_with_the_line() {
    let mut c = TxnChecker::new(1);
    let op = Op::parse(
        r#"{"index":4,"time":0,"process":1,"type":"invoke","f":"txn","value":[["write","k",1]]}"#,
    )
    .unwrap();
    let e = c.observe(&op).unwrap_err();
    assert!(e.to_string().starts_with("line 5 (operation 4)"), "{e}");
    let mut c = TxnChecker::new(1);
    for l in [
        r#"{"index":0,"time":0,"process":1,"type":"invoke","f":"txn","value":[["send","a",1]]}"#,
        r#"{"index":1,"time":0,"process":1,"type":"ok","f":"txn","value":[["send","a",[0,1]]]}"#,
        r#"{"index":2,"time":0,"process":1,"type":"invoke","f":"txn","value":[["send","b",1]]}"#,
        r#"{"index":3,"time":0,"process":1,"type":"ok","f":"txn","value":[["send","b",[0,1]]]}"#,
    ] {
        if let Err(e) = c.observe(&Op::parse(l).unwrap()) {
            assert!(
                matches!(e, CheckError::MessageInTwoLogs { msg: 1, .. }),
                "{e}"
            );
            return;
        }
    }
    panic!("a msg in two logs was accepted");
}

#[test]
fn the_history_checker_runs_it_and_adds_shared_counts_to_the_queue_rows() {
    let mut h = H::default();
    h.txn(0, "fail", r#"[["send","k",1]]"#, r#"[["send","k",[0,1]]]"#)
        .txn(1, "ok", r#"[["poll"]]"#, r#"[["poll",{"k":[[0,1]]}]]"#);
    let mut c = crate::HistoryChecker::new(&crate::CheckOptions::default());
    for l in &h.lines {
        c.observe(&Op::parse(l).unwrap()).unwrap();
    }
    let v = c.finish();
    assert!(
        v.checkers.iter().any(|c| c == catalog::TXN),
        "{:?}",
        v.checkers
    );
    assert_eq!(v.count("G1a"), 1);
    assert_eq!(v.anomalies["G1a"].examples.len(), 1);
    assert_eq!(v.count("G1c"), 0);
    assert_eq!(v.counts["txns"], 2);
    assert!(!v.valid);
    // Without transactions the checker does not run.
    let v = crate::HistoryChecker::new(&crate::CheckOptions::default()).finish();
    assert!(!v.checkers.iter().any(|c| c == catalog::TXN));
    assert!(!v.anomalies.contains_key("G1c"));
}

#[test]
fn a_completion_without_a_value_takes_the_invokes_sends() {
    // Aborted with a null value: msg 1 is still known as aborted, so its
    // read is G1a; unknown with a null value: its read message is not.
    let r = H::default()
        .txn(0, "fail", r#"[["send","k",1]]"#, "null")
        .txn(1, "info", r#"[["send","k",2]]"#, "null")
        .txn(
            2,
            "ok",
            r#"[["poll"]]"#,
            r#"[["poll",{"k":[[0,1],[1,2]]}]]"#,
        )
        .check();
    assert_eq!(count(&r, "G1a"), 1);
    only(&r, &["G1a"]);
    assert_eq!(r.counts["txn-sends"], 2);
}

#[test]
fn a_long_cycle_is_shown_in_part_with_its_length() {
    // 40 transactions send msg t to log k at offset t (a ww chain T0 ->
    // ... -> T39); in log j, T39's message sits before T0's (T39 -> T0): one
    // G0 cycle of 40, closed by ww alone. They end info (no real-time
    // edges), and an ok reader of every message makes each one committed.
    let mut h = H::default();
    for t in 0..40u64 {
        let extra = match t {
            0 => r#",["send","j",[1,100]]"#,
            39 => r#",["send","j",[0,101]]"#,
            _ => "",
        };
        h.invoke(t, "null");
        h.done(t, "info", &format!(r#"[["send","k",[{t},{t}]]{extra}]"#));
    }
    let k: Vec<String> = (0..40u64).map(|t| format!("[{t},{t}]")).collect();
    h.txn(
        100,
        "ok",
        r#"[["poll"]]"#,
        &format!(
            r#"[["poll",{{"k":[{}],"j":[[0,101],[1,100]]}}]]"#,
            k.join(",")
        ),
    );
    let r = h.check();
    assert_eq!(count(&r, "G0"), 1, "{:?}", r.anomalies["G0"]);
    only(&r, &["G0"]);
    let e = &r.anomalies["G0"].examples[0];
    assert_eq!(e["length"], 40);
    assert_eq!(e["shown"], MAX_STEPS);
    assert_eq!(e["cycle"].as_array().unwrap().len(), MAX_STEPS);
}
