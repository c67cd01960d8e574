//! Command-line types (clap only; the work is done by the library).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Train reward models with a regularized pairwise loss and study what the regularizer does.
#[derive(Debug, Parser)]
#[command(name = "rmlab", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every cell of a spec that is not done yet.
    Sweep {
        /// Experiment spec (TOML), e.g. experiments/lambda.toml.
        spec: PathBuf,
        /// Results store.
        #[arg(long, default_value = "results/results.sqlite")]
        db: PathBuf,
        /// Rerun cells that are already done.
        #[arg(long)]
        force: bool,
        /// Show what would run and exit.
        #[arg(long)]
        dry_run: bool,
        /// Cells trained at once (default: the number of cores).
        #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
        /// LibTorch intra-op threads per worker (default: cores / jobs).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Show every cell of a spec as done, running, failed, missing or stale.
    Status {
        spec: PathBuf,
        #[arg(long, default_value = "results/results.sqlite")]
        db: PathBuf,
    },
    /// Check that spec files parse and expand; print their cell counts.
    Check {
        #[arg(required = true)]
        specs: Vec<PathBuf>,
    },
    /// Report the LibTorch in use: version, library path, CUDA, threads.
    Doctor,
    /// Print the JSON Schema of spec files (for editors).
    Schema,
}
