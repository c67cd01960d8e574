//! Stage 9, sweeps: planning and executing the cells of a spec against a store.
//!
//! Cells already done under the current format version are skipped (unless forced); every
//! other cell runs on worker threads of this process, compatible cells stacked into batched
//! programs ([`Packing`] says how). A failing cell is reported when it fails, recorded as `failed`, and the sweep
//! goes on. [`slurm`] runs the same cells as a SLURM job array.

mod progress;
pub mod slurm;

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::analysis::tensorboard::TrainingEvents;
use crate::data;
use crate::error::{Error, Result};
use crate::eval::{MetricsSink, Outcome, Tee};
use crate::experiment::config::{FORMAT_VERSION, RunConfig};
use crate::experiment::{Cell, Spec};
use crate::provenance::Provenance;
use crate::runtime::{TorchRuntime, device_name, resolve_device, set_threads};
use crate::store::{CellRecord, ExperimentRecord, NewRun, Store};
use crate::train::{self, Engine, train};
use progress::{LIST_FINISHED_UP_TO, Progress};
use sha2::{Digest, Sha256};

/// Reads the spec at `path`, applies `--set` overrides and checks every preference file its
/// cells read (each bad row is bad input, named by file and line, before anything runs).
pub fn load_spec(path: &Path, overrides: &[String]) -> Result<Spec> {
    let spec = Spec::load(path)?.with_overrides(overrides)?;
    if !spec.reads_inputs() {
        return Ok(spec);
    }
    // Only the cells that read a file or an encoder not read by an earlier cell are kept for
    // the checks, so a large grid is never held whole.
    let mut inputs: std::collections::HashSet<String> = Default::default();
    let mut cells = Vec::new();
    spec.visit_cells(|cell| {
        if !cell.reads_inputs() {
            return Ok(());
        }
        let (d, m) = (&cell.config.data, &cell.config.model);
        // Everything either check tells cells apart by (how a file is read, which encoder).
        let mut data = d.clone();
        (data.val_frac, data.test_frac, data.resolved_path) = (0.0, 0.0, None);
        let key = serde_json::json!([data, m.encoder_sha256, m.max_length, m.finetune().as_string()]);
        if inputs.insert(key.to_string()) {
            cells.push(cell);
        }
        Ok(())
    })?;
    data::check_files(&cells)?;
    crate::model::encoder::check_encoders(&cells).map_err(|e| spec.error_at_key(e.key, &e.message))?;
    Ok(spec)
}

/// What the store says about a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellState {
    /// Finished (or diverged) under the current format version.
    Done,
    /// A run is in progress in a live rmlab process.
    Running,
    /// A run was left `running` by a process that no longer exists (killed, crashed).
    Interrupted,
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
            CellState::Interrupted => "interrupted",
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
            Some(r) if r.status == "interrupted" => CellState::Interrupted,
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
    /// Cells trained at once (worker threads); default: the number of cores.
    pub jobs: Option<usize>,
    /// LibTorch intra-op threads (process-wide, recorded with each run); default 1.
    pub threads: Option<usize>,
    /// Only the cells with these config hashes (all when empty).
    pub only: Vec<String>,
    /// How cells are grouped and which engine trains them.
    pub packing: Packing,
}

/// How a sweep's cells are trained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Packing {
    /// Compatible cells (same config but seed and λ) stacked into batched groups; a cell
    /// without partners trained alone.
    #[default]
    Groups,
    /// Every cell alone, by [`Engine::for_one_cell`]'s engine (`--no-vectorize`).
    Alone,
    /// Every cell alone, by the autograd reference trainer (`--autograd`).
    Autograd,
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct SweepSummary {
    /// The experiment swept.
    pub experiment: String,
    pub total: usize,
    /// Cells skipped because they were done already.
    pub skipped: usize,
    /// Cells a live sweep elsewhere (or a run whose process cannot be checked) had claimed.
    pub claimed_elsewhere: usize,
    pub finished: usize,
    pub diverged: usize,
    /// `(cell index, label, error)` of each failed cell.
    pub failed: Vec<(usize, String, String)>,
    pub jobs: usize,
    pub threads: usize,
    pub wall: Duration,
}

