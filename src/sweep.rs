//! Planning and executing the cells of a spec against a store.
//!
//! Cells already done under the current format version are skipped (unless forced); every
//! other cell runs, one after another in this process. A failing cell is reported when it
//! fails, recorded as `failed`, and the sweep goes on.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::FORMAT_VERSION;
use crate::data::{Dataset, synthetic};
use crate::error::{Error, Result};
use crate::provenance::Provenance;
use crate::runtime::{TorchRuntime, device_name, resolve_device, set_threads};
use crate::spec::{Cell, Spec};
use crate::store::{CellRecord, ExperimentRecord, NewRun, Store};
use crate::train::{Outcome, train};

/// What the store says about a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellState {
    /// Finished (or diverged) under the current format version.
    Done,
    /// A run is recorded as running: in progress elsewhere, or killed.
    Running,
    /// The last attempt failed.
    Failed,
    /// No run recorded.
    Missing,
    /// Done only under an older format version.
    Stale,
}

impl CellState {
    pub fn as_str(self) -> &'static str {
        match self {
            CellState::Done => "done",
            CellState::Running => "running",
            CellState::Failed => "failed",
            CellState::Missing => "missing",
            CellState::Stale => "stale",
        }
    }

    fn of(record: Option<&CellRecord>) -> CellState {
        match record {
            None => CellState::Missing,
            Some(r) if r.is_done() => CellState::Done,
            Some(r) if r.format_version != FORMAT_VERSION as i64 => CellState::Stale,
            Some(r) if r.status == "running" => CellState::Running,
            Some(_) => CellState::Failed,
        }
    }
}

/// Every cell of a spec with its state in the store.
pub fn plan(spec: &Spec, store: &Store) -> Result<Vec<(Cell, CellState)>> {
    let records: HashMap<String, CellRecord> = store.cell_statuses(&spec.name)?;
    Ok(spec
        .cells()?
        .into_iter()
        .map(|c| {
            let state = CellState::of(records.get(&c.hash));
            (c, state)
        })
        .collect())
}

/// How to run a sweep.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub db: PathBuf,
    /// Rerun cells that are already done.
    pub force: bool,
    /// LibTorch intra-op threads; default: all cores.
    pub threads: Option<usize>,
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct SweepSummary {
    pub total: usize,
    pub skipped: usize,
    pub finished: usize,
    pub diverged: usize,
    /// `(cell index, label, error)` of each failed cell.
    pub failed: Vec<(usize, String, String)>,
    pub wall: Duration,
}

/// Runs every cell of `spec` that is not done yet, writing to the store at `opts.db`.
pub fn run(spec: &Spec, opts: &SweepOptions) -> Result<SweepSummary> {
    let mut store = Store::open(&opts.db)?;
    let cells = plan(spec, &store)?;
    let todo: Vec<Cell> = cells
        .iter()
        .filter(|(_, s)| opts.force || *s != CellState::Done)
        .map(|(c, _)| c.clone())
        .collect();
    let mut summary = SweepSummary {
        total: cells.len(),
        skipped: cells.len() - todo.len(),
        ..Default::default()
    };
    store.upsert_experiment(&ExperimentRecord {
        name: &spec.name,
        description: &spec.description,
        spec_path: &spec.path.display().to_string(),
        spec_text: &spec.text,
    })?;
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    set_threads(threads);
    let runtime = TorchRuntime::detect();
    let provenance = Provenance::collect(&spec.path, runtime.version.clone());

    let progress = Progress::new(todo.len(), &spec.name);
    progress.say(&format!(
        "{}: {} cells, {} done, {} to run ({} thread{}) → {}",
        spec.name,
        cells.len(),
        summary.skipped,
        todo.len(),
        threads,
        if threads == 1 { "" } else { "s" },
        opts.db.display()
    ));
    let started = Instant::now();
    for cell in &todo {
        progress.start_cell(cell);
        let result = run_cell(cell, spec, &mut store, &provenance, threads, &mut |step| {
            progress.step(step)
        });
        match result {
            Ok(Outcome::Finished) => {
                summary.finished += 1;
                progress.say(&format!(
                    "cell {:>3} finished   {}",
                    cell.index,
                    cell.label()
                ));
            }
            Ok(Outcome::Diverged { step }) => {
                summary.diverged += 1;
                progress.say(&format!(
                    "cell {:>3} DIVERGED at step {step}   {}",
                    cell.index,
                    cell.label()
                ));
            }
            Err(e) => {
                progress.say(&format!(
                    "cell {:>3} FAILED   {}: {e}",
                    cell.index,
                    cell.label()
                ));
                summary
                    .failed
                    .push((cell.index, cell.label(), e.to_string()));
            }
        }
        progress.end_cell();
    }
    progress.finish();
    summary.wall = started.elapsed();
    Ok(summary)
}

/// Trains one cell and records it; returns how it ended. Errors while training (including
/// LibTorch panics) are recorded as a failed run and returned.
fn run_cell(
    cell: &Cell,
    spec: &Spec,
    store: &mut Store,
    provenance: &Provenance,
    threads: usize,
    on_step: &mut dyn FnMut(usize),
) -> Result<Outcome> {
    let cfg = &cell.config;
    let device = resolve_device(cfg.model.device);
    let swept = cell.swept_keys();
    let mut writer = store.begin_run(&NewRun {
        experiment: &spec.name,
        config: cfg,
        swept: &swept,
        device: device
            .as_ref()
            .map_or_else(|_| "unavailable".into(), |d| device_name(*d)),
        threads,
        provenance,
    })?;
    let started = Instant::now();
    let outcome = device.and_then(|device| {
        catch_unwind(AssertUnwindSafe(|| {
            let prefs = synthetic::generate(&cfg.data, cfg.seed);
            let data = Dataset::new(&prefs, device);
            train(cfg, &data, device, &mut writer, on_step)
        }))
        .unwrap_or_else(|panic| {
            Err(Error::Run(format!(
                "libtorch panicked: {}",
                panic_message(&panic)
            )))
        })
    });
    writer.finish(&outcome, started.elapsed().as_secs_f64())?;
    outcome
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Progress bars on a terminal; plain lines otherwise (CI logs).
struct Progress {
    bars: Option<(MultiProgress, ProgressBar, ProgressBar)>,
}

impl Progress {
    fn new(cells: usize, name: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(cells as u64));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} cells, {elapsed} elapsed, ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        total.set_prefix(name.to_string());
        let cell = multi.add(ProgressBar::new(0));
        cell.set_style(
            ProgressStyle::with_template("  {msg} [{bar:30}] step {pos}/{len}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Progress {
            bars: Some((multi, total, cell)),
        }
    }

    fn say(&self, line: &str) {
        match &self.bars {
            Some((multi, _, _)) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn start_cell(&self, cell: &Cell) {
        if let Some((_, _, bar)) = &self.bars {
            bar.set_length(cell.config.train.steps as u64);
            bar.set_position(0);
            bar.set_message(format!("cell {} {}", cell.index, cell.label()));
        }
    }

    fn step(&self, step: usize) {
        if let Some((_, _, bar)) = &self.bars {
            if step % 16 == 0 {
                bar.set_position(step as u64);
            }
        }
    }

    fn end_cell(&self) {
        if let Some((_, total, _)) = &self.bars {
            total.inc(1);
        }
    }

    fn finish(&self) {
        if let Some((multi, total, cell)) = &self.bars {
            cell.finish_and_clear();
            total.finish_and_clear();
            let _ = multi.clear();
        }
    }
}
