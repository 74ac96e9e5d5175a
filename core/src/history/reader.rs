//! Streaming reader: one line in memory at a time, each validated against the
//! format's rules as it is read.

use super::op::{Op, OpType, ProcessRef};
use super::HistoryError;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Something odd but tolerated, reported to the user rather than failing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadWarning {
    /// The last line had no newline and did not parse: the writer was cut off
    /// mid-line (e.g. the control process crashed). It is ignored.
    TruncatedLastLine {
        /// 1-based line number.
        line: u64,
        /// Why it did not parse.
        reason: String,
    },
    /// A client operation was invoked but never completed. Checkers treat it
    /// as `info` (outcome unknown).
    Unfinished {
        /// The client process.
        process: u64,
        /// The operation.
        f: String,
        /// Index of its invoke.
        index: u64,
    },
}

impl fmt::Display for ReadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadWarning::TruncatedLastLine { line, reason } => write!(
                f,
                "line {line}: last line is truncated ({reason}); ignored, as the writer was cut off mid-line"
            ),
            ReadWarning::Unfinished { process, f: name, index } => write!(
                f,
                "process {process}'s {name} invoked at index {index} never completed; treated as info (outcome unknown)"
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    InFlight,
    /// Ended with `info`: may never invoke again.
    Crashed,
}

struct ClientState {
    phase: Phase,
    /// `f` of the operation in flight (or of the `info` that crashed it);
    /// reused between operations so steady state allocates nothing.
    f: String,
    /// Index of that operation's invoke (or of the `info`).
    index: u64,
}

/// Client states by process number: a vector for the usual small numbers
/// (hashing on every line showed up in profiles), a map for the rest.
#[derive(Default)]
struct Clients {
    dense: Vec<Option<ClientState>>,
    sparse: HashMap<u64, ClientState>,
}

const DENSE_CLIENTS: u64 = 1 << 16;

impl Clients {
    fn get_mut(&mut self, p: u64) -> &mut ClientState {
        let fresh = || ClientState {
            phase: Phase::Idle,
            f: String::new(),
            index: 0,
        };
        if p < DENSE_CLIENTS {
            let i = p as usize;
            if i >= self.dense.len() {
                self.dense.resize_with(i + 1, || None);
            }
            self.dense[i].get_or_insert_with(fresh)
        } else {
            self.sparse.entry(p).or_insert_with(fresh)
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &ClientState)> {
        self.dense
            .iter()
            .enumerate()
            .filter_map(|(p, s)| s.as_ref().map(|s| (p as u64, s)))
            .chain(self.sparse.iter().map(|(p, s)| (*p, s)))
    }
}

/// Reads a history line by line, checking every rule of the format that one
/// pass can check: JSON shape and types, `index` counting from 0, `time` never
/// decreasing, and the invoke/completion discipline of client processes.
///
/// It lends out each [`Op`] borrowing from its line buffer, so use it as
/// `while let Some(op) = reader.next_op() { let op = op?; ... }`.
pub struct HistoryReader<R> {
    src: R,
    path: PathBuf,
    lines: LineBuffer,
    line_no: u64,
    next_index: u64,
    last_time: u64,
    clients: Clients,
    warnings: Vec<ReadWarning>,
    done: bool,
}

/// Splits a byte stream into lines without copying them out of its buffer:
/// each line is parsed where it was read.
struct LineBuffer {
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// `buf[start..scanned]` holds no newline.
    scanned: usize,
    eof: bool,
}

impl LineBuffer {
    fn new(capacity: usize) -> Self {
        LineBuffer {
            buf: vec![0; capacity.max(64)],
            start: 0,
            end: 0,
            scanned: 0,
            eof: false,
        }
    }

    /// The next line as a range of `buf` and whether it ended with a
    /// newline (which the range excludes); `None` at the end.
    fn next_line<R: Read>(
        &mut self,
        src: &mut R,
    ) -> std::io::Result<Option<(std::ops::Range<usize>, bool)>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
                let line = self.start..self.scanned + i;
                self.start = self.scanned + i + 1;
                self.scanned = self.start;
                return Ok(Some((line, true)));
            }
            self.scanned = self.end;
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let line = self.start..self.end;
                self.start = self.end;
                self.scanned = self.end;
                return Ok(Some((line, false)));
            }
            // Make room: move the partial line to the front, grow if it
            // fills the whole buffer.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.scanned -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let len = self.buf.len();
                self.buf.resize(len * 2, 0);
            }
            match src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl HistoryReader<File> {
    /// Opens a history file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| HistoryError::Io {
            path: path.to_owned(),
            cause: source,
        })?;
        Ok(Self::new(file, path))
    }
}