/// One line of counts, then a line for each failed cell and, when other sweeps held cells, what
/// to do about them.
impl std::fmt::Display for SweepSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |n: usize, what: &str| if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") };
        write!(
            f,
            "{}: {} cells: {} skipped (done), {} finished, {} diverged, {} failed in {:.1} s ({} × {})",
            self.experiment,
            self.total,
            self.skipped,
            self.finished,
            self.diverged,
            self.failed.len(),
            self.wall.as_secs_f64(),
            count(self.jobs, "worker"),
            count(self.threads, "thread"),
        )?;
        for (index, label, error) in &self.failed {
            write!(f, "\n  failed: cell {index} {label}: {error}")?;
        }
        if self.claimed_elsewhere > 0 {
            write!(
                f,
                "\n  {} cells were being run by another sweep (or by a run on another host) and were not run here; \
                 `rmlab status` lists them, `--force` takes over runs whose process cannot be checked",
                self.claimed_elsewhere
            )?;
        }
        Ok(())
    }
}

/// Number of cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs every cell of `spec` that is not done yet, `jobs` at a time, writing to `opts.db`.
///
/// Workers are threads of this process, each with its own store connection; LibTorch's
/// intra-op thread count is process-wide (default 1, so `--jobs` never changes a number). A
/// run's numbers depend on its config, its seed, the thread count and the machine (LibTorch
/// build, CPU kind), never on which worker trains it.
pub fn run(spec: &Spec, opts: &SweepOptions) -> Result<SweepSummary> {
    let cells = selected_cells(spec, &opts.only)?;
    let total = cells.len();
    let todo = prepare(spec, opts, cells)?;
    if let Some(dir) = spec.tensorboard_dir().filter(|_| !todo.is_empty()) {
        // Made now, so that a path that cannot be a directory is the spec's error, not every
        // cell's failure.
        std::fs::create_dir_all(&dir).map_err(|e| {
            spec.error_at_key("log.tensorboard", &format!("cannot make the directory {}: {e}", dir.display()))
        })?;
    }
    let jobs = opts.jobs.unwrap_or_else(cores).clamp(1, todo.len().max(1));
    // One intra-op thread unless asked for more: a cell's numbers may depend on the thread
    // count (a reduction split across threads rounds differently), so the default must not
    // change with --jobs. Parallelism comes from the workers.
    let threads = opts.threads.unwrap_or(1);
    set_threads(threads);
    let runtime = TorchRuntime::detect();
    let provenance = Provenance::collect(&spec.path, runtime.version.clone());

    let progress = Progress::new(todo.len(), jobs, &spec.name);
    progress.say(&format!(
        "{}: {} cells, {} done, {} to run on {jobs} worker{} × {threads} thread{} → {}",
        spec.name,
        total,
        total - todo.len(),
        todo.len(),
        plural(jobs),
        plural(threads),
        opts.db.display()
    ));
    let summary = Mutex::new(SweepSummary {
        experiment: spec.name.clone(),
        total,
        skipped: total - todo.len(),
        jobs,
        threads,
        ..Default::default()
    });
    let queue = Mutex::new(groups(&todo, jobs, opts.packing).into_iter().collect::<VecDeque<Vec<&Cell>>>());
    let started = Instant::now();
    let worker = Worker {
        spec,
        opts,
        queue: &queue,
        summary: &summary,
        progress: &progress,
        provenance: &provenance,
        threads,
        list_finished: todo.len() <= LIST_FINISHED_UP_TO,
    };
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..jobs).map(|w| scope.spawn(move || worker.work(w))).collect();
        // A store error stops that worker; the others finish their cells, then it is returned.
        let mut first_err = None;
        for handle in workers {
            if let Err(e) = handle.join().expect("worker threads catch LibTorch panics") {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    })?;
    progress.finish();
    let mut summary = summary.into_inner().expect("summary lock");
    summary.wall = started.elapsed();
    summary.failed.sort();
    Ok(summary)
}

