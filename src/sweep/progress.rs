//! What a sweep shows while it runs: progress bars on a terminal (all cells with an ETA, and
//! one line per worker), plain lines otherwise (CI logs).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::experiment::Cell;

/// Progress bars on a terminal (all cells with ETA, and one line per worker); plain lines
/// otherwise (CI logs).
pub(super) struct Progress {
    bars: Option<(MultiProgress, ProgressBar, Vec<ProgressBar>)>,
    name: String,
    cells: usize,
    started: Instant,
    /// Cells ended so far, and when the last plain progress line was written.
    ended: Mutex<(usize, Instant)>,
}

/// How often a plain progress line is written when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(30);

/// Sweeps of more cells than this report each finished cell only in the progress figures; a
/// diverged or failed cell always gets its line.
pub(super) const LIST_FINISHED_UP_TO: usize = 200;

impl Progress {
    pub(super) fn new(cells: usize, workers: usize, name: &str) -> Progress {
        let now = Instant::now();
        let plain =
            Progress { bars: None, name: name.to_string(), cells, started: now, ended: Mutex::new((0, now)) };
        if !std::io::stderr().is_terminal() {
            return plain;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(cells as u64));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} cells, {msg}, {elapsed} elapsed, ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        total.set_prefix(name.to_string());
        let style = ProgressStyle::with_template("  worker {prefix}: [{bar:20}] step {pos}/{len}  {msg}")
            .expect("valid template")
            .progress_chars("=> ");
        let workers = (0..workers)
            .map(|w| {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(style.clone());
                bar.set_prefix(w.to_string());
                bar
            })
            .collect();
        Progress { bars: Some((multi, total, workers)), ..plain }
    }

    pub(super) fn say(&self, line: &str) {
        match &self.bars {
            Some((multi, _, _)) => {
                let _ = multi.println(line);
            }
            None => line_to_stderr(line),
        }
    }

    pub(super) fn start_cell(&self, worker: usize, cell: &Cell, group: usize) {
        if let Some((_, _, bars)) = &self.bars {
            bars[worker].set_length(cell.config.train.steps as u64);
            bars[worker].set_position(0);
            let more = if group > 1 { format!(" (+{} more, vectorized)", group - 1) } else { String::new() };
            bars[worker].set_message(format!("cell {} {}{more}", cell.index, cell.label()));
        }
    }

    pub(super) fn step(&self, worker: usize, step: usize) {
        if let Some((_, _, bars)) = &self.bars
            && step.is_multiple_of(16)
        {
            bars[worker].set_position(step as u64);
        }
    }

    pub(super) fn end_cell(&self, worker: usize) {
        let mut ended = self.ended.lock().expect("progress lock");
        ended.0 += 1;
        let rate = ended.0 as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        match &self.bars {
            Some((_, total, bars)) => {
                bars[worker].set_message("idle");
                total.set_message(format!("{rate:.1} cells/s"));
                total.inc(1);
            }
            None if ended.1.elapsed() >= PLAIN_EVERY && ended.0 < self.cells => {
                ended.1 = Instant::now();
                let eta = (self.cells - ended.0) as f64 / rate;
                self.say(&format!(
                    "{}: {}/{} cells, {rate:.1} cells/s, ETA {}",
                    self.name,
                    ended.0,
                    self.cells,
                    indicatif::HumanDuration(Duration::from_secs_f64(eta))
                ));
            }
            None => {}
        }
    }

    pub(super) fn finish(&self) {
        if let Some((multi, total, bars)) = &self.bars {
            bars.iter().for_each(ProgressBar::finish_and_clear);
            total.finish_and_clear();
            let _ = multi.clear();
        }
    }
}

/// Progress of an embedding pass: a bar with texts/s and ETA on a terminal, otherwise a line
/// at the start, about every 10 % and at the end (CI logs).
pub(super) fn embedding() -> impl FnMut(usize, usize) {
    let terminal = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut started = std::time::Instant::now();
    let mut last_tenth = 0;
    move |done: usize, total: usize| {
        if done == 0 {
            started = std::time::Instant::now();
            last_tenth = 0;
            if terminal {
                let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template(
                        "embedding [{bar:30}] {pos}/{len} texts, {per_sec}, {elapsed} elapsed, ETA {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar = Some(b);
            } else {
                line_to_stderr(&format!("embedding {total} texts with the frozen encoder"));
            }
            return;
        }
        if let Some(b) = &bar {
            b.set_position(done as u64);
            if done == total {
                b.finish_and_clear();
                line_to_stderr(&format!(
                    "embedded {total} texts in {:.1} s",
                    started.elapsed().as_secs_f64()
                ));
            }
            return;
        }
        let tenth = done * 10 / total.max(1);
        if tenth > last_tenth || done == total {
            last_tenth = tenth;
            let secs = started.elapsed().as_secs_f64();
            let rate = done as f64 / secs.max(1e-9);
            line_to_stderr(&format!(
                "embedding: {done}/{total} texts, {rate:.1} texts/s, ETA {:.0} s",
                (total - done) as f64 / rate.max(1e-9)
            ));
        }
    }
}

/// Writes one line to standard error, dropping it if stderr is closed (a pipe whose reader
/// left): progress must never stop, or panic, the work it reports on.
fn line_to_stderr(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}
