//! The consumers' effect store: a real embedded database (SQLite through
//! rusqlite's bundled build; why: docs/workloads.md), one file per run, in
//! WAL mode, each consumer with its own connection: nothing about effects is
//! shared in memory between consumers.
//!
//! Per message a consumer applies its **effect** (a row of `effects`, and the
//! per-partition balance in `balances` raised by the message's number) and,
//! when de-duplicating, its **dedup record** (the message's number in
//! `applied`), in ONE transaction: a redelivered message finds its dedup
//! record and changes nothing. The Kafka offset is committed around that
//! transaction by the consumer (`consumer.rs`), in the order
//! [`CommitOrder`] says.
//!
//! At the end of a run the store is read back ([`read_summary`]): per
//! message how many rows of `effects` it has, i.e. how many times its effect
//! was applied. That, not the consumers' own account, is what the checker
//! judges (`f: "effects"` in the history, docs/history.md).

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The store's file name in the workload's state directory.
pub const EFFECTS_FILE: &str = "effects.sqlite";

/// When a consumer commits a poll's offsets to Kafka.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitOrder {
    /// After the effects' transaction (the correct order): a crash in
    /// between makes Kafka redeliver, and the dedup record absorbs it.
    #[default]
    AfterApply,
    /// Before the effects' transaction (a deliberately wrong control): a
    /// crash in between loses the effects of the committed records.
    BeforeApply,
}

impl CommitOrder {
    /// The name used in test files and the history.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitOrder::AfterApply => "after-apply",
            CommitOrder::BeforeApply => "before-apply",
        }
    }
}

impl std::str::FromStr for CommitOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "after-apply" => Ok(CommitOrder::AfterApply),
            "before-apply" => Ok(CommitOrder::BeforeApply),
            other => Err(format!(
                "commit {other:?}: use \"after-apply\" or \"before-apply\""
            )),
        }
    }
}

/// How consumers apply effects. The default is the idempotent consumer;
/// the two other settings are controls that must fail under crashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectsMode {
    /// Write the dedup record with the effect and skip messages that have
    /// one (default true). `false`: every delivery applies its effect.
    pub dedup: bool,
    /// When the offsets are committed (default after the effects).
    pub commit: CommitOrder,
}

impl Default for EffectsMode {
    fn default() -> Self {
        EffectsMode {
            dedup: true,
            commit: CommitOrder::AfterApply,
        }
    }
}

/// A store error, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("effect store {path}: {what}: {source} (check the state directory is writable and on a local file system)")]
pub struct EffectsError {
    /// What was being done.
    pub what: &'static str,
    /// The database file.
    pub path: PathBuf,
    /// SQLite's error.
    #[source]
    pub source: rusqlite::Error,
}