/// The spec's cells, or those of them named by `--only` (each must be one of them).
fn selected_cells(spec: &Spec, only: &[String]) -> Result<Vec<Cell>> {
    let mut cells = spec.cells()?;
    if !only.is_empty() {
        if let Some(h) = only.iter().find(|h| !cells.iter().any(|c| &c.hash == *h)) {
            return Err(Error::flag(
                "--only",
                h,
                format!(
                    "no cell of {} has this config hash (was the spec changed since the hashes were listed?)",
                    spec.path.display()
                ),
            ));
        }
        cells.retain(|c| only.contains(&c.hash));
    }
    Ok(cells)
}

/// The cells to run (not done, or all with `force`), after what they share is made once: a
/// frozen encoder's embeddings (cached beside the store, computed with all cores and a
/// progress bar before any cell runs) and the experiment's record in the store.
fn prepare(spec: &Spec, opts: &SweepOptions, cells: Vec<Cell>) -> Result<Vec<Cell>> {
    // Once per sweep: a damaged store is refused before a run is added to it, and runs that
    // earlier sweeps left `running` when they were killed are recorded as `interrupted`.
    let mut store = Store::open_checked(&opts.db)?;
    store.mark_interrupted()?;
    let states = store.cell_statuses(&spec.name)?;
    let mut todo: Vec<Cell> = cells
        .into_iter()
        .filter(|c| opts.force || CellState::of(states.get(&c.hash)) != CellState::Done)
        .collect();
    let cache = opts.db.parent().unwrap_or(Path::new(".")).join("cache/embeddings");
    todo.iter_mut().for_each(|c| c.config.model.embedding_cache = Some(cache.clone()));
    set_threads(cores());
    train::inputs::prepare(&todo.iter().map(|c| &c.config).collect::<Vec<_>>(), &mut progress::embedding())?;
    store.upsert_experiment(&ExperimentRecord {
        name: &spec.name,
        description: &spec.description,
        spec_path: &spec.path.display().to_string(),
        spec_text: &spec.stored_text(),
    })?;
    Ok(todo)
}

/// What every worker thread of a sweep shares.
#[derive(Clone, Copy)]
struct Worker<'a> {
    spec: &'a Spec,
    opts: &'a SweepOptions,
    queue: &'a Mutex<VecDeque<Vec<&'a Cell>>>,
    summary: &'a Mutex<SweepSummary>,
    progress: &'a Progress,
    provenance: &'a Provenance,
    threads: usize,
    /// Say each finished cell (small sweeps); larger ones say only failures and divergences.
    list_finished: bool,
}

