//! One operation of a history, parsed without copying: strings borrow from the
//! line where they can, and the values of the documented `f`s (`send`,
//! `replay`, `dlq`, `poll`, `observe`) are parsed straight into typed structs
//! in the same pass as the line, so a checker never walks a `serde_json::Value`.

use crate::cluster::Observation;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Jepsen's operation types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation started.
    Invoke,
    /// It happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Its outcome is unknown: it may or may not have happened.
    Info,
}

impl OpType {
    /// The name used in the history (`"invoke"`, `"ok"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

/// Who performed an operation: a numbered client, or a named actor such as
/// `"nemesis"`, `"observer"` or `"dlq"` that records single-line events.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    /// A client process; follows the invoke/completion rules.
    Client(u64),
    /// A named process recording events.
    Named(String),
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(n) => write!(f, "{n}"),
            Process::Named(s) => write!(f, "{s}"),
        }
    }
}

/// [`Process`] borrowed from a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessRef<'a> {
    /// A client process.
    Client(u64),
    /// A named process.
    Named(Cow<'a, str>),
}

impl ProcessRef<'_> {
    /// An owned copy.
    pub fn to_owned_process(&self) -> Process {
        match self {
            ProcessRef::Client(n) => Process::Client(*n),
            ProcessRef::Named(s) => Process::Named(s.to_string()),
        }
    }
}

impl fmt::Display for ProcessRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessRef::Client(n) => write!(f, "{n}"),
            ProcessRef::Named(s) => write!(f, "{s}"),
        }
    }
}

/// The value of `send`, `replay` and `dlq` operations: one message of one log.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MessageValue<'a> {
    /// The log (one topic-partition), e.g. `"queue-0"`.
    #[serde(borrow)]
    pub key: Cow<'a, str>,
    /// The message: an integer unique across the test.
    pub msg: u64,
    /// Where the log put it; present on `ok` completions of sends.
    #[serde(default)]
    pub offset: Option<u64>,
}

/// Records of one poll, per log, in the order received: `(offset, msg)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records<'a>(pub Vec<LogRecords<'a>>);

/// The records one poll returned from one log: the log's key and its
/// `(offset, msg)` pairs.
pub type LogRecords<'a> = (Cow<'a, str>, Vec<(u64, u64)>);

/// The value of a `poll`'s `ok` completion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PollValue<'a> {
    /// Records per log.
    #[serde(borrow)]
    pub records: Records<'a>,
    /// Messages whose effect this consumer applied (first time only).
    #[serde(default)]
    pub applied: Vec<u64>,
    /// Logs newly assigned to this consumer since its previous poll (a
    /// consumer-group rebalance): its position in them starts afresh.
    #[serde(default)]
    pub rebalance: Vec<String>,
}

