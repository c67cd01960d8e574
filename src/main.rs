//! The `rmlab` binary: parse the command line, call the library, print what it returns, map
//! errors to exit codes (0 success, 1 a failure while running, 2 bad input).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rmlab::analysis::{data_table, output, plot, query};
use rmlab::error::{Error, Result};
use rmlab::experiment::Spec;
use rmlab::store::Store;
use rmlab::sweep::{self, Packing, SweepOptions};

use cli::{Cli, Command, DataFormat, Format, PromptSplitArg, QueryKind, QueryOpts, StatArg};

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

fn run(command: Command) -> Result<()> {
    match command {
        Command::Sweep {
            spec,
            db,
            force,
            dry_run,
            jobs,
            threads,
            only,
            no_vectorize,
            autograd,
            overrides,
        } => {
            let spec = sweep::load_spec(&spec, &overrides)?;
            if dry_run {
                out!("{}", sweep::status_report(&spec, &db, force)?);
                return Ok(());
            }
            let opts = SweepOptions {
                db,
                force,
                jobs: jobs.map(usize::from),
                threads: threads.map(usize::from),
                only,
                packing: if autograd {
                    Packing::Autograd
                } else if no_vectorize {
                    Packing::Alone
                } else {
                    Packing::Groups
                },
            };
            let s = sweep::run(&spec, &opts)?;
            errln!(
                "{}: {} cells: {} skipped (done), {} finished, {} diverged, {} failed in {:.1} s ({} × {})",
                spec.name,
                s.total,
                s.skipped,
                s.finished,
                s.diverged,
                s.failed.len(),
                s.wall.as_secs_f64(),
                if s.jobs == 1 { "1 worker".to_string() } else { format!("{} workers", s.jobs) },
                if s.threads == 1 { "1 thread".to_string() } else { format!("{} threads", s.threads) },
            );
            for (index, label, error) in &s.failed {
                errln!("  failed: cell {index} {label}: {error}");
            }
            if s.claimed_elsewhere > 0 {
                errln!(
                    "  {} cells were being run by another sweep (or by a run on another host) and were not run here; \
                     `rmlab status` lists them, `--force` takes over runs whose process cannot be checked",
                    s.claimed_elsewhere
                );
            }
            if !s.failed.is_empty() {
                return Err(Error::CellsFailed { failed: s.failed.len(), total: s.total });
            }
            Ok(())
        }
        Command::Status { spec, db } => {
            let spec = sweep::load_spec(&spec, &[])?;
            out!("{}", sweep::status_report(&spec, &db, false)?);
            Ok(())
        }
        Command::Check { specs } => {
            for path in specs {
                let spec = sweep::load_spec(&path, &[])?;
                outln!("{}: ok, {} cells", path.display(), spec.cells()?.len());
            }
            Ok(())
        }
        Command::Doctor => {
            out!("{}", rmlab::runtime::doctor_report()?);
            Ok(())
        }
        Command::Query { what, opts } => run_query(what, opts),
        Command::Plot { specs, db, out_dir } => {
            let specs: Vec<Spec> = specs.iter().map(|p| Spec::load(p)).collect::<Result<_>>()?;
            for w in plot::render_specs(&db, &specs, &out_dir)? {
                errln!("{}  (+ .png, .json)", w.svg.display());
            }
            Ok(())
        }
        Command::Slurm {
            spec,
            db,
            partition,
            time,
            cpus_per_task,
            gpus,
            array_parallelism,
            cells_per_task,
            out,
            submit,
        } => {
            let spec = sweep::load_spec(&spec, &[])?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("results/slurm/{}.sbatch", spec.name)));
            let opts = sweep::slurm::SlurmOptions {
                db,
                partition,
                time,
                cpus_per_task: cpus_per_task.into(),
                gpus: gpus.map(usize::from),
                array_parallelism: array_parallelism.map(usize::from),
                cells_per_task: cells_per_task.into(),
                out,
            };
            let plan = sweep::slurm::write_scripts(&spec, &opts)?;
            if plan.tasks.is_empty() {
                errln!(
                    "{}: all {} cells are done in {}; nothing to submit",
                    spec.name,
                    plan.done,
                    opts.db.display()
                );
                return Ok(());
            }
            let cells: usize = plan.tasks.iter().map(Vec::len).sum();
            errln!(
                "{}: {cells} cells in {} array tasks ({} done, left out)\n  array: {}\n  merge: {}",
                spec.name,
                plan.tasks.len(),
                plan.done,
                plan.array_script.display(),
                plan.merge_script.display()
            );
            if submit {
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
        Command::Merge { sources, into } => {
            let report = rmlab::store::merge(&sources, &into)?;
            for (src, copied, present, running) in &report.sources {
                errln!(
                    "{}: {copied} runs copied, {present} already in {} (same run or cell done), {running} still running (skipped)",
                    src.display(),
                    into.display()
                );
            }
            Ok(())
        }
        Command::Migrate { db } => {
            if !db.exists() {
                return Err(Error::Input(format!("{}: no such store", db.display())));
            }
            let store = Store::open(&db)?;
            errln!("{}: schema version {}", db.display(), store.schema_version()?);
            Ok(())
        }
        Command::Data { files, prompt_split, strict, format } => {
            let rule = match prompt_split {
                PromptSplitArg::CommonPrefix => rmlab::experiment::config::PromptSplit::CommonPrefix,
                PromptSplitArg::LastTurn => rmlab::experiment::config::PromptSplit::LastTurn,
            };
            let reports = files
                .iter()
                .map(|f| rmlab::data::read_file(f, !strict, rule).map(|d| d.report))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| match e {
                    // The reader's hint names the spec key; here the flag decides.
                    Error::Input(m) => Error::Input(m.replace(
                        "set data.skip_bad_rows = true to skip bad",
                        "without --strict, rmlab data skips and counts bad",
                    )),
                    other => other,
                })?;
            match format {
                DataFormat::Table => out!("{}", data_table::table(&reports)),
                DataFormat::Json => {
                    outln!("{}", serde_json::to_string_pretty(&reports).expect("reports serialize"))
                }
            }
            Ok(())
        }
        Command::Score { run, file, db, out, normalize } => {
            let mut s = rmlab::score::score(&db, &run, &file, normalize)?;
            outln!(
                "{}: {} pairs scored by run {}: accuracy {:.4}; rewards{} over {} responses: mean {:.4}, std {:.4}, max |r| {:.4}",
                file.display(),
                s.pairs.height(),
                s.run_uid,
                s.accuracy,
                if s.normalised {
                    format!(" (normalised by mean {:.4}, std {:.4})", s.normalisation.0, s.normalisation.1)
                } else {
                    String::new()
                },
                s.responses,
                s.reward_mean,
                s.reward_std,
                s.reward_max_abs
            );
            if let Some(out) = out {
                let format = match out.extension().and_then(|e| e.to_str()) {
                    Some("parquet") => output::Format::Parquet,
                    Some("csv") => output::Format::Csv,
                    _ => {
                        return Err(Error::Input(format!(
                            "--out {}: expected a .parquet or .csv file",
                            out.display()
                        )));
                    }
                };
                output::write(&mut s.pairs, format, Some(&out))?;
                errln!("{}  ({} pairs)", out.display(), s.pairs.height());
            }
            Ok(())
        }
        Command::Schema => {
            outln!("{}", serde_json::to_string_pretty(&rmlab::experiment::json_schema()).expect("JSON"));
            Ok(())
        }
    }
}

fn run_query(what: QueryKind, o: QueryOpts) -> Result<()> {
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
        for_reading: o.format == Format::Table,
    };
    let (mut df, notes) = query::answer(&o.db, &req)?;
    for note in notes {
        errln!("note: {note}");
    }
    let format = match o.format {
        Format::Table => output::Format::Table { width: 100 },
        Format::Csv => output::Format::Csv,
        Format::Json => output::Format::Json,
        Format::Parquet => output::Format::Parquet,
    };
    output::write(&mut df, format, o.out.as_deref())
}