impl Worker<'_> {
    /// Takes groups of cells off the queue until it is empty, each trained alone by the
    /// autograd reference or as a batched group, with its own store connection.
    fn work(self, w: usize) -> Result<()> {
        let (opts, progress) = (self.opts, self.progress);
        let mut store = Store::open(&opts.db)?;
        loop {
            let Some(group) = self.queue.lock().expect("queue lock").pop_front() else {
                return Ok(());
            };
            progress.start_cell(w, group[0], group.len());
            let autograd = group.len() == 1
                && (opts.packing == Packing::Autograd
                    || Engine::for_one_cell(&group[0].config) == Engine::Autograd);
            let on_step: &mut dyn FnMut(usize, &train::StepLoss) = &mut |step, _| progress.step(w, step);
            let results: Vec<CellResult> = if autograd {
                let cell = group[0];
                let r =
                    run_cell(cell, self.spec, &mut store, self.provenance, self.threads, opts.force, on_step);
                vec![(cell, r)]
            } else {
                run_group(&group, self.spec, &opts.db, self.provenance, self.threads, opts.force, on_step)?
            };
            for (cell, result) in results {
                self.record(cell, result)?;
                progress.end_cell(w);
            }
        }
    }

    /// Counts a cell's result and says it; a store error is returned (it stops this worker),
    /// any other error fails the cell alone.
    fn record(&self, cell: &Cell, result: Result<Option<Outcome>>) -> Result<()> {
        let mut s = self.summary.lock().expect("summary lock");
        let say =
            |what: &str| self.progress.say(&format!("cell {:>3} {what}   {}", cell.index, cell.label()));
        match result {
            Ok(None) => {
                s.claimed_elsewhere += 1;
                say("skipped: another sweep has it");
            }
            Ok(Some(Outcome::Finished)) => {
                s.finished += 1;
                if self.list_finished {
                    say("finished");
                }
            }
            Ok(Some(Outcome::Diverged { step, reason })) => {
                s.diverged += 1;
                say(&format!("DIVERGED at step {step} ({})", reason.as_str()));
            }
            Err(e @ (Error::Sqlite { .. } | Error::Store { .. })) => return Err(e),
            Err(e) => {
                self.progress.say(&format!("cell {:>3} FAILED   {}: {e}", cell.index, cell.label()));
                s.failed.push((cell.index, cell.label(), e.to_string()));
            }
        }
        Ok(())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A cell and how its run ended (`Ok(None)`: another sweep has it).
type CellResult<'c> = (&'c Cell, Result<Option<Outcome>>);

/// The size a bucket of compatible cells is cut to; a group may exceed it by a quarter at
/// most ([`cut_between_seeds`]).
const MAX_GROUP: usize = 32;

/// The work units of a sweep: compatible cells grouped, or one cell each. A bucket of
/// compatible cells is cut into groups of about [`MAX_GROUP`] cells or fewer, so that every
/// worker gets some; the cuts fall between seeds where that keeps the groups near even, so
/// that a seed's cells share their data and batches ([`train::train_group`]).
pub fn groups(todo: &[Cell], jobs: usize, packing: Packing) -> Vec<Vec<&Cell>> {
    if packing != Packing::Groups {
        return todo.iter().map(|c| vec![c]).collect();
    }
    let mut out = Vec::new();
    for b in compatible_buckets(todo) {
        let size = b.len().div_ceil(jobs).clamp(1, MAX_GROUP);
        out.extend(cut_between_seeds(by_seed(b), size));
    }
    out
}

/// A bucket's cells with each seed's cells together, in order of seed (a seed's cells in
/// their own order).
pub(crate) fn by_seed(mut bucket: Vec<&Cell>) -> Vec<&Cell> {
    bucket.sort_by_key(|c| c.config.seed);
    bucket
}

/// `cells` (a seed's cells together) cut into ⌈len / size⌉ groups of about equal size. Each
/// cut moves to the nearest place where the seed changes if one is within `size / 8` cells
/// (a seed's cells then share their data), and stays where it is otherwise (splitting a
/// seed costs one more copy of its data; uneven groups cost wall time when there are about as
/// many groups as workers). A group so has at most `size + 2 · (size / 8)` cells.
fn cut_between_seeds(cells: Vec<&Cell>, size: usize) -> Vec<Vec<&Cell>> {
    let len = cells.len();
    if len == 0 {
        return Vec::new();
    }
    let size = size.max(1);
    let (n, slack) = (len.div_ceil(size), size / 8);
    let seed_changes: Vec<usize> =
        (1..len).filter(|&i| cells[i].config.seed != cells[i - 1].config.seed).collect();
    let mut cuts = vec![0];
    for g in 1..n {
        let ideal = g * len / n;
        let near = seed_changes.iter().copied().filter(|p| p.abs_diff(ideal) <= slack);
        let cut = near.min_by_key(|p| p.abs_diff(ideal)).unwrap_or(ideal);
        if cut > *cuts.last().expect("a first cut") {
            cuts.push(cut);
        }
    }
    cuts.push(len);
    cuts.windows(2).map(|w| cells[w[0]..w[1]].to_vec()).collect()
}

