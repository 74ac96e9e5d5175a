//! The observer: a sampler that asks the cluster what every server believes
//! (via a caller-supplied closure, so this crate never depends on how nodes
//! are reached) every few hundred milliseconds and records each answer in the
//! history as `process: "observer"`, `f: "observe"`.
//!
//! It runs on its own OS thread rather than a tokio task because observing
//! usually means blocking SSH calls (libssh2 sessions are driven from one
//! thread at a time). It is bounded in samples and in time, and it stops
//! promptly when asked (or when dropped).
//!
//! ```no_run
//! use splitbrain_core::cluster::Observation;
//! use splitbrain_core::history::HistoryWriter;
//! use splitbrain_workloads::observer::{Observer, ObserverConfig};
//!
//! let writer = HistoryWriter::create("history.jsonl").unwrap();
//! let observer = Observer::start(writer, ObserverConfig::default(), || Observation::default()).unwrap();
//! // ... run the test ...
//! let report = observer.stop();
//! assert!(report.error.is_none());
//! ```

use splitbrain_core::cluster::Observation;
use splitbrain_core::history::HistoryWriter;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The shortest sampling interval accepted: faster sampling would load the
/// servers under test and flood the history.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest sampling interval accepted: slower sampling could miss a
/// short-lived second leader.
pub const MAX_INTERVAL: Duration = Duration::from_millis(500);

/// How often and for how long the observer samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObserverConfig {
    /// Time between the starts of two samples (100–500 ms). A sample that
    /// takes longer than this delays the next one; missed ticks are skipped,
    /// not caught up in a burst.
    pub interval: Duration,
    /// Stop after this many samples.
    pub max_samples: u64,
    /// Stop after this long, whatever happens.
    pub max_duration: Duration,
}

impl Default for ObserverConfig {
    /// 250 ms, at most 1 hour and 14 400 samples (one hour at 4 per second).
    fn default() -> Self {
        ObserverConfig {
            interval: Duration::from_millis(250),
            max_samples: 14_400,
            max_duration: Duration::from_secs(3600),
        }
    }
}

/// Why the observer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ObserverError {
    /// The interval is outside the accepted range.
    #[error("observer interval {0:?} is outside 100..=500 ms; choose an interval in that range")]
    Interval(Duration),
    /// `max_samples` is zero, so the observer would record nothing.
    #[error("observer max_samples is 0; give it at least 1")]
    NoSamples,
    /// The sampling thread could not be spawned.
    #[error("could not spawn the observer thread: {0} (the system may be out of threads)")]
    Spawn(#[source] std::io::Error),
}

/// Why the observer stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// [`Observer::stop`] was called (or the observer dropped).
    Requested,
    /// It reached [`ObserverConfig::max_samples`].
    MaxSamples,
    /// It reached [`ObserverConfig::max_duration`].
    MaxDuration,
    /// Recording failed or the sampling closure panicked; see
    /// [`ObserverReport::error`].
    Error,
}

/// What the observer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObserverReport {
    /// Samples recorded in the history.
    pub samples: u64,
    /// Why it stopped.
    pub stopped: StopReason,
    /// The history write error or the closure's panic message, if any.
    pub error: Option<String>,
}

/// A running observer. Stop it with [`Observer::stop`]; dropping it also
/// stops it (and waits for the sample in progress).
#[derive(Debug)]
pub struct Observer {
    stop_tx: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<ObserverReport>>,
}

impl Observer {
    /// Starts sampling on a new thread: calls `sample` right away, then every
    /// `config.interval`, recording each result with
    /// [`HistoryWriter::observe`].
    pub fn start<F>(
        writer: HistoryWriter,
        config: ObserverConfig,
        sample: F,
    ) -> Result<Observer, ObserverError>
    where
        F: FnMut() -> Observation + Send + 'static,
    {
        if config.interval < MIN_INTERVAL || config.interval > MAX_INTERVAL {
            return Err(ObserverError::Interval(config.interval));
        }
        if config.max_samples == 0 {
            return Err(ObserverError::NoSamples);
        }
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("observer".into())
            .spawn(move || run(writer, config, sample, stop_rx))
            .map_err(ObserverError::Spawn)?;
        Ok(Observer {
            stop_tx: Some(stop_tx),
            handle: Some(handle),
        })
    }

    /// Whether the sampling thread has ended on its own (a bound reached or an
    /// error).
    pub fn is_finished(&self) -> bool {
        match &self.handle {
            Some(h) => h.is_finished(),
            None => true,
        }
    }