impl<R: Read> HistoryReader<R> {
    /// Reads from any source (it buffers itself); `path` names it in messages.
    pub fn new(src: R, path: impl Into<PathBuf>) -> Self {
        Self::with_buffer(src, path, 1 << 20)
    }

    fn with_buffer(src: R, path: impl Into<PathBuf>, capacity: usize) -> Self {
        HistoryReader {
            src,
            path: path.into(),
            lines: LineBuffer::new(capacity),
            line_no: 0,
            next_index: 0,
            last_time: 0,
            clients: Clients::default(),
            warnings: Vec::new(),
            done: false,
        }
    }

    fn malformed(path: &Path, line: u64, reason: impl Into<String>) -> HistoryError {
        HistoryError::Malformed {
            path: path.to_owned(),
            line,
            reason: reason.into(),
        }
    }

    /// The next operation; `None` at the end (or after an error).
    pub fn next_op(&mut self) -> Option<Result<Op<'_>, HistoryError>> {
        if self.done {
            return None;
        }
        let (range, complete) = match self.lines.next_line(&mut self.src) {
            Ok(Some(line)) => line,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(source) => {
                self.done = true;
                return Some(Err(HistoryError::Io {
                    path: self.path.clone(),
                    cause: source,
                }));
            }
        };
        self.line_no += 1;
        let line_no = self.line_no;
        let mut bytes = &self.lines.buf[range];
        if let [rest @ .., b'\r'] = bytes {
            if complete {
                bytes = rest;
            }
        }
        let path = &self.path;
        let parsed = std::str::from_utf8(bytes)
            .map_err(|e| format!("not UTF-8 ({e})"))
            .and_then(|text| {
                if text.trim().is_empty() {
                    Err("blank line (every line must be one operation)".to_string())
                } else {
                    Op::parse(text).map_err(|e| format!("not a valid operation: {e}"))
                }
            });
        let op = match parsed {
            Ok(op) => op,
            Err(reason) => {
                self.done = true;
                if !complete {
                    self.warnings.push(ReadWarning::TruncatedLastLine {
                        line: line_no,
                        reason,
                    });
                    return None;
                }
                return Some(Err(Self::malformed(path, line_no, reason)));
            }
        };
        if let Err(reason) = check_rules(&op, self.next_index, self.last_time, &mut self.clients) {
            self.done = true;
            return Some(Err(Self::malformed(path, line_no, reason)));
        }
        self.next_index += 1;
        self.last_time = op.time;
        Some(Ok(op))
    }

    /// Warnings so far (truncated last line).
    pub fn warnings(&self) -> &[ReadWarning] {
        &self.warnings
    }

    /// Number of operations read so far.
    pub fn ops_read(&self) -> u64 {
        self.next_index
    }

    /// Ends reading: all warnings, including client operations left in
    /// flight, in index order.
    pub fn finish(mut self) -> Vec<ReadWarning> {
        let mut unfinished: Vec<ReadWarning> = self
            .clients
            .iter()
            .filter(|(_, s)| s.phase == Phase::InFlight)
            .map(|(p, s)| ReadWarning::Unfinished {
                process: p,
                f: s.f.clone(),
                index: s.index,
            })
            .collect();
        unfinished.sort_by_key(|w| match w {
            ReadWarning::Unfinished { index, .. } => *index,
            ReadWarning::TruncatedLastLine { .. } => 0,
        });
        self.warnings.extend(unfinished);
        self.warnings
    }
}

