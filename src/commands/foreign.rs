//! What `check` and `import` share: the `--format` flags for histories
//! other tools recorded, and their conversion (by `splitbrain-import`).

use anyhow::{bail, Context};
use splitbrain_import::{Converted, Source};
use std::path::{Path, PathBuf};

/// Formats `check` and `import` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// splitbrain's own history (JSON Lines, docs/history.md).
    Splitbrain,
    /// The JSON event streams of Kafka's VerifiableProducer (`--producer`)
    /// and VerifiableConsumer run with --verbose (`--consumer`).
    KafkaVerifiable,
    /// The history.edn of Jepsen's Kafka test (jepsen.tests.kafka), given
    /// as HISTORY.
    Jepsen,
}

impl Format {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Splitbrain => "splitbrain",
            Format::KafkaVerifiable => "kafka-verifiable",
            Format::Jepsen => "jepsen",
        }
    }
}

/// The flags naming a foreign history's files.
#[derive(Debug, clap::Args)]
pub struct ForeignInput {
    /// Format of the input: splitbrain's own history, or another tool's
    /// records, converted as docs/history.md describes.
    #[arg(long, value_enum, default_value = "splitbrain")]
    pub format: Format,
    /// (kafka-verifiable) The standard output of one VerifiableProducer;
    /// repeat for several (each with its own --value-prefix).
    #[arg(long, value_name = "PATH")]
    pub producer: Vec<PathBuf>,
    /// (kafka-verifiable) The standard output of one VerifiableConsumer run
    /// with --verbose; repeat for several.
    #[arg(long, value_name = "PATH")]
    pub consumer: Vec<PathBuf>,
}

/// Reads and converts the input files to a splitbrain history.
pub fn convert(input: &ForeignInput, history: Option<&Path>) -> anyhow::Result<Converted> {
    match input.format {
        Format::Jepsen => {
            let Some(path) = history else {
                bail!("--format jepsen reads Jepsen's history.edn: give its path");
            };
            if !input.producer.is_empty() || !input.consumer.is_empty() {
                bail!("--producer/--consumer belong to --format kafka-verifiable, not jepsen");
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}; check the path", path.display()))?;
            let name = path.display().to_string();
            splitbrain_import::jepsen::convert(&Source {
                name: &name,
                text: &text,
            })
            .context("cannot convert the Jepsen history; fix the named line")
        }
        Format::Splitbrain => bail!(
            "--producer/--consumer need --format kafka-verifiable; a splitbrain history is \
             given as HISTORY"
        ),
        Format::KafkaVerifiable => {
            if history.is_some() {
                bail!(
                    "--format kafka-verifiable reads --producer and --consumer files, not \
                     HISTORY; pass each tool's output with its flag"
                );
            }
            if input.producer.is_empty() {
                bail!("--format kafka-verifiable needs at least one --producer file");
            }
            let read = |paths: &[PathBuf]| -> anyhow::Result<Vec<(String, String)>> {
                paths
                    .iter()
                    .map(|p| {
                        let text = std::fs::read_to_string(p).with_context(|| {
                            format!("cannot read {}; check the path", p.display())
                        })?;
                        Ok((p.display().to_string(), text))
                    })
                    .collect()
            };
            let producers = read(&input.producer)?;
            let consumers = read(&input.consumer)?;
            let ps: Vec<Source> = producers
                .iter()
                .map(|(n, t)| Source { name: n, text: t })
                .collect();
            let cs: Vec<Source> = consumers
                .iter()
                .map(|(n, t)| Source { name: n, text: t })
                .collect();
            splitbrain_import::kafka_verifiable::convert(&ps, &cs)
                .context("cannot convert the verifiable clients' output; fix the named line")
        }
    }
}
