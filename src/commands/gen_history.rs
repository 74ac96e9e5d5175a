//! `splitbrain gen-history`: writes a synthetic history with exactly the
//! anomalies asked for (for tests and benchmarks).

use crate::exit::Exit;
use anyhow::{bail, Context};
use splitbrain_checkers::synth::{Plants, Synth, SynthOptions};
use splitbrain_checkers::synth_txn::{TxnPlants, TxnSynth, TxnSynthOptions};
use std::io::Write;
use std::path::PathBuf;

/// Write a realistic synthetic history with exactly the planted anomalies.
#[derive(Debug, clap::Args)]
pub struct GenHistoryArgs {
    /// How many operations (lines) to write: exactly N, unless the final
    /// drain or the planted anomalies need more.
    #[arg(long, value_name = "N")]
    pub ops: u64,
    /// Random seed: the same arguments give the same file.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Anomalies to plant, e.g. `lost-write=2,duplicate=1` (names as in
    /// docs/results.md).
    #[arg(long, value_name = "SPEC", default_value = "")]
    pub plant: String,
    /// Number of logs (topic-partitions).
    #[arg(long, default_value_t = 8)]
    pub keys: u32,
    /// Producer processes.
    #[arg(long, default_value_t = 4)]
    pub producers: u32,
    /// Consumer processes (at most --keys).
    #[arg(long, default_value_t = 4)]
    pub consumers: u32,
    /// An observer sample every this many lines (0: none).
    #[arg(long, default_value_t = 500)]
    pub observe_every: u64,
    /// A transactional history (`f: "txn"`, docs/history.md) instead:
    /// `--ops` is then the number of transactions (producers' and
    /// consumers'), and `--plant` takes the transaction checker's names
    /// (G1a, G1c, G1c-process, G1c-realtime, lost-write, duplicate,
    /// precommitted-read, int-poll-skip, int-nonmonotonic-poll,
    /// int-nonmonotonic-send).
    #[arg(long)]
    pub txn: bool,
    /// Output file (refuses to overwrite); standard output when absent.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

/// Runs the generator.
pub fn run(args: GenHistoryArgs) -> anyhow::Result<Exit> {
    if args.ops == 0 {
        bail!("--ops must be at least 1");
    }
    if args.txn {
        return run_txn(args);
    }
    let plants = Plants::parse(&args.plant).map_err(|e| anyhow::anyhow!("--plant: {e}"))?;
    let mut synth = Synth::new(SynthOptions {
        ops: args.ops,
        seed: args.seed,
        keys: args.keys,
        producers: args.producers,
        consumers: args.consumers,
        observe_every: args.observe_every,
        plants,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    write_chunks(&args, |chunk| synth.next_chunk(chunk))?;
    let unplaced = synth.unplaced();
    if !unplaced.is_empty() {
        bail!(
            "could not plant {unplaced:?} within the operation budget; raise --ops or plant fewer"
        );
    }
    eprintln!("gen-history: wrote {} operations", synth.lines());
    Ok(Exit::Success)
}

/// The output file (never overwritten), or standard output.
fn open_output(args: &GenHistoryArgs) -> anyhow::Result<std::io::BufWriter<Box<dyn Write>>> {
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| {
                    format!("cannot create {} (it must not exist yet)", path.display())
                })?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    Ok(std::io::BufWriter::with_capacity(1 << 20, sink))
}

/// `--txn`: the transactional generator.
fn run_txn(args: GenHistoryArgs) -> anyhow::Result<Exit> {
    let plants = TxnPlants::parse(&args.plant).map_err(|e| anyhow::anyhow!("--plant: {e}"))?;
    let mut synth = TxnSynth::new(TxnSynthOptions {
        txns: args.ops,
        seed: args.seed,
        keys: args.keys,
        producers: args.producers,
        consumers: args.consumers,
        plants,
        ..TxnSynthOptions::default()
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    write_chunks(&args, |chunk| synth.next_chunk(chunk))?;
    let unplaced = synth.unplaced();
    if !unplaced.is_empty() {
        bail!("could not plant {unplaced:?} within the transaction budget; raise --ops or plant fewer");
    }
    eprintln!(
        "gen-history: wrote {} transactions in {} lines",
        synth.txns(),
        synth.lines()
    );
    Ok(Exit::Success)
}

/// Streams a generator's history to the output `args` names, chunk by
/// chunk (`next_chunk` appends to the buffer and says whether more follow),
/// so a history of millions of operations never sits in memory whole.
fn write_chunks(
    args: &GenHistoryArgs,
    mut next_chunk: impl FnMut(&mut Vec<u8>) -> bool,
) -> anyhow::Result<()> {
    let mut out = open_output(args)?;
    let mut chunk = Vec::with_capacity(4096);
    loop {
        chunk.clear();
        let more = next_chunk(&mut chunk);
        out.write_all(&chunk).context("writing the history")?;
        if !more {
            break;
        }
    }
    out.flush().context("writing the history")
}
