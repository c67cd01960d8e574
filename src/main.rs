//! The `rmlab` binary: parse the command line, call the library, map errors to exit codes
//! (0 success, 1 a failure while running, 2 bad input).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rmlab::error::{Error, Result};
use rmlab::runtime::TorchRuntime;
use rmlab::spec::Spec;
use rmlab::store::Store;
use rmlab::sweep::{self, CellState, SweepOptions};

use cli::{Cli, Command, Format, QueryKind, QueryOpts, StatArg};
use rmlab::output;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmlab: error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Sweep { spec, db, force, dry_run, jobs, threads, only, no_vectorize, overrides } => {
            let spec = Spec::load(&spec)?.with_overrides(&overrides)?;
            if dry_run {
                return print_plan(&spec, &db, force);
            }
            let opts = SweepOptions {
                db,
                force,
                jobs: jobs.map(usize::from),
                threads: threads.map(usize::from),
                only,
                vectorize: !no_vectorize,
            };
            let s = sweep::run(&spec, &opts)?;
            eprintln!(
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
                eprintln!("  failed: cell {index} {label}: {error}");
            }
            if s.claimed_elsewhere > 0 {
                eprintln!(
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
            let spec = Spec::load(&spec)?;
            print_plan(&spec, &db, false)
        }
        Command::Check { specs } => {
            for path in specs {
                let spec = Spec::load(&path)?;
                println!("{}: ok, {} cells", path.display(), spec.cells()?.len());
            }
            Ok(())
        }
        Command::Doctor => doctor(),
        Command::Query { what, opts } => query(what, opts),
        Command::Plot { specs, db, out_dir } => {
            if !db.exists() {
                return Err(Error::Input(format!("{}: no such store (run a sweep first)", db.display())));
            }
            let specs: Vec<Spec> = specs.iter().map(|p| Spec::load(p)).collect::<Result<_>>()?;
            let store = Store::open(&db)?;
            for spec in &specs {
                let figures =
                    if spec.figures.is_empty() { rmlab::plot::catalogue() } else { spec.figures.clone() };
                let dir = out_dir.join(&spec.name);
                let written = rmlab::plot::render_all(store.connection(), &spec.name, &figures, &dir)?;
                for w in &written {
                    eprintln!("{}  (+ .png, .json)", w.svg.display());
                }
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
            let spec = Spec::load(&spec)?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("results/slurm/{}.sbatch", spec.name)));
            let opts = rmlab::slurm::SlurmOptions {
                db,
                partition,
                time,
                cpus_per_task: cpus_per_task.into(),
                gpus: gpus.map(usize::from),
                array_parallelism: array_parallelism.map(usize::from),
                cells_per_task: cells_per_task.into(),
                out,
            };
            let plan = rmlab::slurm::write_scripts(&spec, &opts)?;
            if plan.tasks.is_empty() {
                eprintln!(
                    "{}: all {} cells are done in {}; nothing to submit",
                    spec.name,
                    plan.done,
                    opts.db.display()
                );
                return Ok(());
            }
            let cells: usize = plan.tasks.iter().map(Vec::len).sum();
            eprintln!(
                "{}: {cells} cells in {} array tasks ({} done, left out)\n  array: {}\n  merge: {}",
                spec.name,
                plan.tasks.len(),
                plan.done,
                plan.array_script.display(),
                plan.merge_script.display()
            );
            if submit {
                let (array, merge) = rmlab::slurm::submit(&plan)?;
                println!("array {array}");
                println!("merge {merge}");
            } else {
                eprintln!(
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
                eprintln!(
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
            eprintln!("{}: schema version {}", db.display(), store.schema_version()?);
            Ok(())
        }
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&rmlab::spec::json_schema()).expect("JSON"));
            Ok(())
        }
    }
}

