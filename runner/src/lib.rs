//! The splitbrain test runner, as a library behind the `splitbrain` CLI
//! (as `nextest-runner` is behind `cargo-nextest`).
//!
//! - [`run::run_test`] runs one test from nodes to verdict, configured by a
//!   [`TestConfig`], and returns a [`RunOutcome`]; its phases and the
//!   threads of the load are in [`run`].
//! - [`campaign::expand`] turns a campaign file into its tests, and
//!   [`campaign::run_all`] runs them one after another into
//!   [`campaign::CampaignRow`]s.
//! - [`store`] keeps every run in `store/<test>/<timestamp>/`.
//! - [`report`] builds `results.json`, `junit.xml` and `report.html` from a
//!   stored history ([`report::analyze`], [`report::write_all`]).
//! - [`evidence`] collects the servers' side of each anomaly example
//!   (segment dumps, log lines) before the cluster goes down.
//! - [`logging`] sends `tracing` output into the current run's log.
//!
//! Every fallible function returns a [`RunError`], which says what to do
//! next. What the process exits with is the CLI's business, not this crate's.
#![warn(missing_docs)]

pub mod campaign;
pub mod error;
pub mod evidence;
pub mod logging;
pub mod report;
pub mod run;
pub mod store;

pub use error::{Result, RunError};
pub use run::config::TestConfig;
pub use run::RunOutcome;