/// One consumer's connection to the run's store.
pub struct EffectStore {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS applied (msg INTEGER PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS effects (
        id INTEGER PRIMARY KEY,
        msg INTEGER NOT NULL,
        partition INTEGER NOT NULL,
        consumer INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS balances (
        partition INTEGER PRIMARY KEY,
        total INTEGER NOT NULL,
        messages INTEGER NOT NULL);
";

impl EffectStore {
    /// Creates the store at `path` (a new file), in WAL mode, with its
    /// tables. Called once per run, before any consumer opens it.
    pub fn create(path: &Path) -> Result<(), EffectsError> {
        let err = |what| {
            let path = path.to_owned();
            move |source| EffectsError { what, path, source }
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(err("create"))?;
        // WAL: readers never block the writer, and a committed transaction
        // survives the crash of its process (the file is the truth).
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err("set WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(EffectsError {
                what: "set WAL mode",
                path: path.to_owned(),
                source: rusqlite::Error::InvalidParameterName(format!("journal_mode is {mode}")),
            });
        }
        conn.execute_batch(SCHEMA).map_err(err("create tables"))?;
        Ok(())
    }

    /// A new connection to the store at `path` (created by [`Self::create`]).
    pub fn open(path: &Path) -> Result<EffectStore, EffectsError> {
        let err = |what| {
            let path = path.to_owned();
            move |source| EffectsError { what, path, source }
        };
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(err("open"))?;
        // Consumers write concurrently: wait for the lock rather than fail.
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(err("set the busy timeout"))?;
        // In WAL mode NORMAL loses nothing when a process crashes (only on
        // power loss, which no test injects), and saves an fsync per commit.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err("set synchronous"))?;
        Ok(EffectStore {
            conn,
            path: path.to_owned(),
        })
    }

    /// Applies the effects of `msgs` (`(partition, msg)`, in order) for
    /// `consumer`, in one transaction. With `dedup`, a message that already
    /// has its dedup record is skipped, and each applied one gets it.
    /// Returns the messages whose effect was applied, in order.
    pub fn apply(
        &mut self,
        consumer: u64,
        msgs: &[(i32, u64)],
        dedup: bool,
    ) -> Result<Vec<u64>, EffectsError> {
        if msgs.is_empty() {
            // An empty poll: no transaction (it would take the write lock).
            return Ok(Vec::new());
        }
        let path = &self.path;
        let err = |what| {
            move |source| EffectsError {
                what,
                path: path.clone(),
                source,
            }
        };
        let tx = self
            .conn
            // IMMEDIATE: take the write lock at once, so two consumers never
            // both read and then fail to upgrade (SQLITE_BUSY mid-transaction).
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin"))?;
        let mut applied = Vec::with_capacity(msgs.len());
        {
            let mut mark = tx
                .prepare_cached("INSERT OR IGNORE INTO applied (msg) VALUES (?1)")
                .map_err(err("prepare"))?;
            let mut effect = tx
                .prepare_cached(
                    "INSERT INTO effects (msg, partition, consumer) VALUES (?1, ?2, ?3)",
                )
                .map_err(err("prepare"))?;
            let mut balance = tx
                .prepare_cached(
                    "INSERT INTO balances (partition, total, messages) VALUES (?1, ?2, 1) \
                     ON CONFLICT (partition) DO UPDATE SET total = total + excluded.total, \
                     messages = messages + 1",
                )
                .map_err(err("prepare"))?;
            for &(partition, msg) in msgs {
                let m = i64::try_from(msg).map_err(|_| EffectsError {
                    what: "store a message number",
                    path: path.clone(),
                    source: rusqlite::Error::IntegralValueOutOfRange(0, msg as i64),
                })?;
                if dedup && mark.execute([m]).map_err(err("write a dedup record"))? == 0 {
                    // Its dedup record exists: applied before.
                    continue;
                }
                effect
                    .execute((m, partition, consumer as i64))
                    .map_err(err("apply an effect"))?;
                balance
                    .execute((partition, m))
                    .map_err(err("update a balance"))?;
                applied.push(msg);
            }
        }
        tx.commit().map_err(err("commit"))?;
        Ok(applied)
    }
}

/// What the store holds at the end of a run: per message, how many times
/// its effect was applied, compactly (the value of the history's `effects`
/// event; docs/history.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectsSummary {
    /// Distinct messages with at least one effect.
    pub messages: u64,
    /// Effects applied in all (rows).
    pub applications: u64,
    /// Messages applied exactly once, as inclusive ranges `[first, last]`.
    pub once: Vec<(u64, u64)>,
    /// Messages applied more than once: `[msg, times]`.
    pub more: Vec<(u64, u64)>,
}

impl EffectsSummary {
    /// Builds the summary from `(msg, times)` pairs sorted by message.
    pub fn from_counts(counts: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut s = EffectsSummary::default();
        for (msg, times) in counts {
            if times == 0 {
                continue;
            }
            s.messages += 1;
            s.applications += times;
            if times > 1 {
                s.more.push((msg, times));
                continue;
            }
            match s.once.last_mut() {
                Some((_, last)) if last.checked_add(1) == Some(msg) => *last = msg,
                _ => s.once.push((msg, msg)),
            }
        }
        s
    }

