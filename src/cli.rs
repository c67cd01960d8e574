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
    Sweep(SweepArgs),
    /// Write (and with --submit, submit) a SLURM job array for the cells not done yet, and a
    /// dependent job that merges the tasks' stores into the experiment's store.
    Slurm(SlurmArgs),
    /// Show every cell of a spec as done, running, failed, missing or stale.
    Status(StatusArgs),
    /// Check that spec files parse and expand; print their cell counts.
    Check(CheckArgs),
    /// Report the LibTorch in use: version, library path, CUDA, threads.
    Doctor,
    /// Draw the figures of specs (declared `[[figure]]`s, else the default catalogue) from the
    /// store, as SVG + 300-dpi PNG + a JSON sidecar in OUT_DIR/<experiment>/.
    Plot(PlotArgs),
    /// Write one self-contained HTML page of a spec's experiment: its figures inline, summary
    /// tables with 95 % CIs, the cells run and missing, the resolved config, provenance. It opens
    /// from disk, with no server and no network.
    Report(ReportArgs),
    /// Describe preference files: rows read and skipped, prompts, responses, each prompt's
    /// comparison graph (components: bipartite with every winner on one side, bipartite with
    /// winners on both sides, or with an odd cycle), duplicates,
    /// contradictions, empty responses, text lengths.
    Data(DataArgs),
    /// Print the JSON Schema of spec files (for editors).
    Schema,
    /// Query the results store into a table, CSV, JSON or Parquet.
    Query(QueryArgs),
    /// Merge other stores into one; merging the same store twice adds nothing.
    Merge(MergeArgs),
    /// Bring a store to this rmlab's schema version (stores are also migrated when opened).
    Migrate(MigrateArgs),
    /// Score a TRL-format preference file with a model a run kept (`train.save`): print its
    /// accuracy and reward statistics, and write every pair's rewards with --out.
    Score(ScoreArgs),
    /// Export runs of the store for other tools: `export tensorboard DIR` writes TensorBoard
    /// event files (one directory a run, every metric at every evaluation step, the params as
    /// hyperparameters).
    Export(ExportArgs),
}

