//! The `rmlab` binary: parse the command line, call the library, map errors to exit codes
//! (0 success, 1 a failure while running, 2 bad input).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use rmlab::error::{Error, Result};
use rmlab::runtime::TorchRuntime;
use rmlab::spec::Spec;
use rmlab::store::Store;
use rmlab::sweep::{self, CellState, SweepOptions};

use cli::{Cli, Command};

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
        Command::Sweep {
            spec,
            db,
            force,
            dry_run,
            jobs,
            threads,
        } => {
            let spec = Spec::load(&spec)?;
            if dry_run {
                return print_plan(&spec, &db, force);
            }
            let opts = SweepOptions {
                db,
                force,
                jobs: jobs.map(usize::from),
                threads: threads.map(usize::from),
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
                if s.jobs == 1 {
                    "1 worker".to_string()
                } else {
                    format!("{} workers", s.jobs)
                },
                if s.threads == 1 {
                    "1 thread".to_string()
                } else {
                    format!("{} threads", s.threads)
                },
            );
            for (index, label, error) in &s.failed {
                eprintln!("  failed: cell {index} {label}: {error}");
            }
            if !s.failed.is_empty() {
                return Err(Error::CellsFailed {
                    failed: s.failed.len(),
                    total: s.total,
                });
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
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&rmlab::spec::json_schema()).expect("JSON")
            );
            Ok(())
        }
    }
}

/// Prints each cell with its state; with `force`, every cell is marked to run.
fn print_plan(spec: &Spec, db: &std::path::Path, force: bool) -> Result<()> {
    let cells = if db.exists() {
        sweep::plan(spec, &Store::open(db)?)?
    } else {
        spec.cells()?
            .into_iter()
            .map(|c| (c, CellState::Missing))
            .collect()
    };
    let mut counts = std::collections::BTreeMap::new();
    println!(
        "{:>5}  {:<8}  {:<16}  swept values",
        "cell", "state", "config hash"
    );
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
    println!(
        "{}: {} cells ({}) in {}",
        spec.name,
        cells.len(),
        counts.join(", "),
        db.display()
    );
    Ok(())
}

fn doctor() -> Result<()> {
    // A tensor op proves LibTorch is loaded and works, not only linked.
    let sum = std::panic::catch_unwind(|| {
        tch::Tensor::from_slice(&[1.0f32, 2.0])
            .sum(tch::Kind::Float)
            .double_value(&[])
    });
    let rt = TorchRuntime::detect();
    println!("rmlab          {}", env!("CARGO_PKG_VERSION"));
    println!(
        "torch          {}",
        rt.version.as_deref().unwrap_or("unknown")
    );
    println!(
        "library path   {}",
        rt.lib_dir
            .as_ref()
            .map_or("not found in /proc/self/maps".into(), |d| d
                .display()
                .to_string())
    );
    println!(
        "cuda           {}",
        if rt.cuda_available {
            "available"
        } else {
            "not available"
        }
    );
    println!("cuda devices   {}", rt.cuda_devices);
    println!(
        "cudnn          {}",
        if rt.cudnn_available {
            "available"
        } else {
            "not available"
        }
    );
    println!(
        "threads        {} intra-op (LibTorch default; sweeps set --threads)",
        rt.intra_op_threads
    );
    println!(
        "cores          {}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    match sum {
        Ok(3.0) => {
            println!("tensor check   ok");
            Ok(())
        }
        Ok(v) => Err(Error::Run(format!("tensor check: 1 + 2 gave {v}"))),
        Err(_) => Err(Error::Run(
            "tensor check: LibTorch panicked on a CPU sum".into(),
        )),
    }
}
