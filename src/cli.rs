//! Command-line types (clap only; the work is done by the library).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
        /// LibTorch intra-op threads (default 1; more can change the last bits of results).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Only the cells with these config hashes (comma-separated; as SLURM tasks use it).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Train every cell alone instead of stacking compatible cells (same config but seed
        /// and λ) into one batched program (each still by the batched engine where it can).
        #[arg(long)]
        no_vectorize: bool,
        /// Train every cell alone with the autograd reference trainer, the one the batched
        /// engine is tested against (implies --no-vectorize).
        #[arg(long)]
        autograd: bool,
        /// Override a base config key (repeatable): --set data.path=my.jsonl --set train.steps=500.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Write (and with --submit, submit) a SLURM job array for the cells not done yet, and a
    /// dependent job that merges the tasks' stores into the experiment's store.
    Slurm {
        spec: PathBuf,
        /// The experiment's store (cells done there are left out; the merge writes there).
        #[arg(long, default_value = "results/results.sqlite")]
        db: PathBuf,
        #[arg(long)]
        partition: Option<String>,
        /// Time limit of each array task.
        #[arg(long, default_value = "01:00:00")]
        time: String,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        cpus_per_task: u16,
        /// GPUs per array task (cells with device = "auto" then train on CUDA).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        gpus: Option<u16>,
        /// At most this many array tasks running at once.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        array_parallelism: Option<u16>,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        cells_per_task: u16,
        /// The array script (the merge script is written beside it as NAME-merge.sbatch).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Submit both jobs with sbatch and print their ids.
        #[arg(long)]
        submit: bool,
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
    /// Draw the figures of specs (declared `[[figure]]`s, else the default catalogue) from the
    /// store, as SVG + 300-dpi PNG + a JSON sidecar in OUT_DIR/<experiment>/.
    Plot {
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        #[arg(long, default_value = "results/results.sqlite")]
        db: PathBuf,
        #[arg(long, default_value = "results/figures")]
        out_dir: PathBuf,
    },
    /// Describe preference files: rows read and skipped, prompts, responses, each prompt's
    /// comparison graph (components: bipartite with every winner on one side, bipartite with
    /// winners on both sides, or with an odd cycle), duplicates,
    /// contradictions, empty responses, text lengths.
    Data {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where implicit prompts end (as data.prompt_split).
        #[arg(long, value_enum, default_value = "common_prefix")]
        prompt_split: PromptSplitArg,
        /// Stop at the first bad row (exit 2) instead of skipping and counting bad rows.
        #[arg(long)]
        strict: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: DataFormat,
    },
    /// Print the JSON Schema of spec files (for editors).
    Schema,
    /// Query the results store into a table, CSV, JSON or Parquet.
    Query {
        #[command(subcommand)]
        what: QueryKind,
        #[command(flatten)]
        opts: QueryOpts,
    },
    /// Merge other stores into one; merging the same store twice adds nothing.
    Merge {
        /// Stores to read (never changed).
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        /// Store to write (created if missing).
        #[arg(long)]
        into: PathBuf,
    },
    /// Bring a store to this rmlab's schema version (stores are also migrated when opened).
    Migrate { db: PathBuf },
    /// Score a TRL-format preference file with a model a run kept (`train.save`): print its
    /// accuracy and reward statistics, and write every pair's rewards with --out.
    Score {
        /// The run: its uid (`rmlab query runs --format csv` lists them) or its id in this store.
        #[arg(long)]
        run: String,
        /// The preference file (.jsonl, .jsonl.gz, .parquet).
        file: PathBuf,
        #[arg(long, default_value = "results/results.sqlite")]
        db: PathBuf,
        /// Write the per-pair rewards here (.parquet or .csv).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Normalise rewards by the mean and standard deviation of the model's rewards over its
        /// training responses (kept with the model).
        #[arg(long)]
        normalize: bool,
    },
}

/// What `rmlab query` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum QueryKind {
    /// One row per run with its params.
    Runs,
    /// Metric values at every evaluation, long form.
    Curves,
    /// Final (or best) values aggregated over seeds: n, mean, std, sem, 95 % CI.
    Summary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Parquet,
}

/// `rmlab data` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    Table,
    Json,
}

/// `data.prompt_split`, spelled as in specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PromptSplitArg {
    #[value(name = "common_prefix")]
    CommonPrefix,
    #[value(name = "last_turn")]
    LastTurn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatArg {
    Final,
    Best,
}

#[derive(Debug, Args)]
pub struct QueryOpts {
    #[arg(long, default_value = "results/results.sqlite", global = true)]
    pub db: PathBuf,
    /// Only runs of this experiment.
    #[arg(long, short = 'e', global = true)]
    pub experiment: Option<String>,
    /// Only runs whose param KEY has VALUE (repeatable): --where loss.lambda=0.1 --where status=finished.
    #[arg(long = "where", value_name = "KEY=VALUE", global = true)]
    pub filters: Vec<String>,
    /// Summary: params to group by (default: every swept param but the seed), comma-separated.
    #[arg(long, value_delimiter = ',', global = true)]
    pub group_by: Vec<String>,
    /// Only these metrics, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', global = true)]
    pub metrics: Vec<String>,
    /// Only this split (train, val, test, or the name of an evaluation file).
    #[arg(long, global = true)]
    pub split: Option<String>,
    /// Summary: aggregate each run's final or best value.
    #[arg(long, value_enum, default_value = "final", global = true)]
    pub stat: StatArg,
    /// Runs: every param, not only the swept ones.
    #[arg(long, global = true)]
    pub all_params: bool,
    /// Curves, summary: every finished run, not only the newest of each cell under the current
    /// format version.
    #[arg(long, global = true)]
    pub all_runs: bool,
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: Format,
    /// Write to this file instead of standard output (required for parquet).
    #[arg(long, global = true)]
    pub out: Option<PathBuf>,
}
