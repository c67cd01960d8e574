//! The `rmlab` binary: parse the command line, call the library, print what it returns, map
//! errors to exit codes (0 success, 1 a failure while running, 2 bad input).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rmlab::analysis::{data_table, output, plot, query, report, tensorboard};
use rmlab::error::{Error, Result};
use rmlab::experiment::Spec;
use rmlab::store::Store;
use rmlab::sweep::{self, Packing, SweepOptions};

use cli::{
    CheckArgs, Cli, Command, DataArgs, DataFormat, Format, MergeArgs, MigrateArgs, PlotArgs, PromptSplitArg,
    QueryArgs, QueryKind, ReportArgs, ScoreArgs, SlurmArgs, StatArg, StatusArgs, SweepArgs,
};
use cli::{ExportArgs, ExportKind};

// Output to a closed pipe (`rmlab sweep … 2>&1 | head -2`) is dropped quietly: the work goes on
// and no panic replaces it. Each macro is `println!`/`eprintln!` without the panic.
macro_rules! outln {
    ($($arg:tt)*) => {{ use std::io::Write as _; let _ = writeln!(std::io::stdout(), $($arg)*); }};
}
macro_rules! out {
    ($($arg:tt)*) => {{ use std::io::Write as _; let _ = write!(std::io::stdout(), $($arg)*); }};
}
macro_rules! errln {
    ($($arg:tt)*) => {{ use std::io::Write as _; let _ = writeln!(std::io::stderr(), $($arg)*); }};
}

fn main() -> ExitCode {
    survive_file_size_limit();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: every error's text already carries its cause.
            errln!("rmlab: error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// A write past the file-size limit (`ulimit -f`) raises SIGXFSZ, whose default action ends the
/// process without a word and leaves its run `running`. With a handler installed the write fails
/// with EFBIG instead, and that error is reported as a full disk's is: one line naming the file,
/// exit 1. signal-hook's flag handler is a safe API (`unsafe` is for src/train/kernels.rs only);
/// the flag itself is not read.
fn survive_file_size_limit() {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGXFSZ, flag);
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Sweep(a) => sweep(a),
        Command::Slurm(a) => slurm(a),
        Command::Status(a) => status(a),
        Command::Check(a) => check(a),
        Command::Doctor => {
            out!("{}", rmlab::runtime::doctor_report()?);
            Ok(())
        }
        Command::Plot(a) => plot(a),
        Command::Report(a) => report(a),
        Command::Data(a) => data(a),
        Command::Schema => {
            outln!("{}", serde_json::to_string_pretty(&rmlab::experiment::json_schema()).expect("JSON"));
            Ok(())
        }
        Command::Query(a) => query(a),
        Command::Merge(a) => merge(a),
        Command::Migrate(a) => migrate(a),
        Command::Score(a) => score(a),
        Command::Export(a) => export(a),
    }
}

fn export(a: ExportArgs) -> Result<()> {
    match a.what {
        ExportKind::Tensorboard(t) => {
            let req = tensorboard::ExportRequest {
                experiment: t.experiment,
                filters: t.filters,
                all_runs: t.all_runs,
            };
            let done = tensorboard::export(&t.db, &t.dir, &req)?;
            for r in &done.runs {
                errln!("{}  ({} scalars)", t.dir.join(&r.dir).display(), r.scalars);
            }
            errln!("{}: {done}", t.dir.display());
            Ok(())
        }
    }
}

fn sweep(a: SweepArgs) -> Result<()> {
    let spec = sweep::load_spec(&a.spec, &a.overrides)?;
    if a.dry_run {
        out!("{}", sweep::status_report(&spec, &a.db, a.force)?);
        return Ok(());
    }
    let opts = SweepOptions {
        db: a.db,
        force: a.force,
        jobs: a.jobs.map(usize::from),
        threads: a.threads.map(usize::from),
        only: a.only,
        packing: if a.autograd {
            Packing::Autograd
        } else if a.no_vectorize {
            Packing::Alone
        } else {
            Packing::Groups
        },
    };
    let s = sweep::run(&spec, &opts)?;
    errln!("{s}");
    if !s.failed.is_empty() {
        return Err(Error::CellsFailed { failed: s.failed.len(), total: s.total });
    }
    Ok(())
}

