//! A scanner for the lines splitbrain's own writers produce, in their exact
//! layout (no whitespace, the documented field order, plain strings):
//!
//! `{"index":N,"time":N,"process":P,"type":"T","f":"F","value":V}`
//!
//! with `V` `null`, a message (`send`, `replay`, `dlq`:
//! `{"key":"K","msg":N}` or `{"key":"K","msg":N,"offset":N}`) or an `ok`
//! poll's records (`{"records":{"K":[[N,N],...],...},"applied":[N,...]}`).
//! Those are nearly every line of a history, and reading them is most of
//! `splitbrain check`'s time; serde's general machinery costs about twice a
//! bare syntax check on them.
//!
//! It accepts a strict subset of what [`Op::parse`](super::Op::parse)
//! accepts and returns the same [`Op`] for it; anything else (other
//! layouts, escapes, floats, other values, trailing text) returns `None`,
//! and the line goes through serde, which also gives the error messages.

use super::op::{MessageValue, Op, OpType, OpValue, PollValue, ProcessRef, Records};
use std::borrow::Cow;

struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    #[inline]
    fn lit(&mut self, s: &str) -> Option<()> {
        if self.text.as_bytes()[self.pos..].starts_with(s.as_bytes()) {
            self.pos += s.len();
            Some(())
        } else {
            None
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// A JSON integer in u64 range: digits, no leading zero, followed by
    /// something that is not part of a number.
    #[inline]
    fn u64(&mut self) -> Option<u64> {
        let b = self.text.as_bytes();
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(&c) = b.get(self.pos) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.pos += 1;
        }
        let len = self.pos - start;
        if len == 0 || (len > 1 && b[start] == b'0') {
            return None;
        }
        match b.get(self.pos) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(v),
        }
    }

    /// A string without escapes or control characters, after its opening
    /// quote; borrowed from the line.
    #[inline]
    fn plain_str(&mut self) -> Option<&'a str> {
        self.lit("\"")?;
        let b = self.text.as_bytes();
        let start = self.pos;
        let end = start + memchr::memchr(b'"', &b[start..])?;
        if b[start..end].iter().any(|&c| c == b'\\' || c < 0x20) {
            return None;
        }
        self.pos = end + 1;
        // Quotes are ASCII, so both ends are character boundaries.
        Some(&self.text[start..end])
    }

    /// `[N,N,...]` (possibly empty).
    fn u64_array(&mut self, out: &mut Vec<u64>) -> Option<()> {
        self.lit("[")?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Some(());
        }
        loop {
            out.push(self.u64()?);
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `[[N,N],...]` (possibly empty).
    fn pairs(&mut self) -> Option<Vec<(u64, u64)>> {
        self.lit("[")?;
        let mut out = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Some(out);
        }
        loop {
            self.lit("[")?;
            let o = self.u64()?;
            self.lit(",")?;
            let m = self.u64()?;
            self.lit("]")?;
            out.push((o, m));
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(out);
                }
                _ => return None,
            }
        }
    }

    fn message(&mut self) -> Option<MessageValue<'a>> {
        self.lit("{")?;
        self.lit("\"key\":")?;
        let key = self.plain_str()?;
        self.lit(",\"msg\":")?;
        let msg = self.u64()?;
        let offset = if self.peek() == Some(b',') {
            self.lit(",\"offset\":")?;
            Some(self.u64()?)
        } else {
            None
        };
        self.lit("}")?;
        Some(MessageValue {
            key: Cow::Borrowed(key),
            msg,
            offset,
        })
    }

    fn poll(&mut self) -> Option<PollValue<'a>> {
        self.lit("{\"records\":{")?;
        let mut records = Vec::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                let key = self.plain_str()?;
                self.lit(":")?;
                records.push((Cow::Borrowed(key), self.pairs()?));
                match self.peek()? {
                    b',' => self.pos += 1,
                    b'}' => {
                        self.pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        let mut applied = Vec::new();
        if self.peek() == Some(b',') {
            self.lit(",\"applied\":")?;
            self.u64_array(&mut applied)?;
        }
        self.lit("}")?;
        Some(PollValue {
            records: Records(records),
            applied,
            rebalance: Vec::new(),
        })
    }
}

