//! The one history writer of a run. Every task records through a clone of it;
//! it gives each operation its `index` and `time` and writes and flushes the
//! line before returning, so a crash of the control process loses at most the
//! line being written.
//!
//! Design: a mutex around the output. The line's tail (process, type, f,
//! value) is serialized *outside* the lock into the caller's own buffer; under
//! the lock only the index and time are formatted and the bytes handed to the
//! kernel. Taking the time under the lock is what makes `time` non-decreasing
//! in file order.

use super::op::{OpType, Process};
use super::HistoryError;
use crate::cluster::Observation;
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

struct Output {
    out: Box<dyn Write + Send>,
    next_index: u64,
    last_time: u64,
    /// Set after a write error: the file may now end mid-line, so nothing
    /// more is appended.
    broken: bool,
}

struct Shared {
    path: PathBuf,
    start: Instant,
    /// The wall clock at `start`: maps history times to server log times.
    started_at: std::time::SystemTime,
    output: Mutex<Output>,
}

/// Appends operations to a history. Cheap to clone; clones share one file.
#[derive(Clone)]
pub struct HistoryWriter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HistoryWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryWriter")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl HistoryWriter {
    /// Creates a new history file; refuses to overwrite an existing one.
    /// The test's clock (time 0) starts now.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| HistoryError::Io {
                path: path.to_owned(),
                cause: source,
            })?;
        Ok(Self::from_writer(file, path))
    }

    /// Writes to any sink (e.g. a `Vec<u8>` behind a handle in tests); `path`
    /// names it in errors. Every line is flushed to it.
    pub fn from_writer(out: impl Write + Send + 'static, path: impl Into<PathBuf>) -> Self {
        HistoryWriter {
            shared: Arc::new(Shared {
                path: path.into(),
                start: Instant::now(),
                started_at: std::time::SystemTime::now(),
                output: Mutex::new(Output {
                    out: Box::new(out),
                    next_index: 0,
                    last_time: 0,
                    broken: false,
                }),
            }),
        }
    }

    /// The wall-clock time of the test's time 0 (taken with it), so that
    /// a history time can be matched with the servers' log timestamps.
    pub fn started_at(&self) -> std::time::SystemTime {
        self.shared.started_at
    }

    /// Records one operation and returns its index.
    pub fn record<V: Serialize + ?Sized>(
        &self,
        process: &Process,
        op_type: OpType,
        f: &str,
        value: &V,
    ) -> Result<u64, HistoryError> {
        let tail = Tail {
            process,
            op_type,
            f,
            value,
        };
        let mut line = Vec::with_capacity(128);
        serde_json::to_writer(&mut line, &tail).map_err(|e| self.io_error(e.into()))?;
        // `line` is `{"process":...}`: drop its `{`, the index and time go first.
        self.append(&line[1..])
    }

    fn io_error(&self, source: std::io::Error) -> HistoryError {
        HistoryError::Io {
            path: self.shared.path.clone(),
            cause: source,
        }
    }

    fn append(&self, tail: &[u8]) -> Result<u64, HistoryError> {
        // A panic elsewhere while holding the lock cannot leave a half-written
        // line (writes happen after formatting), so a poisoned lock is usable.
        let mut out = self
            .shared
            .output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if out.broken {
            return Err(self.io_error(std::io::Error::other(
                "an earlier write to this history failed; no more operations are recorded",
            )));
        }
        let now = self.shared.start.elapsed().as_nanos() as u64;
        let time = now.max(out.last_time);
        let index = out.next_index;
        let mut head = [0u8; 64];
        let head_len = {
            let mut cursor = std::io::Cursor::new(&mut head[..]);
            // Cannot fail: two u64s fit in 64 bytes with the keys.
            let _ = write!(cursor, "{{\"index\":{index},\"time\":{time},");
            cursor.position() as usize
        };
        let result = out
            .out
            .write_all(&head[..head_len])
            .and_then(|_| out.out.write_all(tail))
            .and_then(|_| out.out.write_all(b"\n"))
            .and_then(|_| out.out.flush());
        if let Err(e) = result {
            out.broken = true;
            return Err(self.io_error(e));
        }
        out.next_index += 1;
        out.last_time = time;
        Ok(index)
    }

    /// Number of operations written so far.
    pub fn ops_written(&self) -> u64 {
        self.shared
            .output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_index
    }

    /// The file (or name) this writer appends to.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// A recorder for one client process.
    pub fn client(&self, process: u64) -> ClientRecorder {
        ClientRecorder {
            writer: self.clone(),
            process: Process::Client(process),
        }
    }

    /// Records a nemesis event: `f` names the fault (`"start-partition"`,
    /// `"heal"`, `"kill"`, `"rapid-add"`, ...), `value` says what was done
    /// to which node.
    pub fn nemesis<V: Serialize + ?Sized>(
        &self,
        op_type: OpType,
        f: &str,
        value: &V,
    ) -> Result<u64, HistoryError> {
        self.record(&Process::Named("nemesis".into()), op_type, f, value)
    }

    /// Records an observer sample (`process: "observer"`, `f: "observe"`).
    pub fn observe(&self, observation: &Observation) -> Result<u64, HistoryError> {
        self.record(
            &Process::Named("observer".into()),
            OpType::Ok,
            "observe",
            observation,
        )
    }

    /// Records that a message was stored durably in the dead-letter queue.
    /// Call it only after the DLQ journal is synced.
    pub fn dlq(&self, key: &str, msg: u64) -> Result<u64, HistoryError> {
        self.record(
            &Process::Named("dlq".into()),
            OpType::Ok,
            "dlq",
            &Message {
                key,
                msg,
                offset: None,
            },
        )
    }
}

