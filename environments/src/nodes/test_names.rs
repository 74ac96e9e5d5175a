//! Names of test environments (`netns::TestEnv`, `docker::DockerTestEnv`):
//! `<prefix>-<test name, slugged>-<pid>-<counter>`, unique per process and
//! call, and carrying the test process's pid so that environments of killed
//! test processes can be found and reaped later (and listed as orphaned by
//! `splitbrain env list`).

use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh name with `prefix` (e.g. `t`, `td`) for a test called `test_name`.
#[cfg_attr(not(feature = "test-support"), allow(dead_code))]
pub(crate) fn unique_name(prefix: &str, test_name: &str) -> String {
    let slug = splitbrain_core::slug::slug(test_name, 14);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{slug}-{}-{n}", std::process::id())
}

/// The pid embedded in a name made by [`unique_name`] with `prefix`, if it
/// is one.
pub(crate) fn pid_of(prefix: &str, name: &str) -> Option<i32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let mut parts = rest.rsplitn(3, '-');
    let counter = parts.next()?;
    let pid = parts.next()?;
    parts.next()?;
    if counter.is_empty() || !counter.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}
