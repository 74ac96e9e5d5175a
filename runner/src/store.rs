//! The store: every run in `store/<test-name>/<timestamp>/`, with a `latest`
//! symlink per test pointing at its newest run.

use crate::error::{Result, RunError};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use time::OffsetDateTime;

/// The default store directory (relative to the working directory).
pub const DEFAULT_STORE: &str = "store";
/// Name of the per-test link to the newest run.
pub const LATEST: &str = "latest";

/// Test names become directory names: letters, digits, `.`, `_`, `-` only.
pub fn validate_test_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name != LATEST
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(RunError::TestName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// UTC time as `YYYYMMDDTHHMMSSZ` (sortable, no `:` so it is a safe path).
/// Times before 1970 (a clock gone wrong) count as 1970.
pub fn timestamp(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t.max(SystemTime::UNIX_EPOCH));
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Creates `root/<test>/<timestamp>/` (with a suffix if that exists) and
/// points `root/<test>/latest` at it.
pub fn create_run_dir(root: &Path, test: &str) -> Result<PathBuf> {
    validate_test_name(test)?;
    let test_dir = root.join(test);
    std::fs::create_dir_all(&test_dir).map_err(RunError::io(format!(
        "cannot create {}; choose a writable store with --store",
        test_dir.display()
    )))?;
    let stamp = timestamp(SystemTime::now());
    let mut dir = test_dir.join(&stamp);
    let mut n = 1;
    while dir.exists() {
        dir = test_dir.join(format!("{stamp}-{n}"));
        n += 1;
    }
    std::fs::create_dir(&dir).map_err(RunError::io(format!(
        "cannot create {}; choose a writable store with --store",
        dir.display()
    )))?;
    let name = dir.file_name().expect("a joined name").to_owned();
    let link = test_dir.join(LATEST);
    let tmp = test_dir.join(format!(".{LATEST}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    // Relative link, replaced atomically by rename.
    std::os::unix::fs::symlink(&name, &tmp)
        .and_then(|_| std::fs::rename(&tmp, &link))
        .map_err(RunError::io(format!(
            "cannot update {}; check the store's permissions",
            link.display()
        )))?;
    Ok(dir)
}

/// One stored run.
#[derive(Clone, Debug)]
pub struct StoredRun {
    /// Test name.
    pub test: String,
    /// Run directory name (its timestamp).
    pub run: String,
    /// Its results.json, if readable.
    pub results: Option<Value>,
    /// Whether it has a report.html.
    pub has_report: bool,
}

/// Every run in the store, newest first within each test, tests by name.
pub fn list_runs(root: &Path) -> Result<Vec<StoredRun>> {
    let mut out = vec![];
    let entries = std::fs::read_dir(root).map_err(RunError::io(format!(
        "cannot read the store {}; pass the store directory (default ./store)",
        root.display()
    )))?;
    let mut tests: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| validate_test_name(n).is_ok())
        .collect();
    tests.sort();
    for (test, dir) in tests {
        let mut runs: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .filter(|(n, _)| !n.starts_with('.'))
            .collect();
        runs.sort_by(|a, b| b.0.cmp(&a.0));
        for (run, path) in runs {
            let results = std::fs::read_to_string(path.join(crate::report::RESULTS_FILE))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            out.push(StoredRun {
                test: test.clone(),
                run,
                results,
                has_report: path.join(crate::report::REPORT_FILE).exists(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_utc_and_sortable() {
        assert_eq!(timestamp(UNIX_EPOCH), "19700101T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_307_730);
        assert_eq!(timestamp(t), "20261122T003530Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "20000229T000000Z");
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(timestamp(before), "19700101T000000Z");
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_test_name("incident-2020_acks.1").is_ok());
        for bad in ["", "..", "a/b", "latest", "a b", "x\u{0}"] {
            assert!(validate_test_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn runs_get_dirs_and_latest_follows() {
        let root = tempfile::tempdir().unwrap();
        let a = create_run_dir(root.path(), "t1").unwrap();
        let b = create_run_dir(root.path(), "t1").unwrap();
        assert_ne!(a, b);
        let latest = std::fs::canonicalize(root.path().join("t1").join(LATEST)).unwrap();
        assert_eq!(latest, std::fs::canonicalize(&b).unwrap());
        std::fs::write(b.join("results.json"), r#"{"valid":true}"#).unwrap();
        let runs = list_runs(root.path()).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].run, b.file_name().unwrap().to_string_lossy());
        assert_eq!(runs[0].results.as_ref().unwrap()["valid"], true);
        assert!(runs[1].results.is_none());
        assert!(create_run_dir(root.path(), "../x").is_err());
    }
}
