//! `ncpc data`: where the datasets live, and checking them.

use super::CliError;
use crate::train::data::{self, DatasetName, Split};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Arguments of `ncpc data`.
#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Print the data root.
    Path {
        /// Data root (default: $NCPC_DATA, else ~/.cache/ncpc/data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check a dataset's files against their SHA-256 sums and load both splits.
    Verify {
        /// Which dataset.
        #[arg(value_enum)]
        name: DatasetName,
        /// Data root (default: $NCPC_DATA, else ~/.cache/ncpc/data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Download a dataset from its public mirror into the data root, checking it.
    Fetch {
        /// Which dataset.
        #[arg(value_enum)]
        name: DatasetName,
        /// Data root (default: $NCPC_DATA, else ~/.cache/ncpc/data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Base URL to fetch from instead of the dataset's public mirror.
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Summarize the embedded MNIST subset and what the data root holds.
    List {
        /// Data root (default: $NCPC_DATA, else ~/.cache/ncpc/data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Run `ncpc data`.
pub fn run(a: DataArgs) -> Result<(), CliError> {
    match a.command {
        DataCommand::Path { data_dir } => {
            println!("{}", data::data_root(data_dir.as_deref()).display())
        }
        DataCommand::Verify { name, data_dir } => {
            let root = data::data_root(data_dir.as_deref());
            let files = data::verify(name, &root)?;
            for f in &files {
                println!("ok  {}", f.display());
            }
            for split in [Split::Train, Split::Test] {
                let d = data::load(name, split, &root)?;
                println!(
                    "{} {:?}: {} samples of {:?}",
                    d.name,
                    split,
                    d.len(),
                    d.sample_shape
                );
            }
        }
        DataCommand::Fetch {
            name,
            data_dir,
            mirror,
        } => {
            let root = data::data_root(data_dir.as_deref());
            for f in data::fetch::fetch(name, &root, mirror.as_deref(), data::CHECKSUMS)? {
                println!("ok  {}", f.display());
            }
        }
        DataCommand::List { data_dir } => {
            for split in [Split::Train, Split::Test] {
                let d = data::embedded_mnist(split)?;
                println!(
                    "{} {:?}: {} samples of {:?}",
                    d.name,
                    split,
                    d.len(),
                    d.sample_shape
                );
            }
            let root = data::data_root(data_dir.as_deref());
            for name in [
                DatasetName::Mnist,
                DatasetName::FashionMnist,
                DatasetName::Cifar10,
            ] {
                let state = match data::load(name, Split::Test, &root) {
                    Ok(d) => format!("present ({} test samples)", d.len()),
                    Err(e) => format!("absent or unusable: {e}"),
                };
                println!("{}: {state}", name.dir());
            }
        }
    }
    Ok(())
}
