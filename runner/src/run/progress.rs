//! Progress while a run goes: on a terminal, one status line refreshed every
//! second (phase, elapsed/remaining load time, operations per second,
//! current fault); otherwise plain log lines (phase changes, and a status
//! line every 10 s during the load).

use super::interrupt::Interrupt;
use splitbrain_core::history::HistoryWriter;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the status line says is going on after the load ("heal", ...).
static STAGE: Mutex<String> = Mutex::new(String::new());

/// Sets the stage shown once the load period is over, and announces it.
pub fn stage(what: &str) {
    if let Ok(mut s) = STAGE.lock() {
        *s = what.to_string();
    }
    announce(what);
}

/// Prints a line, clearing a status line first when on a terminal.
pub fn announce(what: &str) {
    if crate::logging::stderr_is_quiet() {
        tracing::info!("{what}");
        return;
    }
    let mut err = std::io::stderr().lock();
    if std::io::stderr().is_terminal() {
        let _ = write!(err, "\r\x1b[2K");
    }
    let _ = writeln!(err, "[splitbrain] {what}");
    tracing::info!("{what}");
}

/// A run's progress reporter.
pub struct Progress {
    test: String,
    started: Instant,
    load_secs: u64,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Progress {
    /// A reporter for `test` whose load lasts `load_secs`.
    pub fn new(test: &str, load_secs: u64) -> Self {
        Progress {
            test: test.to_string(),
            started: Instant::now(),
            load_secs,
            ticker: None,
        }
    }

    /// A new phase.
    pub fn phase(&mut self, name: &str) {
        announce(&format!(
            "{} [{:>5.1}s] phase: {name}",
            self.test,
            self.started.elapsed().as_secs_f64()
        ));
    }

    /// A plain line.
    pub fn line(&mut self, text: &str) {
        announce(&format!("{}: {text}", self.test));
    }

    /// Starts the status ticker for the load phase.
    pub fn start_load(
        &mut self,
        writer: HistoryWriter,
        fault: Arc<Mutex<String>>,
        interrupt: Interrupt,
    ) {
        if let Ok(mut s) = STAGE.lock() {
            s.clear();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (s, load, test) = (stop.clone(), self.load_secs, self.test.clone());
        let tty = std::io::stderr().is_terminal();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut last = (Instant::now(), writer.ops_written());
            let mut last_plain = Instant::now();
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                if last.0.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                let now = (Instant::now(), writer.ops_written());
                let rate = (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64().max(1e-3);
                last = now;
                let elapsed = start.elapsed().as_secs();
                let f = fault.lock().map(|f| f.clone()).unwrap_or_default();
                let stage = STAGE.lock().map(|s| s.clone()).unwrap_or_default();
                let what = if stage.is_empty() {
                    format!(
                        "load {elapsed}s/{load}s (remaining {}s)",
                        load.saturating_sub(elapsed)
                    )
                } else {
                    format!("{stage} ({elapsed}s)")
                };
                let status = format!(
                    "{test} {what} | {rate:.0} ops/s | faults: {}{}",
                    if f.is_empty() { "none" } else { &f },
                    if interrupt.now() {
                        " | Ctrl-C twice: tearing down now"
                    } else if interrupt.requested() {
                        " | stopping (Ctrl-C again to skip drain and final read)"
                    } else {
                        ""
                    }
                );
                if crate::logging::stderr_is_quiet() {
                    // Exiting on a third Ctrl-C: nothing more on the terminal.
                } else if tty {
                    let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{status}");
                } else if last_plain.elapsed() >= Duration::from_secs(10) {
                    last_plain = Instant::now();
                    let _ = writeln!(std::io::stderr().lock(), "[splitbrain] {status}");
                }
            }
        });
        self.ticker = Some((stop, handle));
    }

    /// Stops the status ticker.
    pub fn stop_load(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = handle.join();
        }
    }

    /// Done.
    pub fn finish(&mut self) {
        self.stop_load();
        announce(&format!(
            "{} finished in {:.1}s",
            self.test,
            self.started.elapsed().as_secs_f64()
        ));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_load();
    }
}