fn status(a: StatusArgs) -> Result<()> {
    let spec = sweep::load_spec(&a.spec, &a.overrides)?;
    out!("{}", sweep::status_report(&spec, &a.db, false)?);
    Ok(())
}

fn check(a: CheckArgs) -> Result<()> {
    for path in a.specs {
        let spec = sweep::load_spec(&path, &[])?;
        outln!("{}: ok, {} cells", path.display(), spec.n_cells());
    }
    Ok(())
}

fn plot(a: PlotArgs) -> Result<()> {
    let specs: Vec<Spec> =
        a.specs.iter().map(|p| Spec::load(p)?.with_overrides(&a.overrides)).collect::<Result<_>>()?;
    for w in plot::render_specs(&a.db, &specs, &a.out_dir)? {
        errln!("{}  (+ .png, .json)", w.svg.display());
    }
    Ok(())
}

fn report(a: ReportArgs) -> Result<()> {
    let spec = Spec::load(&a.spec)?.with_overrides(&a.overrides)?;
    let inputs = [a.db.as_path(), a.spec.as_path()];
    if let Some(out) = &a.out {
        // A named file is checked before any work; its directory must exist.
        output::refuse_overwriting(out, &inputs)?;
    }
    let page = report::Report::gather(&a.db, &spec)?;
    let out = match a.out {
        Some(out) => out,
        None => {
            // The default directory is made, once there is a page to put in it.
            let out = report::default_out(&spec.name);
            let dir = out.parent().expect("the default has a directory");
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            output::refuse_overwriting(&out, &inputs)?;
            out
        }
    };
    page.write(&out)?;
    errln!(
        "{}  ({} figures, {} of {} cells shown)",
        out.display(),
        page.figures.len(),
        page.coverage().0,
        page.cells.len()
    );
    Ok(())
}

fn slurm(a: SlurmArgs) -> Result<()> {
    let spec = sweep::load_spec(&a.spec, &a.overrides)?;
    let out = a.out.unwrap_or_else(|| PathBuf::from(format!("results/slurm/{}.sbatch", spec.name)));
    let opts = sweep::slurm::SlurmOptions {
        db: a.db,
        partition: a.partition,
        time: a.time,
        cpus_per_task: a.cpus_per_task.into(),
        gpus: a.gpus.map(usize::from),
        array_parallelism: a.array_parallelism.map(usize::from),
        cells_per_task: a.cells_per_task.into(),
        out,
    };
    let plan = sweep::slurm::write_scripts(&spec, &opts)?;
    errln!("{plan}");
    if plan.tasks.is_empty() {
        return Ok(());
    }
    if a.submit {
        let (array, merge) = sweep::slurm::submit(&plan)?;
        outln!("array {array}");
        outln!("merge {merge}");
    } else {
        errln!(
            "submit with: id=$(sbatch --parsable {}) && sbatch --dependency=afterany:$id {}",
            plan.array_script.display(),
            plan.merge_script.display()
        );
    }
    Ok(())
}

fn merge(a: MergeArgs) -> Result<()> {
    let report = rmlab::store::merge(&a.sources, &a.into)?;
    errln!("{report}");
    Ok(())
}

fn migrate(a: MigrateArgs) -> Result<()> {
    if !a.db.exists() {
        return Err(Error::file(&a.db, "no such store"));
    }
    let store = Store::open_checked(&a.db)?;
    errln!("{}: schema version {}", a.db.display(), store.schema_version()?);
    Ok(())
}