fn check_rules(
    op: &Op<'_>,
    expected_index: u64,
    last_time: u64,
    clients: &mut Clients,
) -> Result<(), String> {
    if op.index != expected_index {
        return Err(format!(
            "index is {} but {expected_index} was expected (indices count the lines from 0)",
            op.index
        ));
    }
    if op.time < last_time {
        return Err(format!(
            "time {} is before the previous line's {last_time} (time must never decrease)",
            op.time
        ));
    }
    let ProcessRef::Client(p) = op.process else {
        return Ok(());
    };
    let state = clients.get_mut(p);
    match (op.op_type, state.phase) {
        (OpType::Invoke, Phase::Idle) => {
            state.phase = Phase::InFlight;
            state.f.clear();
            state.f.push_str(&op.f);
            state.index = op.index;
            Ok(())
        }
        (OpType::Invoke, Phase::InFlight) => Err(format!(
            "process {p} invokes {} while its {} invoked at index {} is still in flight (one operation per process at a time)",
            op.f, state.f, state.index
        )),
        (OpType::Invoke, Phase::Crashed) => Err(format!(
            "process {p} invokes {} after its {} ended info at index {} (a client whose operation ended info must not invoke again; use a new process number)",
            op.f, state.f, state.index
        )),
        (t, Phase::InFlight) => {
            if state.f != op.f {
                return Err(format!(
                    "process {p} completes {} but its operation in flight is {} (invoked at index {})",
                    op.f, state.f, state.index
                ));
            }
            state.phase = if t == OpType::Info {
                Phase::Crashed
            } else {
                Phase::Idle
            };
            state.index = op.index;
            Ok(())
        }
        (t, _) => Err(format!(
            "process {p} completes {} with {} but has no operation in flight (a completion needs an earlier invoke)",
            op.f,
            t.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Result<(Vec<u64>, Vec<ReadWarning>), HistoryError> {
        let mut r = HistoryReader::new(text.as_bytes(), "h.jsonl");
        let mut indices = Vec::new();
        while let Some(op) = r.next_op() {
            indices.push(op?.index);
        }
        Ok((indices, r.finish()))
    }

    const SEND: &str = r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":{"key":"q","msg":1}}
{"index":1,"time":2,"process":0,"type":"ok","f":"send","value":{"key":"q","msg":1,"offset":0}}
"#;

    fn err_of(text: &str) -> String {
        read_all(text).unwrap_err().to_string()
    }

    #[test]
    fn reads_a_valid_history() {
        let (ix, w) = read_all(SEND).unwrap();
        assert_eq!(ix, vec![0, 1]);
        assert!(w.is_empty());
    }

    /// Hands out a few bytes per read, like a pipe or a slow disk.
    struct Trickle<'a>(&'a [u8], usize);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn small_reads_and_lines_longer_than_the_buffer() {
        let long_value = format!("\"{}\"", "x".repeat(300));
        let text = format!(
            "{SEND}{{\"index\":2,\"time\":3,\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"kill\",\"value\":{long_value}}}\r\n{{\"index\":3,\"time\":3,\"proc"
        );
        for (chunk, capacity) in [(1, 64), (3, 64), (7, 100), (1000, 64), (5, 4096)] {
            let mut r = HistoryReader::with_buffer(Trickle(text.as_bytes(), chunk), "h", capacity);
            let mut seen = Vec::new();
            while let Some(op) = r.next_op() {
                let op = op.unwrap();
                seen.push((op.index, op.f.to_string()));
            }
            assert_eq!(
                seen,
                vec![(0, "send".into()), (1, "send".into()), (2, "kill".into())]
            );
            assert!(matches!(
                r.finish()[..],
                [ReadWarning::TruncatedLastLine { line: 4, .. }]
            ));
        }
    }

    #[test]
    fn empty_input_has_no_ops() {
        let (ix, w) = read_all("").unwrap();
        assert!(ix.is_empty() && w.is_empty());
    }

    #[test]
    fn truncated_last_line_is_a_warning() {
        let text = format!("{SEND}{{\"index\":2,\"time\":3,\"proc");
        let (ix, w) = read_all(&text).unwrap();
        assert_eq!(ix, vec![0, 1]);
        assert!(matches!(
            w[0],
            ReadWarning::TruncatedLastLine { line: 3, .. }
        ));
    }

    #[test]
    fn last_line_without_newline_but_complete_is_read() {
        let (ix, _) = read_all(SEND.trim_end()).unwrap();
        assert_eq!(ix, vec![0, 1]);
    }

    #[test]
    fn garbage_in_the_middle_is_an_error_with_line_number() {
        let text = format!("garbage\n{SEND}");
        let e = err_of(&text);
        assert!(e.starts_with("h.jsonl:1: not a valid operation"), "{e}");
        let text = format!("{SEND}\n");
        assert!(err_of(&text).contains("h.jsonl:3: blank line"));
        let bad_utf8 = b"\xff\xfe\n".to_vec();
        let mut r = HistoryReader::new(&bad_utf8[..], "h.jsonl");
        let e = r.next_op().unwrap().unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn wrong_index_and_time_are_errors() {
        let e = err_of(
            r#"{"index":1,"time":1,"process":"nemesis","type":"info","f":"heal","value":null}
"#,
        );
        assert!(e.contains("index is 1 but 0 was expected"), "{e}");
        let e = err_of(
            r#"{"index":0,"time":5,"process":"nemesis","type":"info","f":"heal","value":null}
{"index":1,"time":4,"process":"nemesis","type":"info","f":"heal","value":null}
"#,
        );
        assert!(e.contains("h.jsonl:2: time 4 is before"), "{e}");
    }

    #[test]
    fn completion_without_invoke_is_an_error() {
        let e = err_of(
            r#"{"index":0,"time":1,"process":0,"type":"ok","f":"send","value":{"key":"q","msg":1,"offset":0}}
"#,
        );
        assert!(e.contains("no operation in flight"), "{e}");
    }

    #[test]
    fn double_invoke_and_invoke_after_info_are_errors() {
        let e = err_of(
            r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":{"key":"q","msg":1}}
{"index":1,"time":1,"process":0,"type":"invoke","f":"poll","value":null}
"#,
        );
        assert!(e.contains("still in flight"), "{e}");
        let e = err_of(
            r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"poll","value":null}
{"index":1,"time":1,"process":0,"type":"info","f":"poll","value":null}
{"index":2,"time":1,"process":0,"type":"invoke","f":"poll","value":null}
"#,
        );
        assert!(e.contains("must not invoke again"), "{e}");
        let e = err_of(
            r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"poll","value":null}
{"index":1,"time":1,"process":0,"type":"ok","f":"send","value":null}
"#,
        );
        assert!(e.contains("in flight is poll"), "{e}");
    }

    #[test]
    fn missing_completion_is_a_warning() {
        let (_, w) = read_all(
            r#"{"index":0,"time":1,"process":3,"type":"invoke","f":"poll","value":null}
"#,
        )
        .unwrap();
        assert_eq!(
            w,
            vec![ReadWarning::Unfinished {
                process: 3,
                f: "poll".into(),
                index: 0
            }]
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Reads everything, returning whether it ended in an error; must never panic.
    fn drain(bytes: &[u8]) -> bool {
        let mut r = HistoryReader::new(bytes, "fuzz.jsonl");
        let mut failed = false;
        while let Some(op) = r.next_op() {
            if op.is_err() {
                failed = true;
            }
        }
        let _ = r.finish();
        failed
    }

    const LINES: &[&str] = &[
        r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":{"key":"q","msg":1}}"#,
        r#"{"index":1,"time":2,"process":0,"type":"ok","f":"send","value":{"key":"q","msg":1,"offset":0}}"#,
        r#"{"index":2,"time":3,"process":1,"type":"invoke","f":"poll","value":null}"#,
        r#"{"index":3,"time":4,"process":1,"type":"ok","f":"poll","value":{"records":{"q":[[0,1]]},"applied":[1]}}"#,
        r#"{"index":4,"time":5,"process":"observer","type":"ok","f":"observe","value":{"zookeeper":[],"kafka":[]}}"#,
    ];

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            drain(&bytes);
        }

        #[test]
        fn mutated_valid_lines_never_panic(
            picks in proptest::collection::vec((0..LINES.len(), 0usize..200, any::<u8>()), 0..12)
        ) {
            let mut text = Vec::new();
            for (i, pos, byte) in picks {
                let mut line = LINES[i].as_bytes().to_vec();
                if pos < line.len() {
                    line[pos] = byte;
                }
                text.extend_from_slice(&line);
                text.push(b'\n');
            }
            drain(&text);
        }

        #[test]
        fn any_prefix_of_a_valid_history_reads_or_warns(cut in 0usize..400) {
            let text = LINES.join("\n") + "\n";
            let cut = cut.min(text.len());
            // A prefix is exactly what a crash mid-write leaves: never an error.
            prop_assert!(!drain(&text.as_bytes()[..cut]));
        }
    }
}