    /// Stops sampling (after the sample in progress, if any) and reports.
    pub fn stop(mut self) -> ObserverReport {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> ObserverReport {
        // Dropping the sender wakes the thread's `recv_timeout` at once.
        self.stop_tx.take();
        match self.handle.take() {
            Some(handle) => handle.join().unwrap_or_else(|panic| ObserverReport {
                samples: 0,
                stopped: StopReason::Error,
                error: Some(format!(
                    "observer thread panicked: {}",
                    panic_message(panic.as_ref())
                )),
            }),
            None => ObserverReport {
                samples: 0,
                stopped: StopReason::Requested,
                error: None,
            },
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        if self.handle.is_some() {
            let report = self.stop_and_join();
            if let Some(error) = report.error {
                tracing::warn!(%error, "observer stopped with an error");
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".to_string()
    }
}

fn run<F>(
    writer: HistoryWriter,
    config: ObserverConfig,
    mut sample: F,
    stop_rx: mpsc::Receiver<()>,
) -> ObserverReport
where
    F: FnMut() -> Observation,
{
    let started = Instant::now();
    let deadline = started + config.max_duration;
    let mut samples = 0u64;
    let mut next = started;
    let finish = |samples, stopped, error| ObserverReport {
        samples,
        stopped,
        error,
    };
    loop {
        let now = Instant::now();
        if now >= deadline {
            return finish(samples, StopReason::MaxDuration, None);
        }
        // Wait for the next tick, or a stop request, whichever comes first.
        if next > now {
            let wait = next.min(deadline) - now;
            match stop_rx.recv_timeout(wait) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    return finish(samples, StopReason::Requested, None)
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= deadline {
                return finish(samples, StopReason::MaxDuration, None);
            }
        } else if let Ok(()) | Err(mpsc::TryRecvError::Disconnected) = stop_rx.try_recv() {
            return finish(samples, StopReason::Requested, None);
        }
        let tick = Instant::now();
        let observation = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut sample))
        {
            Ok(o) => o,
            Err(panic) => {
                return finish(
                    samples,
                    StopReason::Error,
                    Some(format!(
                        "the observation closure panicked: {}",
                        panic_message(panic.as_ref())
                    )),
                )
            }
        };
        if let Err(e) = writer.observe(&observation) {
            return finish(samples, StopReason::Error, Some(e.to_string()));
        }
        samples += 1;
        if samples >= config.max_samples {
            return finish(samples, StopReason::MaxSamples, None);
        }
        // Next tick on the fixed grid; skip ticks already missed.
        next += config.interval;
        let after = Instant::now();
        if next < after {
            let behind = after - next;
            let skipped = behind.as_nanos() / config.interval.as_nanos() + 1;
            next += config.interval * skipped as u32;
            tracing::debug!(
                took_ms = (after - tick).as_millis() as u64,
                skipped,
                "observation slower than the interval"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_core::cluster::{BrokerView, ZkMode, ZkServerView};
    use splitbrain_core::history::{HistoryReader, OpValue};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn view(n: u64) -> Observation {
        Observation {
            zookeeper: vec![ZkServerView {
                node: "n1".into(),
                server_id: 1,
                mode: ZkMode::Leader,
                zxid: Some(n),
                epoch: Some(0),
                members: vec![1, 2, 3],
                znode_count: None,
                controller: Some(1),
                // Recorded as given: the checker pairs it with `controller`.
                controller_epoch: Some(3),
                cluster_id: None,
                error: None,
            }],
            kafka: vec![BrokerView {
                node: "n4".into(),
                broker_id: 1,
                controller: Some(1),
                quorum_leader: None,
                quorum_epoch: None,
                error: None,
            }],
            partitions: vec![],
            controllers: Vec::new(),
        }
    }

    fn read_observations(path: &std::path::Path) -> Vec<(u64, Observation)> {
        let mut r = HistoryReader::open(path).unwrap();
        let mut out = Vec::new();
        while let Some(op) = r.next_op() {
            let op = op.unwrap();
            assert_eq!(op.process.to_string(), "observer");
            assert_eq!(op.f, "observe");
            match op.value {
                OpValue::Observation(o) => out.push((op.time, *o)),
                other => panic!("unexpected value {other:?}"),
            }
        }
        assert!(r.finish().is_empty());
        out
    }

    #[test]
    fn samples_at_the_interval_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let w = HistoryWriter::create(&path).unwrap();
        let counter = Arc::new(AtomicU64::new(0));
        let c = counter.clone();
        let config = ObserverConfig {
            interval: Duration::from_millis(100),
            ..ObserverConfig::default()
        };
        let obs =
            Observer::start(w, config, move || view(c.fetch_add(1, Ordering::SeqCst))).unwrap();
        std::thread::sleep(Duration::from_millis(1050));
        let stopped_at = Instant::now();
        let report = obs.stop();
        assert!(
            stopped_at.elapsed() < Duration::from_millis(100),
            "stop is prompt"
        );
        assert_eq!(report.stopped, StopReason::Requested);
        assert_eq!(report.error, None);
        // Ticks at 0, 100, ..., 1000 ms: 11, give or take scheduling.
        assert!((9..=12).contains(&report.samples), "{report:?}");
        let seen = read_observations(&path);
        assert_eq!(seen.len() as u64, report.samples);
        assert_eq!(counter.load(Ordering::SeqCst), report.samples);
        for (i, (_, o)) in seen.iter().enumerate() {
            assert_eq!(o, &view(i as u64));
        }
        // Samples sit on a 100 ms grid: a late one (busy machine) does not
        // shift the ones after it, so the mean gap is one interval.
        let span = Duration::from_nanos(seen.last().unwrap().0 - seen[0].0);
        let mean = span / (seen.len() as u32 - 1);
        assert!(
            mean >= Duration::from_millis(85) && mean <= Duration::from_millis(130),
            "{mean:?}"
        );
    }

    #[test]
    fn stops_at_max_samples_and_max_duration() {
        let w = HistoryWriter::from_writer(std::io::sink(), "sink");
        let obs = Observer::start(
            w.clone(),
            ObserverConfig {
                interval: Duration::from_millis(100),
                max_samples: 3,
                max_duration: Duration::from_secs(60),
            },
            Observation::default,
        )
        .unwrap();
        let t = Instant::now();
        while !obs.is_finished() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let report = obs.stop();
        assert_eq!(report.samples, 3);
        assert_eq!(report.stopped, StopReason::MaxSamples);

        let obs = Observer::start(
            w,
            ObserverConfig {
                interval: Duration::from_millis(100),
                max_samples: 1000,
                max_duration: Duration::from_millis(350),
            },
            Observation::default,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(600));
        assert!(obs.is_finished());
        let report = obs.stop();
        assert_eq!(report.stopped, StopReason::MaxDuration);
        assert!((3..=4).contains(&report.samples), "{report:?}");
    }

    #[test]
    fn slow_samples_skip_ticks_instead_of_bursting() {
        let w = HistoryWriter::from_writer(std::io::sink(), "sink");
        let obs = Observer::start(
            w,
            ObserverConfig {
                interval: Duration::from_millis(100),
                ..ObserverConfig::default()
            },
            || {
                std::thread::sleep(Duration::from_millis(250));
                Observation::default()
            },
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        let report = obs.stop();
        // Each sample takes 250 ms and starts on the next free 100 ms tick
        // (0, 300, 600, 900): about 4, never a catch-up burst.
        assert!((3..=5).contains(&report.samples), "{report:?}");
    }

    #[test]
    fn rejects_bad_config() {
        let w = HistoryWriter::from_writer(std::io::sink(), "sink");
        for ms in [0, 99, 501, 10_000] {
            let err = Observer::start(
                w.clone(),
                ObserverConfig {
                    interval: Duration::from_millis(ms),
                    ..ObserverConfig::default()
                },
                Observation::default,
            )
            .unwrap_err();
            assert!(matches!(err, ObserverError::Interval(_)), "{err}");
            assert!(err.to_string().contains("100..=500 ms"));
        }
        let err = Observer::start(
            w,
            ObserverConfig {
                max_samples: 0,
                ..ObserverConfig::default()
            },
            Observation::default,
        )
        .unwrap_err();
        assert!(matches!(err, ObserverError::NoSamples));
    }

    #[test]
    fn a_panicking_closure_or_broken_history_stops_with_an_error() {
        let w = HistoryWriter::from_writer(std::io::sink(), "sink");
        let mut n = 0;
        let obs = Observer::start(
            w,
            ObserverConfig {
                interval: Duration::from_millis(100),
                ..ObserverConfig::default()
            },
            move || {
                n += 1;
                if n == 2 {
                    panic!("ssh went away");
                }
                Observation::default()
            },
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let report = obs.stop();
        assert_eq!(report.samples, 1);
        assert_eq!(report.stopped, StopReason::Error);
        assert!(report.error.unwrap().contains("ssh went away"));

        struct Broken;
        impl std::io::Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let obs = Observer::start(
            HistoryWriter::from_writer(Broken, "broken"),
            ObserverConfig {
                interval: Duration::from_millis(100),
                ..ObserverConfig::default()
            },
            Observation::default,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(obs.is_finished());
        let report = obs.stop();
        assert_eq!(report.samples, 0);
        assert_eq!(report.stopped, StopReason::Error);
        assert!(report.error.unwrap().contains("disk full"));
    }

    #[test]
    fn dropping_stops_the_thread() {
        let counter = Arc::new(AtomicU64::new(0));
        let c = counter.clone();
        let obs = Observer::start(
            HistoryWriter::from_writer(std::io::sink(), "sink"),
            ObserverConfig {
                interval: Duration::from_millis(100),
                ..ObserverConfig::default()
            },
            move || {
                c.fetch_add(1, Ordering::SeqCst);
                Observation::default()
            },
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(150));
        drop(obs);
        let after_drop = counter.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(counter.load(Ordering::SeqCst), after_drop);
        assert!(after_drop >= 1);
    }
}
