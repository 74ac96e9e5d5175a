//! The consumers' durable applied-set: which messages' effects have been
//! applied. Idempotent consumers check it before applying a message, so a
//! redelivery (a replayed duplicate, a re-read after a rebalance) is recorded
//! in the poll but not applied again. It is shared by all consumers of a run,
//! as an application's database would be, and persisted (append-only, synced)
//! before the poll that applied the messages is recorded.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The store: an in-memory set backed by a file of little-endian `u64`s.
#[derive(Debug)]
pub struct AppliedStore {
    path: PathBuf,
    inner: Mutex<(HashSet<u64>, File)>,
}

impl AppliedStore {
    /// Opens the store at `path`, loading what an earlier run of the same
    /// test applied (a torn trailing record is ignored).
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<AppliedStore> {
        let path = path.as_ref().to_owned();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let set: HashSet<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if bytes.len() % 8 != 0 {
            // Drop the torn record so later appends stay aligned.
            file.set_len((bytes.len() - bytes.len() % 8) as u64)?;
        }
        Ok(AppliedStore {
            path,
            inner: Mutex::new((set, file)),
        })
    }

    /// Applies `msgs`: returns those not applied before (in the given order,
    /// each once), after persisting them. Atomic with respect to other
    /// consumers: of two consumers applying one message, exactly one gets it.
    pub fn apply(&self, msgs: &[u64]) -> std::io::Result<Vec<u64>> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (set, file) = &mut *guard;
        let fresh: Vec<u64> = msgs.iter().copied().filter(|m| set.insert(*m)).collect();
        if fresh.is_empty() {
            return Ok(fresh);
        }
        let mut buf = Vec::with_capacity(fresh.len() * 8);
        for m in &fresh {
            buf.extend_from_slice(&m.to_le_bytes());
        }
        let written = file.write_all(&buf).and_then(|_| file.sync_data());
        if let Err(e) = written {
            // Not durable: not applied.
            for m in &fresh {
                set.remove(m);
            }
            return Err(e);
        }
        Ok(fresh)
    }

    /// Whether `msg` has been applied.
    pub fn contains(&self, msg: u64) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .contains(&msg)
    }

    /// How many messages have been applied.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0.len()
    }

    /// Whether nothing has been applied.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn applies_once_across_threads_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("applied.bin");
        let store = Arc::new(AppliedStore::open(&path).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = store.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for chunk in (0..1000u64).collect::<Vec<_>>().chunks(50) {
                        mine.extend(s.apply(chunk).unwrap());
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
        assert_eq!(
            all,
            (0..1000).collect::<Vec<_>>(),
            "each applied exactly once"
        );
        assert_eq!(store.apply(&[5, 5, 1000, 1000]).unwrap(), vec![1000]);
        drop(store);
        // A torn record at the end is dropped on reopen.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let store = AppliedStore::open(&path).unwrap();
        assert_eq!(store.len(), 1001);
        assert_eq!(store.apply(&[7, 2000]).unwrap(), vec![2000]);
        drop(store);
        assert_eq!(AppliedStore::open(&path).unwrap().len(), 1002);
    }
}