/// The cells in buckets that can each train as one batched program ([`train::compatible`]),
/// in order of first appearance; a cell the batched engine cannot train is a bucket alone.
/// Each cell's group key is computed once, so planning stays linear in the number of cells.
pub(crate) fn compatible_buckets(cells: &[Cell]) -> Vec<Vec<&Cell>> {
    // (regularizer kind of the bucket's cells with λ > 0, if any yet; members)
    let mut buckets: Vec<(Option<String>, Vec<&Cell>)> = Vec::new();
    let mut by_base: HashMap<String, Vec<usize>> = HashMap::new();
    for c in cells {
        let Some(key) = train::group_key(&c.config) else {
            buckets.push((None, vec![c]));
            continue;
        };
        let (base, kind) = key.rsplit_once('|').expect("a group key ends in |kind");
        // A λ = 0 cell (kind None) joins any bucket of its base; others need their kind.
        let kind = (kind != "None").then(|| kind.to_string());
        let candidates = by_base.entry(base.to_string()).or_default();
        let found = candidates.iter().copied().find(|&i| match (&buckets[i].0, &kind) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        });
        match found {
            Some(i) => {
                if buckets[i].0.is_none() {
                    buckets[i].0 = kind;
                }
                buckets[i].1.push(c);
            }
            None => {
                candidates.push(buckets.len());
                buckets.push((kind, vec![c]));
            }
        }
    }
    buckets.into_iter().map(|b| b.1).collect()
}