/// Prints each cell with its state; with `force`, every cell is marked to run.
fn print_plan(spec: &Spec, db: &std::path::Path, force: bool) -> Result<()> {
    let cells = if db.exists() {
        sweep::plan(spec, &Store::open(db)?)?
    } else {
        spec.cells()?.into_iter().map(|c| (c, CellState::Missing)).collect()
    };
    let mut counts = std::collections::BTreeMap::new();
    println!("{:>5}  {:<8}  {:<16}  swept values", "cell", "state", "config hash");
    for (cell, state) in &cells {
        let runs = force || *state != CellState::Done;
        println!(
            "{:>5}  {:<8}  {:<16}  {}{}",
            cell.index,
            state.as_str(),
            cell.hash,
            cell.label(),
            if runs { "" } else { "  (skip)" }
        );
        *counts.entry(state.as_str()).or_insert(0) += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("{}: {} cells ({}) in {}", spec.name, cells.len(), counts.join(", "), db.display());
    Ok(())
}

fn doctor() -> Result<()> {
    // A tensor op proves LibTorch is loaded and works, not only linked.
    let sum = std::panic::catch_unwind(|| {
        tch::Tensor::from_slice(&[1.0f32, 2.0]).sum(tch::Kind::Float).double_value(&[])
    });
    let rt = TorchRuntime::detect();
    println!("rmlab          {}", env!("CARGO_PKG_VERSION"));
    println!("torch          {}", rt.version.as_deref().unwrap_or("unknown"));
    println!(
        "library path   {}",
        rt.lib_dir.as_ref().map_or("not found in /proc/self/maps".into(), |d| d.display().to_string())
    );
    println!("cuda           {}", if rt.cuda_available { "available" } else { "not available" });
    println!("cuda devices   {}", rt.cuda_devices);
    println!("cudnn          {}", if rt.cudnn_available { "available" } else { "not available" });
    println!("threads        {} intra-op (LibTorch default; sweeps set --threads)", rt.intra_op_threads);
    println!("cores          {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
    match sum {
        Ok(3.0) => {
            println!("tensor check   ok");
            Ok(())
        }
        Ok(v) => Err(Error::Run(format!("tensor check: 1 + 2 gave {v}"))),
        Err(_) => Err(Error::Run("tensor check: LibTorch panicked on a CPU sum".into())),
    }
}

fn query(what: QueryKind, o: QueryOpts) -> Result<()> {
    use rmlab::query::{self, Filter, Selection, Stat};
    if !o.db.exists() {
        return Err(Error::Input(format!("{}: no such store (run a sweep first)", o.db.display())));
    }
    let store = Store::open(&o.db)?;
    let sel = Selection {
        experiment: o.experiment.clone(),
        filters: o.filters.iter().map(|f| Filter::parse(f)).collect::<Result<_>>()?,
        // Runs lists every run; curves and summaries count each cell once.
        latest_only: what != QueryKind::Runs && !o.all_runs,
    };
    if let Some(e) = &o.experiment {
        let known: bool = store
            .connection()
            .query_row("SELECT count(*) > 0 FROM experiments WHERE name = ?1", [e], |r| r.get(0))
            .map_err(|err| Error::sqlite(&o.db, err))?;
        if !known {
            return Err(Error::Input(format!("--experiment {e}: no such experiment in {}", o.db.display())));
        }
    }
    if let Some(s) = &o.split
        && !["train", "val", "test"].contains(&s.as_str())
    {
        return Err(Error::Input(format!("--split {s}: expected train, val or test")));
    }
    let conn = store.connection();
    let mut df = match what {
        QueryKind::Runs => query::runs(conn, &sel, !o.all_params)?,
        QueryKind::Curves => query::curves(conn, &sel, &o.metrics, o.split.as_deref())?,
        QueryKind::Summary => {
            let stat = match o.stat {
                StatArg::Final => Stat::Final,
                StatArg::Best => Stat::Best,
            };
            query::summary(conn, &sel, &o.group_by, &o.metrics, o.split.as_deref(), stat)?
        }
    };
    if o.format == Format::Table
        && o.experiment.is_some()
        && df.get_column_names().iter().any(|c| c.as_str() == "experiment")
    {
        // One experiment was asked for: the column says nothing.
        df = df.drop("experiment").map_err(|e| Error::Run(format!("polars: {e}")))?;
    }
    if what == QueryKind::Runs && o.format == Format::Table && !o.all_params {
        // The id columns a reader needs; the rest (hash, device, threads) are in csv/json output.
        let keep: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !["config_hash", "device", "threads"].contains(&c.as_str()))
            .collect();
        df = df.select(keep).map_err(|e| Error::Run(format!("polars: {e}")))?;
    }
    let format = match o.format {
        Format::Table => output::Format::Table { width: 100 },
        Format::Csv => output::Format::Csv,
        Format::Json => output::Format::Json,
        Format::Parquet => output::Format::Parquet,
    };
    output::write(&mut df, format, o.out.as_deref())
}
