//! The dead-letter queue: a durable append-only journal on the control node,
//! one per run. A message goes here when its sends are exhausted without an
//! acknowledgement; the entry is synced to disk *before* the history says
//! `f: "dlq"`, so the history never claims a DLQ entry a crash could lose.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One message parked in the DLQ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqEntry {
    /// Topic it was sent to.
    pub topic: String,
    /// Partition it was sent to.
    pub partition: i32,
    /// The history key of that log (`"<topic>-<partition>"`).
    pub key: String,
    /// The message.
    pub msg: u64,
}

/// The journal. Appends from many tasks are serialized by a mutex.
#[derive(Debug)]
pub struct DlqJournal {
    path: PathBuf,
    file: Mutex<File>,
}

impl DlqJournal {
    /// Opens (creating if needed) the journal at `path` for appending.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<DlqJournal> {
        let path = path.as_ref().to_owned();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(DlqJournal {
            path,
            file: Mutex::new(file),
        })
    }

    /// Appends one entry as a JSON line and syncs it to disk.
    pub fn append(&self, entry: &DlqEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(&line)?;
        f.sync_data()
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry in the journal, in order. A truncated last line (a crash
    /// mid-append, before its sync) is skipped; any other bad line is an
    /// error naming the line.
    pub fn entries(&self) -> std::io::Result<Vec<DlqEntry>> {
        read_entries(&self.path)
    }
}

/// Reads the entries of the journal at `path` (see [`DlqJournal::entries`]).
pub fn read_entries(path: &Path) -> std::io::Result<Vec<DlqEntry>> {
    let reader = BufReader::new(File::open(path)?);
    let mut lines: Vec<String> = Vec::new();
    for line in reader.split(b'\n') {
        lines.push(String::from_utf8_lossy(&line?).into_owned());
    }
    let raw = std::fs::read(path)?;
    let ends_with_newline = raw.last() == Some(&b'\n');
    let mut out = Vec::with_capacity(lines.len());
    let n = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() && i + 1 == n {
            continue;
        }
        match serde_json::from_str::<DlqEntry>(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == n && !ends_with_newline => {
                tracing::warn!(path = %path.display(), "DLQ journal ends with a truncated line; ignored");
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}:{}: bad DLQ entry: {e}", path.display(), i + 1),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(msg: u64) -> DlqEntry {
        DlqEntry {
            topic: "queue".into(),
            partition: (msg % 3) as i32,
            key: format!("queue-{}", msg % 3),
            msg,
        }
    }

    #[test]
    fn appends_survive_reopen_and_a_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq.jsonl");
        let j = DlqJournal::open(&path).unwrap();
        j.append(&entry(1)).unwrap();
        j.append(&entry(2)).unwrap();
        drop(j);
        let j = DlqJournal::open(&path).unwrap();
        j.append(&entry(3)).unwrap();
        assert_eq!(j.entries().unwrap(), vec![entry(1), entry(2), entry(3)]);
        // A crash mid-append leaves a partial line: ignored.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"topic\":\"qu").unwrap();
        assert_eq!(read_entries(&path).unwrap().len(), 3);
        // Garbage in the middle is an error naming the line.
        std::fs::write(
            &path,
            "garbage\n{\"topic\":\"q\",\"partition\":0,\"key\":\"q-0\",\"msg\":1}\n",
        )
        .unwrap();
        let err = read_entries(&path).unwrap_err().to_string();
        assert!(err.contains("dlq.jsonl:1"), "{err}");
    }
}
