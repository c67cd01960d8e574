//! What a sweep shows while it runs: progress bars on a terminal (all cells with an ETA, and
//! one line per worker), plain lines otherwise (CI logs).

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::experiment::Cell;

/// Progress bars on a terminal (all cells with ETA, and one line per worker); plain lines
/// otherwise (CI logs).
pub(super) struct Progress {
    bars: Option<(MultiProgress, ProgressBar, Vec<ProgressBar>)>,
}

impl Progress {
    pub(super) fn new(cells: usize, workers: usize, name: &str) -> Progress {
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
        Progress { bars: Some((multi, total, workers)) }
    }

    pub(super) fn say(&self, line: &str) {
        match &self.bars {
            Some((multi, _, _)) => {
                let _ = multi.println(line);
            }
            None => {
                // A closed stderr (a pipe whose reader left) must not stop the sweep.
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr(), "{line}");
            }
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
        if let Some((_, total, bars)) = &self.bars {
            bars[worker].set_message("idle");
            total.inc(1);
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
                eprintln!("embedding {total} texts with the frozen encoder");
            }
            return;
        }
        if let Some(b) = &bar {
            b.set_position(done as u64);
            if done == total {
                b.finish_and_clear();
                eprintln!("embedded {total} texts in {:.1} s", started.elapsed().as_secs_f64());
            }
            return;
        }
        let tenth = done * 10 / total.max(1);
        if tenth > last_tenth || done == total {
            last_tenth = tenth;
            let secs = started.elapsed().as_secs_f64();
            let rate = done as f64 / secs.max(1e-9);
            eprintln!(
                "embedding: {done}/{total} texts, {rate:.1} texts/s, ETA {:.0} s",
                (total - done) as f64 / rate.max(1e-9)
            );
        }
    }
}