    /// How many times `msg`'s effect was applied.
    pub fn times(&self, msg: u64) -> u64 {
        if let Ok(i) = self.more.binary_search_by_key(&msg, |(m, _)| *m) {
            return self.more[i].1;
        }
        let i = self.once.partition_point(|(first, _)| *first <= msg);
        u64::from(i > 0 && self.once[i - 1].1 >= msg)
    }
}

/// Reads the store at `path` with a fresh connection: per message how
/// many times its effect was applied.
pub fn read_summary(path: &Path) -> Result<EffectsSummary, EffectsError> {
    let err = |what| {
        let path = path.to_owned();
        move |source| EffectsError { what, path, source }
    };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(err("open to read"))?;
    let mut stmt = conn
        .prepare("SELECT msg, COUNT(*) FROM effects GROUP BY msg ORDER BY msg")
        .map_err(err("read"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
        .map_err(err("read"))?;
    let counts: Vec<(u64, u64)> = rows.collect::<Result<_, _>>().map_err(err("read"))?;
    Ok(EffectsSummary::from_counts(counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_applies_once_across_connections_and_without_it_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EFFECTS_FILE);
        EffectStore::create(&path).unwrap();
        let handles: Vec<_> = (0..4u64)
            .map(|c| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut store = EffectStore::open(&path).unwrap();
                    let mut mine = Vec::new();
                    let all: Vec<(i32, u64)> = (0..600u64).map(|m| ((m % 3) as i32, m)).collect();
                    for chunk in all.chunks(50) {
                        mine.extend(store.apply(c, chunk, true).unwrap());
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..600).collect::<Vec<_>>(), "each applied once");
        let s = read_summary(&path).unwrap();
        assert_eq!((s.messages, s.applications), (600, 600));
        assert_eq!(s.once, vec![(0, 599)]);
        assert!(s.more.is_empty());
        // Without dedup a redelivery applies again; with it, nothing.
        let mut store = EffectStore::open(&path).unwrap();
        assert_eq!(
            store.apply(9, &[(0, 3), (1, 4)], true).unwrap(),
            [] as [u64; 0]
        );
        assert_eq!(
            store.apply(9, &[(0, 3), (0, 900)], false).unwrap(),
            [3, 900]
        );
        let s = read_summary(&path).unwrap();
        assert_eq!(s.once, vec![(0, 2), (4, 599), (900, 900)]);
        assert_eq!(s.more, vec![(3, 2)]);
        assert_eq!(
            (s.times(3), s.times(4), s.times(700), s.times(900)),
            (2, 1, 0, 1)
        );
        let balance: (i64, i64) = store
            .conn
            .query_row(
                "SELECT total, messages FROM balances WHERE partition = 0",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let expected: i64 = (0..600).filter(|m| m % 3 == 0).sum::<i64>() + 3 + 900;
        assert_eq!(balance, (expected, 200 + 2));
    }

    #[test]
    fn a_transaction_cut_off_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EFFECTS_FILE);
        EffectStore::create(&path).unwrap();
        let mut store = EffectStore::open(&path).unwrap();
        // A message number SQLite cannot hold fails the transaction midway:
        // the effects before it are rolled back with it.
        let e = store.apply(1, &[(0, 1), (0, u64::MAX)], true).unwrap_err();
        assert!(e.to_string().contains("message number"), "{e}");
        assert_eq!(read_summary(&path).unwrap(), EffectsSummary::default());
        assert_eq!(store.apply(1, &[(0, 1)], true).unwrap(), [1]);
    }

    #[test]
    fn summaries_are_compact_and_modes_parse() {
        let s = EffectsSummary::from_counts([(0, 1), (1, 1), (2, 3), (3, 1), (10, 1), (11, 0)]);
        assert_eq!(s.once, vec![(0, 1), (3, 3), (10, 10)]);
        assert_eq!(s.more, vec![(2, 3)]);
        assert_eq!((s.messages, s.applications), (5, 7));
        assert_eq!("before-apply".parse(), Ok(CommitOrder::BeforeApply));
        assert!("later".parse::<CommitOrder>().is_err());
        assert_eq!(
            serde_json::to_value(EffectsMode::default()).unwrap(),
            serde_json::json!({"dedup": true, "commit": "after-apply"})
        );
    }
}