// Each subcommand's arguments; its description is the doc comment of its `Command` variant.

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Experiment spec (TOML), e.g. experiments/lambda.toml.
    pub spec: PathBuf,
    /// Results store.
    #[arg(long, default_value = "results/results.sqlite")]
    pub db: PathBuf,
    /// Rerun cells that are already done.
    #[arg(long)]
    pub force: bool,
    /// Show what would run and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Cells trained at once (default: the number of cores).
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// LibTorch intra-op threads (default 1; more can change the last bits of results).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Only the cells with these config hashes (comma-separated; as SLURM tasks use it).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Train every cell alone instead of stacking compatible cells (same config but seed
    /// and λ) into one batched program (each still by the batched engine where it can).
    #[arg(long)]
    pub no_vectorize: bool,
    /// Train every cell alone with the autograd reference trainer, the one the batched
    /// engine is tested against (implies --no-vectorize).
    #[arg(long)]
    pub autograd: bool,
    /// Override a base config key (repeatable): --set data.path=my.jsonl --set train.steps=500.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// Experiment spec (TOML).
    pub spec: PathBuf,
    /// The experiment's store (cells done there are left out; the merge writes there).
    #[arg(long, default_value = "results/results.sqlite")]
    pub db: PathBuf,
    /// SLURM partition (default: the cluster's default).
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit of each array task.
    #[arg(long, default_value = "01:00:00")]
    pub time: String,
    /// CPUs of each array task (its sweep's --jobs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub cpus_per_task: u16,
    /// GPUs per array task (cells with device = "auto" then train on CUDA).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub gpus: Option<u16>,
    /// At most this many array tasks running at once.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub array_parallelism: Option<u16>,
    /// Cells trained by each array task.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub cells_per_task: u16,
    /// The array script (the merge script is written beside it as NAME-merge.sbatch).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Submit both jobs with sbatch and print their ids.
    #[arg(long)]
    pub submit: bool,
    /// Override a base config key (repeatable), as the sweep was run: the tasks run with it.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Experiment spec (TOML).
    pub spec: PathBuf,
    /// Results store.
    #[arg(long, default_value = "results/results.sqlite")]
    pub db: PathBuf,
    /// Override a base config key (repeatable), as the sweep was run: the cells of that
    /// sweep are listed.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Experiment specs (TOML).
    #[arg(required = true)]
    pub specs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Experiment specs (TOML). Each figure draws exactly the cells of its spec (with the
    /// --set overrides), the newest finished run of each: runs of an edited spec are not drawn.
    #[arg(required = true)]
    pub specs: Vec<PathBuf>,
    /// Results store.
    #[arg(long, default_value = "results/results.sqlite")]
    pub db: PathBuf,
    /// Figures go to OUT_DIR/<experiment>/.
    #[arg(long, default_value = "results/figures")]
    pub out_dir: PathBuf,
    /// Override a base config key (repeatable), as the sweep was run: its cells are drawn.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Experiment spec (TOML). The page shows exactly its cells (with the --set overrides), the
    /// newest finished run of each, as `plot` draws them.
    pub spec: PathBuf,
    /// Results store.
    #[arg(long, default_value = "results/results.sqlite")]
    pub db: PathBuf,
    /// The HTML file to write (default: results/reports/<experiment>.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a base config key (repeatable), as the sweep was run: its cells are shown.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Preference files (.jsonl, .jsonl.gz, .parquet).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Where implicit prompts end (as data.prompt_split).
    #[arg(long, value_enum, default_value = "common_prefix")]
    pub prompt_split: PromptSplitArg,
    /// Stop at the first bad row (exit 2) instead of skipping and counting bad rows.
    #[arg(long)]
    pub strict: bool,
    /// Longest line a file may have, in bytes (as data.max_line_bytes).
    #[arg(long, default_value_t = rmlab::experiment::config::MAX_LINE_BYTES as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_line_bytes: u64,
    /// Most bytes a file may hold after decompression (as data.max_file_bytes).
    #[arg(long, default_value_t = rmlab::experiment::config::MAX_FILE_BYTES as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_file_bytes: u64,
    /// Most rows a file may hold (as data.max_rows).
    #[arg(long, default_value_t = rmlab::experiment::config::MAX_ROWS as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rows: u64,
    /// Output format (default: from --out's extension, else table).
    #[arg(long, value_enum)]
    pub format: Option<DataFormat>,
    /// Write to this file instead of standard output (.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(subcommand)]
    pub what: QueryKind,
    #[command(flatten)]
    pub opts: QueryOpts,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Stores to read (never changed).
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// Store to write (created if missing).
    #[arg(long, visible_alias = "db")]
    pub into: PathBuf,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Results store.
    #[arg(long, default_value = "results/results.sqlite")]
    pub db: PathBuf,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The run: its uid (`rmlab query runs --format csv` lists them, column `uid`) or its id in
    /// this store (column `run_id`).
    #[arg(long)]
    pub run: String,
    /// The preference file (.jsonl, .jsonl.gz, .parquet).
    pub file: PathBuf,
    /// Results store.
    #[arg(long, default_value = "results/results.sqlite")]
    pub db: PathBuf,
    /// Write the per-pair rewards here (format from the extension: .csv, .json, .parquet).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Format of --out, overriding its extension.
    #[arg(long, value_enum, requires = "out")]
    pub format: Option<Format>,
    /// Normalize rewards by the mean and standard deviation of the model's rewards over its
    /// training responses (kept with the model).
    #[arg(long)]
    pub normalize: bool,
    /// Skip rows of the file that cannot be read (the summary counts them) instead of failing
    /// on the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// An encoder run's checkpoint directory, when it is no longer where the run's spec named
    /// it (it must be the same checkpoint: its SHA-256 is checked).
    #[arg(long)]
    pub encoder: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: ExportKind,
}

