//! `tracing` output of a run: into the current run's `splitbrain.log`
//! (switched per run, so a campaign's runs each get their own), and warnings
//! to stderr.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

static SINK: Mutex<Option<File>> = Mutex::new(None);
static INIT: Once = Once::new();
/// Set when the process is about to exit on a third Ctrl-C: the teardown it
/// cuts short would fill the terminal with its errors.
static STDERR_QUIET: AtomicBool = AtomicBool::new(false);

/// From now on, nothing of the run goes to stderr (warnings, progress
/// lines); the log file still gets everything.
pub fn quiet_stderr() {
    STDERR_QUIET.store(true, Ordering::SeqCst);
}

/// Whether [`quiet_stderr`] was called.
pub fn stderr_is_quiet() -> bool {
    STDERR_QUIET.load(Ordering::SeqCst)
}

/// stderr, unless [`quiet_stderr`] was called.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if stderr_is_quiet() {
            Ok(buf.len())
        } else {
            std::io::stderr().write(buf)
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Writes to the current run's log file, if any.
struct RunLog;

impl Write for RunLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match SINK.lock().ok().as_mut().and_then(|s| s.as_mut()) {
            Some(f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match SINK.lock().ok().as_mut().and_then(|s| s.as_mut()) {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

fn init() {
    INIT.call_once(|| {
        use tracing_subscriber::fmt;
        use tracing_subscriber::prelude::*;
        let filter = tracing_subscriber::EnvFilter::try_from_env("SPLITBRAIN_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let file = fmt::layer().with_ansi(false).with_writer(|| RunLog);
        let stderr = fmt::layer()
            .with_writer(|| Stderr)
            .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(file)
            .with(stderr)
            .try_init();
    });
}

/// Sends `tracing` output to `path` from now on.
pub fn to_file(path: &Path) -> crate::Result<()> {
    init();
    let f = File::create(path).map_err(crate::RunError::io(format!(
        "cannot create {}; is the run directory writable?",
        path.display()
    )))?;
    if let Ok(mut s) = SINK.lock() {
        *s = Some(f);
    }
    Ok(())
}

/// Stops writing to the current log file.
pub fn close() {
    if let Ok(mut s) = SINK.lock() {
        if let Some(f) = s.as_mut() {
            let _ = f.flush();
        }
        *s = None;
    }
}