/// Parses `line` if it has the writers' exact layout; `None` otherwise
/// (then parse it with serde).
pub(crate) fn parse(line: &str) -> Option<Op<'_>> {
    let mut s = Scan { text: line, pos: 0 };
    s.lit("{\"index\":")?;
    let index = s.u64()?;
    s.lit(",\"time\":")?;
    let time = s.u64()?;
    s.lit(",\"process\":")?;
    let process = if s.peek() == Some(b'"') {
        ProcessRef::Named(Cow::Borrowed(s.plain_str()?))
    } else {
        ProcessRef::Client(s.u64()?)
    };
    s.lit(",\"type\":")?;
    let op_type = match s.plain_str()? {
        "invoke" => OpType::Invoke,
        "ok" => OpType::Ok,
        "fail" => OpType::Fail,
        "info" => OpType::Info,
        _ => return None,
    };
    s.lit(",\"f\":")?;
    let f = s.plain_str()?;
    s.lit(",\"value\":")?;
    let value = if s.lit("null").is_some() {
        OpValue::Null
    } else {
        match (f, op_type) {
            ("send" | "replay" | "dlq", _) => OpValue::Message(s.message()?),
            ("poll", OpType::Ok) => OpValue::Poll(s.poll()?),
            _ => return None,
        }
    };
    s.lit("}")?;
    if s.pos != line.len() {
        return None;
    }
    Some(Op {
        index,
        time,
        process,
        op_type,
        f: Cow::Borrowed(f),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines the fast path takes, and must read exactly as serde does.
    const TAKEN: &[&str] = &[
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"send","value":{"key":"queue-0","msg":1}}"#,
        r#"{"index":1,"time":25,"process":0,"type":"ok","f":"send","value":{"key":"queue-0","msg":1,"offset":0}}"#,
        r#"{"index":2,"time":30,"process":4,"type":"invoke","f":"poll","value":null}"#,
        r#"{"index":3,"time":41,"process":4,"type":"ok","f":"poll","value":{"records":{"queue-0":[[0,1],[1,5]],"queue-4":[[7,9]]},"applied":[1,5,9]}}"#,
        r#"{"index":4,"time":41,"process":4,"type":"ok","f":"poll","value":{"records":{}}}"#,
        r#"{"index":5,"time":41,"process":4,"type":"ok","f":"poll","value":{"records":{"q":[]},"applied":[]}}"#,
        r#"{"index":6,"time":50,"process":"dlq","type":"ok","f":"dlq","value":{"key":"queue-0","msg":18446744073709551614}}"#,
        r#"{"index":7,"time":50,"process":3,"type":"info","f":"send","value":null}"#,
        r#"{"index":8,"time":50,"process":"nemesis","type":"info","f":"heal","value":null}"#,
        r#"{"index":9,"time":51,"process":2,"type":"fail","f":"replay","value":{"key":"é-0","msg":0}}"#,
    ];

    /// Lines it leaves to serde (which accepts some and rejects others).
    const LEFT: &[&str] = &[
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"send","value":{"key":"q\"x","msg":1}}"#,
        r#"{"index":0, "time":0,"process":0,"type":"invoke","f":"send","value":null}"#,
        r#"{"time":0,"index":0,"process":0,"type":"invoke","f":"send","value":null}"#,
        r#"{"index":00,"time":0,"process":0,"type":"invoke","f":"send","value":null}"#,
        r#"{"index":0,"time":1.5,"process":0,"type":"invoke","f":"send","value":null}"#,
        r#"{"index":0,"time":1e3,"process":0,"type":"invoke","f":"send","value":null}"#,
        r#"{"index":0,"time":18446744073709551616,"process":0,"type":"invoke","f":"send","value":null}"#,
        r#"{"index":0,"time":0,"process":-1,"type":"invoke","f":"send","value":null}"#,
        r#"{"index":0,"time":0,"process":0,"type":"done","f":"send","value":null}"#,
        r#"{"index":0,"time":0,"process":0,"type":"ok","f":"send","value":{"key":"q","msg":1,"offset":2,"x":1}}"#,
        r#"{"index":0,"time":0,"process":0,"type":"ok","f":"poll","value":{"records":{"q":[[0,1]]},"applied":[1],"rebalance":["q"]}}"#,
        r#"{"index":0,"time":0,"process":0,"type":"ok","f":"observe","value":{"zookeeper":[],"kafka":[]}}"#,
        r#"{"index":0,"time":0,"process":"workload","type":"ok","f":"config","value":{"dlq":true}}"#,
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"send","value":null} "#,
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"send","value":null}}"#,
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"send","value":nul"#,
        r#"{"index":0,"time":0,"process":0,"type":"ok","f":"poll","value":{"records":{"q":[[0,1],]}}}"#,
    ];

    #[test]
    fn takes_the_writers_layout_and_reads_it_as_serde_does() {
        for line in TAKEN {
            let fast = parse(line).unwrap_or_else(|| panic!("fast path should take {line}"));
            let slow = Op::parse_with_serde(line).expect("valid");
            assert_eq!(fast, slow, "{line}");
        }
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        for line in LEFT {
            assert!(parse(line).is_none(), "fast path must leave {line}");
        }
    }

    proptest::proptest! {
        /// Generated lines in the writers' layout: taken, and read as serde
        /// reads them; the same lines with one byte changed are either still
        /// read as serde reads them, or left to serde.
        #[test]
        fn agrees_with_serde(
            index in proptest::prelude::any::<u64>(),
            time in proptest::prelude::any::<u64>(),
            process in 0u64..1000,
            key in "[a-z0-9é-]{0,12}",
            pairs in proptest::collection::vec((proptest::prelude::any::<u64>(), proptest::prelude::any::<u64>()), 0..5),
            msg in proptest::prelude::any::<u64>(),
            poll in proptest::prelude::any::<bool>(),
            flip in proptest::prelude::any::<(usize, u8)>(),
        ) {
            let value = if poll {
                let recs: Vec<String> = pairs.iter().map(|(o, m)| format!("[{o},{m}]")).collect();
                format!(r#"{{"records":{{"{key}":[{}]}},"applied":[{msg}]}}"#, recs.join(","))
            } else {
                format!(r#"{{"key":"{key}","msg":{msg},"offset":{}}}"#, pairs.len())
            };
            let f = if poll { "poll" } else { "send" };
            let line = format!(r#"{{"index":{index},"time":{time},"process":{process},"type":"ok","f":"{f}","value":{value}}}"#);
            let fast = parse(&line);
            proptest::prop_assert!(fast.is_some(), "{}", line);
            proptest::prop_assert_eq!(fast, Some(Op::parse_with_serde(&line).unwrap()));
            let mut bytes = line.clone().into_bytes();
            let at = flip.0 % bytes.len();
            bytes[at] = flip.1;
            if let Ok(changed) = std::str::from_utf8(&bytes) {
                if let Some(op) = parse(changed) {
                    proptest::prop_assert_eq!(Some(op), Op::parse_with_serde(changed).ok());
                }
            }
        }
    }
}