struct Tail<'a, V: ?Sized> {
    process: &'a Process,
    op_type: OpType,
    f: &'a str,
    value: &'a V,
}

impl<V: Serialize + ?Sized> Serialize for Tail<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Op", 4)?;
        st.serialize_field("process", self.process)?;
        st.serialize_field("type", &self.op_type)?;
        st.serialize_field("f", self.f)?;
        st.serialize_field("value", self.value)?;
        st.end()
    }
}

#[derive(Serialize)]
struct Message<'a> {
    key: &'a str,
    msg: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
}

/// What a poll returned, for [`ClientRecorder::ok_poll`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollRecords {
    /// Per log, `(offset, msg)` in the order received.
    pub records: Vec<(String, Vec<(u64, u64)>)>,
    /// Messages whose effect the consumer applied for the first time.
    pub applied: Vec<u64>,
    /// Logs newly assigned to the consumer since its previous poll.
    pub rebalance: Vec<String>,
}

impl Serialize for PollRecords {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct RecordsMap<'a>(&'a [(String, Vec<(u64, u64)>)]);
        impl Serialize for RecordsMap<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (k, pairs) in self.0 {
                    m.serialize_entry(k, pairs)?;
                }
                m.end()
            }
        }
        let n = 1 + usize::from(!self.applied.is_empty()) + usize::from(!self.rebalance.is_empty());
        let mut st = s.serialize_struct("Poll", n)?;
        st.serialize_field("records", &RecordsMap(&self.records))?;
        if !self.applied.is_empty() {
            st.serialize_field("applied", &self.applied)?;
        }
        if !self.rebalance.is_empty() {
            st.serialize_field("rebalance", &self.rebalance)?;
        }
        st.end()
    }
}

/// Records the operations of one client process with the documented values.
#[derive(Clone, Debug)]
pub struct ClientRecorder {
    writer: HistoryWriter,
    process: Process,
}

impl ClientRecorder {
    fn message(
        &self,
        op_type: OpType,
        f: &str,
        key: &str,
        msg: u64,
        offset: Option<u64>,
    ) -> Result<u64, HistoryError> {
        self.writer
            .record(&self.process, op_type, f, &Message { key, msg, offset })
    }

    /// `send` invoked.
    pub fn invoke_send(&self, key: &str, msg: u64) -> Result<u64, HistoryError> {
        self.message(OpType::Invoke, "send", key, msg, None)
    }
    /// `send` acknowledged at `offset`.
    pub fn ok_send(&self, key: &str, msg: u64, offset: u64) -> Result<u64, HistoryError> {
        self.message(OpType::Ok, "send", key, msg, Some(offset))
    }
    /// `send` definitely failed.
    pub fn fail_send(&self, key: &str, msg: u64) -> Result<u64, HistoryError> {
        self.message(OpType::Fail, "send", key, msg, None)
    }
    /// `send` outcome unknown. The process must not invoke again.
    pub fn info_send(&self, key: &str, msg: u64) -> Result<u64, HistoryError> {
        self.message(OpType::Info, "send", key, msg, None)
    }
    /// `replay` (re-send of a DLQ message) invoked.
    pub fn invoke_replay(&self, key: &str, msg: u64) -> Result<u64, HistoryError> {
        self.message(OpType::Invoke, "replay", key, msg, None)
    }
    /// `replay` acknowledged at `offset`.
    pub fn ok_replay(&self, key: &str, msg: u64, offset: u64) -> Result<u64, HistoryError> {
        self.message(OpType::Ok, "replay", key, msg, Some(offset))
    }
    /// `replay` definitely failed.
    pub fn fail_replay(&self, key: &str, msg: u64) -> Result<u64, HistoryError> {
        self.message(OpType::Fail, "replay", key, msg, None)
    }
    /// `replay` outcome unknown.
    pub fn info_replay(&self, key: &str, msg: u64) -> Result<u64, HistoryError> {
        self.message(OpType::Info, "replay", key, msg, None)
    }
    /// `poll` invoked.
    pub fn invoke_poll(&self) -> Result<u64, HistoryError> {
        self.writer
            .record(&self.process, OpType::Invoke, "poll", &())
    }
    /// `poll` returned these records.
    pub fn ok_poll(&self, records: &PollRecords) -> Result<u64, HistoryError> {
        self.writer
            .record(&self.process, OpType::Ok, "poll", records)
    }
    /// `poll` failed (returned nothing).
    pub fn fail_poll(&self) -> Result<u64, HistoryError> {
        self.writer.record(&self.process, OpType::Fail, "poll", &())
    }
    /// `poll` outcome unknown.
    pub fn info_poll(&self) -> Result<u64, HistoryError> {
        self.writer.record(&self.process, OpType::Info, "poll", &())
    }
    /// The process this recorder writes as.
    pub fn process(&self) -> &Process {
        &self.process
    }
}