/// Claims and trains a group of compatible cells as one batched program
/// ([`train::train_group`]), each recorded as its own run; a cell another sweep holds is
/// `Ok(None)`. Every run's `wall_seconds` is its share of the group's time.
fn run_group<'c>(
    cells: &[&'c Cell],
    spec: &Spec,
    db: &std::path::Path,
    provenance: &Provenance,
    threads: usize,
    force: bool,
    on_step: &mut dyn FnMut(usize, &train::StepLoss),
) -> Result<Vec<CellResult<'c>>> {
    let device = resolve_device(cells[0].config.model.device);
    let mut stores: Vec<Store> = cells.iter().map(|_| Store::open(db)).collect::<Result<_>>()?;
    let swept: Vec<Vec<String>> = cells.iter().map(|c| c.swept_keys()).collect();
    let mut writers = Vec::new();
    let mut claimed: Vec<&Cell> = Vec::new();
    let mut results = Vec::new();
    for ((store, cell), swept) in stores.iter_mut().zip(cells).zip(&swept) {
        let run = NewRun {
            experiment: &spec.name,
            config: &cell.config,
            swept,
            device: device.as_ref().map_or_else(|_| "unavailable".into(), |d| device_name(*d)),
            threads,
            provenance,
            engine: Engine::Batched,
        };
        match store.claim_run(&run, force)? {
            Some(w) => {
                writers.push(w);
                claimed.push(cell);
            }
            None => results.push((*cell, Ok(None))),
        }
    }
    if claimed.is_empty() {
        return Ok(results);
    }
    // The group as trained: its members' identities, in order.
    let group = {
        let mut h = Sha256::new();
        for c in &claimed {
            h.update(c.hash.as_bytes());
        }
        let digest: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("{digest}:{}", claimed.len())
    };
    for (w, c) in writers.iter_mut().zip(&claimed) {
        w.set_batch_group(group.clone());
        // What each cell's data held, as a run trained alone records it (train_group reads
        // the data itself; a file that fails here fails there too).
        if let Ok(report) = train::inputs::report(&c.config) {
            if let Some((rows, skipped)) = report.rows {
                w.set_data_rows(rows, skipped);
            }
            if let Some(r) = report.data_report {
                w.set_data_report(r);
            }
        }
    }
    let started = Instant::now();
    let cfgs: Vec<RunConfig> = claimed.iter().map(|c| c.config.clone()).collect();
    let mut boards: Vec<Option<TrainingEvents>> = Vec::new();
    let outcome = device.and_then(|device| {
        catch_unwind(AssertUnwindSafe(|| {
            for c in &claimed {
                boards.push(start_events(spec, c)?);
            }
            let mut tees: Vec<Tee<'_>> = writers
                .iter_mut()
                .zip(boards.iter_mut())
                .map(|(w, b)| Tee { first: w, second: b.as_mut().map(|b| b as &mut dyn MetricsSink) })
                .collect();
            let mut sinks: Vec<&mut dyn MetricsSink> =
                tees.iter_mut().map(|t| t as &mut dyn MetricsSink).collect();
            train::train_group(&cfgs, device, &mut sinks, on_step)
        }))
        .unwrap_or_else(|panic| Err(Error::training(format!("libtorch panicked: {}", panic_message(&panic)))))
    });
    let share = started.elapsed().as_secs_f64() / claimed.len() as f64;
    // Each cell's outcome, its event file (when there is one) closed first.
    let mut boards = boards.into_iter();
    let outcomes: Vec<Result<Outcome>> = match outcome {
        Ok(outs) => outs.into_iter().map(|o| finish_events(boards.next().flatten(), Ok(o))).collect(),
        Err(e) => {
            let msg = e.to_string();
            claimed
                .iter()
                .map(|_| finish_events(boards.next().flatten(), Err(Error::training(msg.clone()))))
                .collect()
        }
    };
    for ((w, cell), o) in writers.into_iter().zip(claimed).zip(outcomes) {
        w.finish(&o, share)?;
        results.push((cell, o.map(Some)));
    }
    Ok(results)
}

/// Trains one cell and records it; returns how it ended, or `None` if the cell was done or
/// claimed by a live sweep meanwhile. Errors while training (LibTorch panics included) are
/// recorded as a failed run and returned.
fn run_cell(
    cell: &Cell,
    spec: &Spec,
    store: &mut Store,
    provenance: &Provenance,
    threads: usize,
    force: bool,
    on_step: &mut dyn FnMut(usize, &train::StepLoss),
) -> Result<Option<Outcome>> {
    let cfg = &cell.config;
    let device = resolve_device(cfg.model.device);
    let swept = cell.swept_keys();
    let run = NewRun {
        experiment: &spec.name,
        config: cfg,
        swept: &swept,
        device: device.as_ref().map_or_else(|_| "unavailable".into(), |d| device_name(*d)),
        threads,
        provenance,
        engine: Engine::Autograd,
    };
    let Some(mut writer) = store.claim_run(&run, force)? else {
        return Ok(None);
    };
    let started = Instant::now();
    let mut board = None;
    let outcome = device.and_then(|device| {
        catch_unwind(AssertUnwindSafe(|| {
            board = start_events(spec, cell)?;
            let (data, report) = train::inputs::load(cfg, device)?;
            if let Some((rows, skipped)) = report.rows {
                writer.set_data_rows(rows, skipped);
            }
            if let Some(r) = report.data_report {
                writer.set_data_report(r);
            }
            let mut sink =
                Tee { first: &mut writer, second: board.as_mut().map(|b| b as &mut dyn MetricsSink) };
            train(cfg, &data, device, &mut sink, on_step)
        }))
        .unwrap_or_else(|panic| Err(Error::training(format!("libtorch panicked: {}", panic_message(&panic)))))
    });
    let outcome = finish_events(board, outcome);
    writer.finish(&outcome, started.elapsed().as_secs_f64())?;
    outcome.map(Some)
}

