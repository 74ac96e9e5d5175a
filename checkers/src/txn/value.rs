//! The value of a `txn` operation: Jepsen-shaped micro-operations, parsed
//! from the raw JSON the history reader hands over (`OpValue::Other`),
//! borrowing strings from the line where they have no escapes.
//!
//! ```text
//! [["send","txn-0",17], ["send","txn-0",[5,17]], ["poll"], ["poll",{"txn-0":[[4,12],[5,17]]}]]
//! ```

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// One log's records in a poll: the key and its `(offset, msg)` pairs.
pub(crate) type LogRecords<'a> = (Cow<'a, str>, Vec<(u64, u64)>);

/// One micro-operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MicroOp<'a> {
    /// `["send", key, msg]` or `["send", key, [offset, msg]]` (offset may be
    /// `null` when unknown).
    Send {
        key: Cow<'a, str>,
        msg: u64,
        offset: Option<u64>,
    },
    /// `["poll"]` (not completed) or `["poll", {key: [[offset, msg], ...]}]`.
    Poll(Vec<LogRecords<'a>>),
}

/// Parses a `txn` value; `null` is no micro-operations.
pub(crate) fn parse(raw: &str) -> Result<Vec<MicroOp<'_>>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(raw);
    let ops = Option::<Vec<MicroOp>>::deserialize(&mut de)?;
    de.end()?;
    Ok(ops.unwrap_or_default())
}

/// A string borrowed from the input when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A send's third element: `msg` or `[offset, msg]`.
struct SendValue(Option<u64>, u64);

impl<'de> Deserialize<'de> for SendValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SendValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a message (integer) or [offset, message]")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(SendValue(None, v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let offset: Option<u64> = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let msg: u64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(SendValue(offset, msg))
            }
        }
        d.deserialize_any(V)
    }
}

/// A poll's records: `{key: [[offset, msg], ...]}` in file order.
struct PollRecords<'a>(Vec<LogRecords<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for PollRecords<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PollRecords<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping each log to [[offset, msg], ...]")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(2));
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    let pairs: Vec<(u64, u64)> = map.next_value()?;
                    out.push((key, pairs));
                }
                Ok(PollRecords(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for MicroOp<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MicroOp<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a micro-operation: ["send", key, msg], ["send", key, [offset, msg]], ["poll"] or ["poll", {key: [[offset, msg], ...]}]"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let Str(f) = seq
                    .next_element::<Str<'de>>()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let op = match f.as_ref() {
                    "send" => {
                        let Str(key) = seq
                            .next_element::<Str<'de>>()?
                            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                        let SendValue(offset, msg) = seq
                            .next_element()?
                            .ok_or_else(|| de::Error::invalid_length(2, &self))?;
                        MicroOp::Send { key, msg, offset }
                    }
                    "poll" => MicroOp::Poll(
                        seq.next_element::<Option<PollRecords<'de>>>()?
                            .flatten()
                            .map(|r| r.0)
                            .unwrap_or_default(),
                    ),
                    other => {
                        return Err(de::Error::unknown_variant(other, &["send", "poll"]));
                    }
                };
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(format_args!(
                        "micro-operation `{f}` has too many elements"
                    )));
                }
                Ok(op)
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_shape() {
        let ops = parse(
            r#"[["send","txn-0",17],["send","txn-2",[9,18]],["send","txn-1",[null,19]],["poll"],["poll",{"txn-0":[[4,12],[5,17]]}]]"#,
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![
                MicroOp::Send {
                    key: "txn-0".into(),
                    msg: 17,
                    offset: None
                },
                MicroOp::Send {
                    key: "txn-2".into(),
                    msg: 18,
                    offset: Some(9)
                },
                MicroOp::Send {
                    key: "txn-1".into(),
                    msg: 19,
                    offset: None
                },
                MicroOp::Poll(vec![]),
                MicroOp::Poll(vec![("txn-0".into(), vec![(4, 12), (5, 17)])]),
            ]
        );
        assert!(matches!(
            &ops[0],
            MicroOp::Send {
                key: Cow::Borrowed(_),
                ..
            }
        ));
        assert_eq!(parse("null").unwrap(), vec![]);
    }

    #[test]
    fn rejects_what_is_not_a_micro_operation() {
        for bad in [
            r#"[["write","k",1]]"#,
            r#"[["send","k"]]"#,
            r#"[["send","k","one"]]"#,
            r#"[["send","k",[1,2,3]]]"#,
            r#"[["poll",{"k":[[1]]}]]"#,
            r#"[["poll",{},3]]"#,
            r#"{"send":1}"#,
            r#"[["send","k",1]] x"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