#[cfg(test)]
mod tests {
    use super::super::{HistoryReader, Op, OpValue};
    use super::*;

    /// A `Write` into a shared buffer, so the test can read what was written.
    #[derive(Clone, Default)]
    struct SharedBuf(Arc<Mutex<Vec<u8>>>);
    impl Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_documented_shapes() {
        let buf = SharedBuf::default();
        let w = HistoryWriter::from_writer(buf.clone(), "mem");
        let c = w.client(0);
        c.invoke_send("queue-0", 7).unwrap();
        c.ok_send("queue-0", 7, 3).unwrap();
        c.invoke_poll().unwrap();
        c.ok_poll(&PollRecords {
            records: vec![("queue-0".into(), vec![(3, 7)])],
            applied: vec![7],
            rebalance: vec![],
        })
        .unwrap();
        w.dlq("queue-1", 9).unwrap();
        w.nemesis(OpType::Info, "kill", &serde_json::json!({"node": "n1"}))
            .unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(
            lines[1].starts_with(r#"{"index":1,"time":"#),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with(
            r#""process":0,"type":"ok","f":"send","value":{"key":"queue-0","msg":7,"offset":3}}"#
        ));
        assert!(
            lines[2].ends_with(r#""f":"poll","value":null}"#),
            "{}",
            lines[2]
        );
        assert!(lines[3].ends_with(r#""value":{"records":{"queue-0":[[3,7]]},"applied":[7]}}"#));
        assert!(lines[4].contains(r#""process":"dlq","type":"ok","f":"dlq""#));
        let op = Op::parse(lines[3]).unwrap();
        assert!(matches!(op.value, OpValue::Poll(_)));
    }

    #[test]
    fn create_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let w = HistoryWriter::create(&path).unwrap();
        w.nemesis(OpType::Info, "heal", &()).unwrap();
        drop(w);
        let err = HistoryWriter::create(&path).unwrap_err().to_string();
        assert!(err.contains("history.jsonl"), "{err}");
        // The line was flushed without the writer being dropped explicitly first.
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }

    #[test]
    fn concurrent_threads_and_tasks_write_a_valid_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let w = HistoryWriter::create(&path).unwrap();
        let threads = 8u64;
        let per_thread = 2_000u64;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let c = w.client(t);
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        let msg = t * per_thread + i;
                        c.invoke_send("queue-0", msg).unwrap();
                        c.ok_send("queue-0", msg, msg).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(w.ops_written(), threads * per_thread * 2);
        let mut r = HistoryReader::open(&path).unwrap();
        let (mut count, mut last_index, mut last_time) = (0u64, None, 0u64);
        while let Some(op) = r.next_op() {
            let op = op.unwrap();
            if let Some(prev) = last_index {
                assert!(op.index > prev);
            }
            assert!(op.time >= last_time);
            last_index = Some(op.index);
            last_time = op.time;
            count += 1;
        }
        assert_eq!(count, threads * per_thread * 2);
        assert!(r.finish().is_empty());
    }

    #[test]
    fn tokio_tasks_and_threads_share_one_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let w = HistoryWriter::create(&path).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..16u64)
            .map(|p| {
                let c = w.client(p);
                rt.spawn(async move {
                    for _ in 0..200 {
                        c.invoke_poll().unwrap();
                        c.ok_poll(&PollRecords::default()).unwrap();
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let thread = {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    w.nemesis(OpType::Info, "heal", &i).unwrap();
                }
            })
        };
        rt.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
        });
        thread.join().unwrap();
        let mut r = HistoryReader::open(&path).unwrap();
        let mut n = 0u64;
        let mut last_time = 0;
        while let Some(op) = r.next_op() {
            let op = op.unwrap();
            assert_eq!(op.index, n);
            assert!(op.time >= last_time);
            last_time = op.time;
            n += 1;
        }
        assert_eq!(n, 16 * 200 * 2 + 500);
        assert!(r.finish().is_empty());
    }

    /// Measures recording throughput with 8 threads; prints ops/s. Run with
    /// `cargo test -p splitbrain-core --release writer_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn writer_throughput() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let w = HistoryWriter::create(&path).unwrap();
        let per_thread = 50_000u64;
        let start = Instant::now();
        let handles: Vec<_> = (0..8u64)
            .map(|t| {
                let c = w.client(t);
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        c.invoke_send("queue-0", t * per_thread + i).unwrap();
                        c.ok_send("queue-0", t * per_thread + i, i).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let ops = w.ops_written();
        println!(
            "history writer: {ops} ops in {secs:.2} s = {:.0} ops/s (8 threads, flush per line)",
            ops as f64 / secs
        );
        assert_eq!(ops, 8 * per_thread * 2);
    }
}