/// The cell's TensorBoard event file, when its spec asks for one (`[log] tensorboard`).
fn start_events(spec: &Spec, cell: &Cell) -> Result<Option<TrainingEvents>> {
    let Some(root) = spec.tensorboard_dir() else { return Ok(None) };
    TrainingEvents::start(&root, &spec.name, &cell.config, &cell.swept_keys()).map(Some)
}

/// Closes a run's event file with its outcome; a file that cannot be finished fails a run
/// that had not failed already.
fn finish_events(board: Option<TrainingEvents>, outcome: Result<Outcome>) -> Result<Outcome> {
    let Some(board) = board else { return outcome };
    match (board.finish(&outcome), outcome) {
        (Err(e), Ok(_)) => Err(e),
        (_, outcome) => outcome,
    }
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

/// The plan as a table: each cell with its state and swept values (`(skip)` where a sweep would
/// not run it; with `force` every cell runs), then a count by state. Without a store every cell
/// is missing.
pub fn status_report(spec: &Spec, db: &Path, force: bool) -> Result<String> {
    let cells = if db.exists() {
        plan(spec, &Store::open_read_only(db)?)?
    } else {
        spec.cells()?.into_iter().map(|c| (c, CellState::Missing)).collect()
    };
    let mut counts = std::collections::BTreeMap::new();
    let mut out = format!("{:>5}  {:<8}  {:<16}  swept values\n", "cell", "state", "config hash");
    for (cell, state) in &cells {
        let runs = force || *state != CellState::Done;
        out.push_str(&format!(
            "{:>5}  {:<8}  {:<16}  {}{}\n",
            cell.index,
            state.as_str(),
            cell.hash,
            cell.label(),
            if runs { "" } else { "  (skip)" }
        ));
        *counts.entry(state.as_str()).or_insert(0) += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    out.push_str(&format!(
        "{}: {} cells ({}) in {}\n",
        spec.name,
        cells.len(),
        counts.join(", "),
        db.display()
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: each cell joins the first bucket all of whose cells it is compatible
    /// with (quadratic; what `compatible_buckets` computes in linear time).
    fn compatible_buckets_slow(cells: &[Cell]) -> Vec<Vec<&Cell>> {
        let mut buckets: Vec<Vec<&Cell>> = Vec::new();
        for c in cells {
            if train::group_key(&c.config).is_none() {
                buckets.push(vec![c]);
                continue;
            }
            match buckets.iter_mut().find(|b| b.iter().all(|x| train::compatible(&x.config, &c.config))) {
                Some(b) => b.push(c),
                None => buckets.push(vec![c]),
            }
        }
        buckets
    }

    /// A sweep's groups hold every cell once, keep a seed's cells of a bucket together where a
    /// change of seed lies near an even cut, and stay near even: scale.toml's buckets (5 and
    /// 2 cells a seed, 31 seeds: every seed in one group), one seed of many λ (cut within
    /// the seed), lambda.toml's 5 seeds of 5 λ on two workers (even groups rather than whole
    /// seeds), one cell a seed.
    #[test]
    fn groups_keep_a_seeds_cells_together() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let spec = Spec::load(&root.join("experiments/scale.toml")).unwrap();
        let cells: Vec<Cell> = spec.cells().unwrap().into_iter().take(279).collect(); // one (ε, prompts, design)
        for jobs in [1, 2] {
            let gs = groups(&cells, jobs, Packing::Groups);
            let mut seen: Vec<usize> = gs.iter().flatten().map(|c| c.index).collect();
            seen.sort();
            assert_eq!(seen, (0..279).collect::<Vec<_>>(), "every cell once");
            let sizes: Vec<usize> = gs.iter().map(Vec::len).collect();
            // Buckets of 155 (none and pair_sum_sq) and 62 (batch_sum, l2) cells.
            let expected: &[usize] = &[30, 30, 35, 30, 30, 30, 32, 30, 32];
            assert_eq!(sizes, expected, "jobs {jobs}");
            let bucket_of: HashMap<usize, usize> = compatible_buckets(&cells)
                .iter()
                .enumerate()
                .flat_map(|(b, cs)| cs.iter().map(move |c| (c.index, b)))
                .collect();
            let mut group_of_seed: HashMap<(usize, u64), usize> = HashMap::new();
            for (g, cs) in gs.iter().enumerate() {
                for c in cs {
                    let b = bucket_of[&c.index];
                    let at = *group_of_seed.entry((b, c.config.seed)).or_insert(g);
                    assert_eq!(at, g, "jobs {jobs}: seed {} of bucket {b} in one group", c.config.seed);
                }
            }
        }
        let one = |seed: u64, lambda: f64, index: usize| {
            let mut c = cells[31 + (index % 4) * 31].clone();
            c.index = index;
            c.config.seed = seed;
            c.config.loss.lambda = lambda;
            c
        };
        // One seed, 70 λ: cut within the seed, into even groups.
        let many: Vec<Cell> = (0..70).map(|i| one(7, 1e-3 * (i + 1) as f64, i)).collect();
        let sizes: Vec<usize> = groups(&many, 1, Packing::Groups).iter().map(Vec::len).collect();
        assert_eq!(sizes, [23, 23, 24], "cut within one seed");
        // lambda.toml's shape, 5 seeds of 5 λ, two workers: no seed change near the middle,
        // so the seed there is split rather than one worker getting 15 cells and the other 10.
        let five: Vec<Cell> = (0..25).map(|i| one((i % 5) as u64, 1e-3 * (i / 5 + 1) as f64, i)).collect();
        let gs = groups(&five, 2, Packing::Groups);
        let sizes: Vec<usize> = gs.iter().map(Vec::len).collect();
        assert_eq!(sizes, [12, 13]);
        let seeds = |g: &[&Cell]| g.iter().map(|c| c.config.seed).collect::<Vec<_>>();
        assert_eq!(seeds(&gs[0]), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2], "ordered by seed");
        // 70 seeds of one cell: three even groups.
        let lone: Vec<Cell> = (0..70).map(|i| one(i as u64, 0.01, i)).collect();
        let sizes: Vec<usize> = groups(&lone, 1, Packing::Groups).iter().map(Vec::len).collect();
        assert_eq!(sizes, [23, 23, 24]);
    }

    fn indices(buckets: &[Vec<&Cell>]) -> Vec<Vec<usize>> {
        buckets.iter().map(|b| b.iter().map(|c| c.index).collect()).collect()
    }

    #[test]
    fn compatible_buckets_equal_the_quadratic_definition() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        // scale.toml: λ = 0 cells (regularizer none) join the bucket of any kind; noise.toml and
        // underdetermination.toml: zipped and several axes; real.toml: cells that are never batched.
        for (name, keep) in [
            ("scale", 2_000),
            ("noise", usize::MAX),
            ("underdetermination", usize::MAX),
            ("real", usize::MAX),
        ] {
            let spec = Spec::load(&root.join(format!("experiments/{name}.toml"))).unwrap();
            let mut cells = spec.cells().unwrap();
            cells.truncate(keep);
            // Also in another order, where λ = 0 cells come first.
            let mut reordered = cells.clone();
            reordered.sort_by(|a, b| {
                a.config.loss.lambda.total_cmp(&b.config.loss.lambda).then(b.index.cmp(&a.index))
            });
            for cells in [&cells, &reordered] {
                let fast = compatible_buckets(cells);
                assert_eq!(indices(&fast), indices(&compatible_buckets_slow(cells)), "{name}");
                assert_eq!(fast.iter().map(Vec::len).sum::<usize>(), cells.len());
            }
        }
    }
}