/// An operation's value, typed for the `f`s the format documents.
#[derive(Clone, Debug, PartialEq)]
pub enum OpValue<'a> {
    /// JSON `null`.
    Null,
    /// `send`, `replay`, `dlq`.
    Message(MessageValue<'a>),
    /// `poll` completed `ok`.
    Poll(PollValue<'a>),
    /// `observe` by the observer.
    Observation(Box<Observation>),
    /// Anything else (other `f`s, other processes' values): its raw JSON text.
    Other(&'a str),
}

/// One line of a history, borrowing from the line's text.
#[derive(Clone, Debug, PartialEq)]
pub struct Op<'a> {
    /// Position in the file, from 0.
    pub index: u64,
    /// Nanoseconds since the test started (monotonic).
    pub time: u64,
    /// Who did it.
    pub process: ProcessRef<'a>,
    /// invoke / ok / fail / info.
    pub op_type: OpType,
    /// The operation, e.g. `"send"`.
    pub f: Cow<'a, str>,
    /// Its value.
    pub value: OpValue<'a>,
}

impl<'a> Op<'a> {
    /// Parses one line (without its newline). Lines in the writers' exact
    /// layout take a fast scanner (`fast.rs`); any other line, and every
    /// error message, comes from serde_json.
    #[inline]
    pub fn parse(line: &'a str) -> Result<Op<'a>, serde_json::Error> {
        match super::fast::parse(line) {
            Some(op) => Ok(op),
            None => Op::parse_with_serde(line),
        }
    }

    /// Parses one line with serde_json alone (what [`Op::parse`] falls back
    /// to; public for the benchmark that compares the two).
    pub fn parse_with_serde(line: &'a str) -> Result<Op<'a>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(line);
        let op = Op::deserialize(&mut de)?;
        de.end()?;
        Ok(op)
    }

    /// Whether a client process performed it.
    pub fn client(&self) -> Option<u64> {
        match self.process {
            ProcessRef::Client(n) => Some(n),
            ProcessRef::Named(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for ProcessRef<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ProcessRef<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative integer (client) or a string (named process)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ProcessRef::Client(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ProcessRef::Named(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ProcessRef::Named(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string borrowed from the input when it has no escapes, owned otherwise
/// (serde's own `Cow` impl always copies).
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Records<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Records<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping each log to [[offset, msg], ...]")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(2));
                while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
                    let pairs: Vec<(u64, u64)> = map.next_value()?;
                    out.push((key, pairs));
                }
                Ok(Records(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses a value according to the operation's `f` and type.
struct ValueSeed<'s> {
    f: &'s str,
    op_type: OpType,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = OpValue<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match (self.f, self.op_type) {
            ("send" | "replay" | "dlq", _) => Ok(match Option::<MessageValue>::deserialize(d)? {
                Some(m) => OpValue::Message(m),
                None => OpValue::Null,
            }),
            ("poll", OpType::Ok) => Ok(match Option::<PollValue>::deserialize(d)? {
                Some(p) => OpValue::Poll(p),
                None => OpValue::Null,
            }),
            ("observe", _) => Ok(match Option::<Observation>::deserialize(d)? {
                Some(o) => OpValue::Observation(Box::new(o)),
                None => OpValue::Null,
            }),
            _ => {
                let raw = <&RawValue>::deserialize(d)?;
                Ok(if raw.get() == "null" {
                    OpValue::Null
                } else {
                    OpValue::Other(raw.get())
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for Op<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OpVisitor)
    }
}

struct OpVisitor;

fn set_once<T, E: de::Error>(slot: &mut Option<T>, v: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(v);
    Ok(())
}

impl<'de> Visitor<'de> for OpVisitor {
    type Value = Op<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an operation: an object with index, time, process, type, f and value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Op<'de>, A::Error> {
        let mut index = None;
        let mut time = None;
        let mut process = None;
        let mut op_type: Option<OpType> = None;
        let mut f: Option<Cow<'de, str>> = None;
        let mut value: Option<OpValue<'de>> = None;
        // The writer puts `f` and `type` before `value`, so the value is parsed
        // in one pass; if a hand-written line orders them otherwise, keep the
        // raw text and parse it at the end.
        let mut raw_value: Option<&'de RawValue> = None;
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            match key.as_ref() {
                "index" => set_once(&mut index, map.next_value::<u64>()?, "index")?,
                "time" => set_once(&mut time, map.next_value::<u64>()?, "time")?,
                "process" => set_once(&mut process, map.next_value::<ProcessRef>()?, "process")?,
                "type" => set_once(&mut op_type, map.next_value::<OpType>()?, "type")?,
                "f" => set_once(&mut f, map.next_value::<CowStr<'de>>()?.0, "f")?,
                "value" => {
                    if value.is_some() || raw_value.is_some() {
                        return Err(de::Error::duplicate_field("value"));
                    }
                    match (&f, op_type) {
                        (Some(name), Some(t)) => {
                            let seed = ValueSeed {
                                f: name,
                                op_type: t,
                            };
                            value = Some(
                                map.next_value_seed(seed)
                                    .map_err(|e| de::Error::custom(format_args!("value: {e}")))?,
                            );
                        }
                        _ => raw_value = Some(map.next_value()?),
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let index = index.ok_or_else(|| de::Error::missing_field("index"))?;
        let time = time.ok_or_else(|| de::Error::missing_field("time"))?;
        let process = process.ok_or_else(|| de::Error::missing_field("process"))?;
        let op_type = op_type.ok_or_else(|| de::Error::missing_field("type"))?;
        let f = f.ok_or_else(|| de::Error::missing_field("f"))?;
        let value = match (value, raw_value) {
            (Some(v), _) => v,
            (None, Some(raw)) => {
                let mut de = serde_json::Deserializer::from_str(raw.get());
                ValueSeed { f: &f, op_type }
                    .deserialize(&mut de)
                    .map_err(|e| de::Error::custom(format_args!("value: {e}")))?
            }
            (None, None) => return Err(de::Error::missing_field("value")),
        };
        Ok(Op {
            index,
            time,
            process,
            op_type,
            f,
            value,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<Op<'de>, A::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_send_in_one_pass() {
        let op = Op::parse(
            r#"{"index":3,"time":10,"process":0,"type":"ok","f":"send","value":{"key":"queue-0","msg":7,"offset":2}}"#,
        )
        .unwrap();
        assert_eq!(op.index, 3);
        assert_eq!(op.client(), Some(0));
        assert_eq!(
            op.value,
            OpValue::Message(MessageValue {
                key: "queue-0".into(),
                msg: 7,
                offset: Some(2)
            })
        );
    }

    #[test]
    fn parses_value_before_f() {
        let op = Op::parse(
            r#"{"value":{"records":{"q":[[0,1],[1,2]]},"applied":[1]},"index":0,"time":0,"process":5,"type":"ok","f":"poll"}"#,
        )
        .unwrap();
        match op.value {
            OpValue::Poll(p) => {
                assert_eq!(p.records.0, vec![("q".into(), vec![(0, 1), (1, 2)])]);
                assert_eq!(p.applied, vec![1]);
            }
            other => panic!("expected a poll, got {other:?}"),
        }
    }

    #[test]
    fn named_process_and_other_value() {
        let op = Op::parse(
            r#"{"index":0,"time":0,"process":"nemesis","type":"info","f":"start-partition","value":{"grudge":{"n1":["n2"]}}}"#,
        )
        .unwrap();
        assert_eq!(op.process, ProcessRef::Named("nemesis".into()));
        assert!(matches!(op.value, OpValue::Other(_)));
    }

    #[test]
    fn rejects_wrong_types_and_missing_fields() {
        let wrong = Op::parse(
            r#"{"index":0,"time":0,"process":0,"type":"ok","f":"send","value":{"key":"q","msg":"seven"}}"#,
        );
        assert!(wrong.unwrap_err().to_string().contains("value"));
        let missing = Op::parse(r#"{"index":0,"time":0,"process":0,"type":"ok","f":"send"}"#);
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("missing field `value`"));
        let bad_type =
            Op::parse(r#"{"index":0,"time":0,"process":0,"type":"done","f":"x","value":null}"#);
        assert!(bad_type
            .unwrap_err()
            .to_string()
            .contains("unknown variant"));
        let negative =
            Op::parse(r#"{"index":0,"time":0,"process":-1,"type":"ok","f":"x","value":null}"#);
        assert!(negative.is_err());
        let dup = Op::parse(
            r#"{"index":0,"index":1,"time":0,"process":1,"type":"ok","f":"x","value":null}"#,
        );
        assert!(dup.unwrap_err().to_string().contains("duplicate field"));
        assert!(Op::parse("[1,2]").is_err());
        assert!(Op::parse(
            r#"{"index":0,"time":0,"process":1,"type":"ok","f":"x","value":null} x"#
        )
        .is_err());
    }
}