/// What `rmlab export` writes.
#[derive(Debug, Subcommand)]
pub enum ExportKind {
    /// TensorBoard event files in DIR/<experiment>/<swept key=value,…>/: a scalar
    /// `split/metric` at every evaluation step, the run's params through the HParams plugin.
    Tensorboard(TensorboardArgs),
}

#[derive(Debug, Args)]
pub struct TensorboardArgs {
    /// The log directory (made if missing; `tensorboard --logdir DIR`).
    pub dir: PathBuf,
    /// Results store.
    #[arg(long, default_value = "results/results.sqlite")]
    pub db: PathBuf,
    /// Only runs of this experiment.
    #[arg(long, short = 'e')]
    pub experiment: Option<String>,
    /// Only runs whose param KEY has VALUE (repeatable), as `rmlab query --where`.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Every run (any status, reruns), not only the newest finished run of each cell.
    #[arg(long)]
    pub all_runs: bool,
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

/// Output format of `query` and `score`.
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

/// Which value of each run a summary aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatArg {
    Final,
    Best,
}

#[derive(Debug, Args)]
pub struct QueryOpts {
    /// Results store.
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
    /// Output format (default: from --out's extension, else table).
    #[arg(long, value_enum, global = true)]
    pub format: Option<Format>,
    /// Write to this file instead of standard output (format from its extension: .csv, .json,
    /// .parquet, or a table for any other).
    #[arg(long, global = true)]
    pub out: Option<PathBuf>,
}

impl Format {
    /// The format `--format` names, else the one `--out`'s extension implies (`.csv`, `.json`,
    /// `.parquet`), else `fallback`.
    pub fn resolve(format: Option<Format>, out: Option<&std::path::Path>, fallback: Format) -> Format {
        format.or_else(|| out.and_then(Format::of_path)).unwrap_or(fallback)
    }

    fn of_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every subcommand says what it is for in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        let mut missing = Vec::new();
        let mut cli = Cli::command();
        cli.build();
        for sub in cli.get_subcommands().chain(cli.get_subcommands().flat_map(|s| s.get_subcommands())) {
            assert!(sub.get_about().is_some(), "`rmlab {}` has no description", sub.get_name());
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("rmlab {} {}", sub.get_name(), id));
                }
            }
        }
        assert!(missing.is_empty(), "arguments without help text: {missing:?}");
        // And every subcommand's help renders.
        for sub in cli.get_subcommands_mut() {
            assert!(sub.render_long_help().to_string().contains("Usage"));
        }
    }

    #[test]
    fn the_output_format_comes_from_the_flag_then_the_extension() {
        use std::path::Path;
        let table = Format::Table;
        assert_eq!(Format::resolve(None, None, table), Format::Table);
        assert_eq!(Format::resolve(None, Some(Path::new("a.csv")), table), Format::Csv);
        assert_eq!(Format::resolve(None, Some(Path::new("a.parquet")), table), Format::Parquet);
        assert_eq!(Format::resolve(None, Some(Path::new("a.json")), table), Format::Json);
        assert_eq!(Format::resolve(None, Some(Path::new("a.txt")), table), Format::Table);
        assert_eq!(Format::resolve(Some(Format::Csv), Some(Path::new("a.json")), table), Format::Csv);
    }

    #[test]
    fn every_command_that_opens_a_store_takes_db_and_every_spec_command_takes_set() {
        let cli = Cli::command();
        let has = |sub: &str, id: &str| {
            cli.find_subcommand(sub).unwrap().get_arguments().any(|a| a.get_id().as_str() == id)
        };
        for sub in ["sweep", "status", "slurm", "plot", "report", "query", "migrate", "score"] {
            assert!(has(sub, "db"), "rmlab {sub} --db");
        }
        for sub in ["sweep", "status", "slurm", "plot", "report"] {
            assert!(has(sub, "overrides"), "rmlab {sub} --set");
        }
    }
}
