//! `splitbrain bench-producer` (hidden): drives an existing cluster with the
//! queue workload's producers only, recording the full history, and prints
//! the acknowledged throughput. Used by `bench/producer.sh` to compare with
//! Kafka's own `ProducerPerformance`.

use crate::exit::Exit;
use anyhow::{bail, Context};
use splitbrain_core::history::HistoryWriter;
use splitbrain_workloads::queue::{self, QueueOptions};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// Benchmark the queue workload's producer side (history recorded).
#[derive(Debug, clap::Args)]
pub struct BenchProducerArgs {
    /// Kafka bootstrap servers (`host:port,...`, e.g. from `cluster up`).
    #[arg(long)]
    pub bootstrap: String,
    /// Topic; must exist with `--partitions` partitions.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Messages to send.
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// `acks`.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// `enable.idempotence`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub idempotence: bool,
    /// Sending processes (each one send in flight).
    #[arg(long, default_value_t = 1024)]
    pub senders: usize,
    /// librdkafka producer clients.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// `linger.ms`.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Longest the sending may take, in seconds.
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
    /// Where to write the history (must not exist); the DLQ and effect store
    /// go in `<history>.state/`.
    #[arg(long)]
    pub history: PathBuf,
}

/// Runs the benchmark.
pub fn run(args: BenchProducerArgs) -> anyhow::Result<Exit> {
    // `<history>.state/`: the DLQ journal and effect store of this run.
    let mut state = args.history.clone().into_os_string();
    state.push(".state");
    let state = PathBuf::from(state);
    let writer = HistoryWriter::create(&args.history)
        .context("cannot create the history; pass a path that does not exist yet")?;
    let mut opts = QueueOptions::new(&args.bootstrap, state);
    opts.topic = args.topic;
    opts.partitions = args.partitions;
    opts.producers = args.producers;
    opts.senders = args.senders;
    opts.consumers = 0;
    opts.rate = 0.0;
    opts.payload_size = args.record_size;
    opts.max_messages = Some(args.records);
    opts.load_duration = Duration::from_secs(args.max_seconds);
    opts.drain_timeout = Duration::ZERO;
    opts.final_read_timeout = Duration::ZERO;
    opts.producer.acks = args.acks;
    opts.producer.enable_idempotence = args.idempotence;
    opts.producer.linger_ms = args.linger_ms;
    opts.producer.message_timeout_ms = 30_000;
    opts.producer.request_timeout_ms = 10_000;
    let report = queue::run(&opts, &writer, Arc::new(AtomicU64::new(0)), || {})
        .context("the benchmark run failed")?;
    let secs = report.load_elapsed.as_secs_f64();
    println!(
        "splitbrain producer: {} acknowledged of {} in {:.2} s = {:.0} records/s \
         ({} senders, {} history lines in {})",
        report.sends.ok,
        args.records,
        secs,
        report.sends.ok as f64 / secs,
        args.senders,
        writer.ops_written(),
        args.history.display()
    );
    if report.sends.ok < args.records {
        bail!(
            "only {} of {} records acknowledged; see the history",
            report.sends.ok,
            args.records
        );
    }
    Ok(Exit::Success)
}