fn data(a: DataArgs) -> Result<()> {
    if let Some(out) = &a.out {
        output::refuse_overwriting(out, &a.files.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    }
    let rule = match a.prompt_split {
        PromptSplitArg::CommonPrefix => rmlab::experiment::config::PromptSplit::CommonPrefix,
        PromptSplitArg::LastTurn => rmlab::experiment::config::PromptSplit::LastTurn,
    };
    let limits = rmlab::data::ReadLimits {
        max_line_bytes: usize::try_from(a.max_line_bytes).unwrap_or(usize::MAX),
        max_file_bytes: usize::try_from(a.max_file_bytes).unwrap_or(usize::MAX),
        max_rows: usize::try_from(a.max_rows).unwrap_or(usize::MAX),
    };
    let reports = a
        .files
        .iter()
        .map(|f| rmlab::data::read_file(f, !a.strict, rule, limits).map(|d| d.report))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| match e {
            // The reader's hints name the spec keys; here the flags decide.
            Error::File { path, line, message } => Error::File {
                path,
                line,
                message: ["max_line_bytes", "max_file_bytes", "max_rows"]
                    .iter()
                    .fold(message, |m, k| {
                        m.replace(&format!("data.{k}"), &format!("--{}", k.replace('_', "-")))
                    })
                    .replace(
                        "set data.skip_bad_rows = true to skip bad",
                        "without --strict, rmlab data skips and counts bad",
                    ),
            },
            other => other,
        })?;
    let json = a.out.as_deref().is_some_and(|o| o.extension().is_some_and(|e| e == "json"));
    let text = match a.format.unwrap_or(if json { DataFormat::Json } else { DataFormat::Table }) {
        DataFormat::Table => data_table::table(&reports),
        DataFormat::Json => serde_json::to_string_pretty(&reports).expect("reports serialize") + "\n",
    };
    output::emit(text.as_bytes(), a.out.as_deref())
}

fn score(a: ScoreArgs) -> Result<()> {
    let ScoreArgs { run, file, db, out, format, normalize, skip_bad_rows, encoder } = a;
    if let Some(out) = &out {
        output::refuse_overwriting(out, &[&db, &file])?;
    }
    let opts = rmlab::score::ScoreOptions { normalize, skip_bad_rows, encoder };
    let mut s = rmlab::score::score(&db, &run, &file, &opts)?;
    outln!("{s}");
    if let Some(out) = out {
        let format = match Format::resolve(format, Some(&out), Format::Table) {
            Format::Parquet => output::Format::Parquet,
            Format::Csv => output::Format::Csv,
            Format::Json => output::Format::Json,
            Format::Table => {
                return Err(Error::flag(
                    "--out",
                    out.display(),
                    "expected a .csv, .json or .parquet file (or --format csv|json|parquet)",
                ));
            }
        };
        output::write(&mut s.pairs, format, Some(&out))?;
        errln!("{}  ({} pairs)", out.display(), s.pairs.height());
    }
    Ok(())
}

fn query(a: QueryArgs) -> Result<()> {
    let QueryArgs { what, opts: o } = a;
    let req = query::QueryRequest {
        kind: match what {
            QueryKind::Runs => query::QueryKind::Runs,
            QueryKind::Curves => query::QueryKind::Curves,
            QueryKind::Summary => query::QueryKind::Summary,
        },
        experiment: o.experiment,
        filters: o.filters,
        group_by: o.group_by,
        metrics: o.metrics,
        split: o.split,
        stat: match o.stat {
            StatArg::Final => query::Stat::Final,
            StatArg::Best => query::Stat::Best,
        },
        all_params: o.all_params,
        all_runs: o.all_runs,
        for_reading: Format::resolve(o.format, o.out.as_deref(), Format::Table) == Format::Table,
    };
    if let Some(out) = &o.out {
        output::refuse_overwriting(out, &[&o.db])?;
    }
    let (mut df, notes) = query::answer(&o.db, &req)?;
    for note in notes {
        errln!("note: {note}");
    }
    let format = match Format::resolve(o.format, o.out.as_deref(), Format::Table) {
        Format::Table => output::Format::Table { width: table_width() },
        Format::Csv => output::Format::Csv,
        Format::Json => output::Format::Json,
        Format::Parquet => output::Format::Parquet,
    };
    output::write(&mut df, format, o.out.as_deref())
}

/// Columns for a table: the terminal's width when standard output is one, else `$COLUMNS`,
/// else 100 (a file or a pipe).
fn table_width() -> u16 {
    let term = console::Term::stdout();
    if term.is_term()
        && let Some((_, cols)) = term.size_checked()
    {
        return cols;
    }
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|&c: &u16| c >= 40).unwrap_or(100)
}
