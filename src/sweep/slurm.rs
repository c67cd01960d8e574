//! Running a sweep on a SLURM cluster: one job array over the cells still to run, each task
//! writing its own SQLite file on node-local disk, and a dependent job that merges them.
//!
//! SQLite must not be written concurrently over a network file system, so no task writes the
//! experiment's store: task i trains its cells into `$SLURM_TMPDIR` (or `$TMPDIR`, or /tmp),
//! then copies the finished file to the shared results directory; the merge job
//! (`--dependency=afterany`) runs `rmlab merge` into the store once every task has ended.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{CellState, plan};
use crate::error::{Error, Result};
use crate::experiment::{Cell, Spec};
use crate::store::Store;

/// `rmlab slurm` options.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// The experiment's store (merged into by the last job).
    pub db: PathBuf,
    pub partition: Option<String>,
    /// `--time` of each array task, e.g. `01:00:00`.
    pub time: String,
    pub cpus_per_task: usize,
    pub gpus: Option<usize>,
    /// At most this many array tasks at once (`--array=0-N%K`).
    pub array_parallelism: Option<usize>,
    pub cells_per_task: usize,
    /// Where the array script is written; the merge script goes beside it.
    pub out: PathBuf,
}

/// The scripts written, and what they run.
#[derive(Debug)]
pub struct SlurmPlan {
    /// The experiment planned, and the store its cells are merged into.
    pub experiment: String,
    pub db: PathBuf,
    pub array_script: PathBuf,
    pub merge_script: PathBuf,
    /// Cells per array task.
    pub tasks: Vec<Vec<Cell>>,
    /// Cells already done in the store, left out.
    pub done: usize,
    /// Directory the tasks copy their stores and logs to.
    pub shared_dir: PathBuf,
}

/// What was planned: nothing to submit, or the cells, tasks and the two scripts.
impl std::fmt::Display for SlurmPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tasks.is_empty() {
            return write!(
                f,
                "{}: all {} cells are done in {}; nothing to submit",
                self.experiment,
                self.done,
                self.db.display()
            );
        }
        let cells: usize = self.tasks.iter().map(Vec::len).sum();
        write!(
            f,
            "{}: {cells} cells in {} array tasks ({} done, left out)\n  array: {}\n  merge: {}",
            self.experiment,
            self.tasks.len(),
            self.done,
            self.array_script.display(),
            self.merge_script.display()
        )
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}

/// Plans the cells that are not done in the store and writes the two scripts. Writes nothing
/// when every cell is done (`tasks` is then empty).
pub fn write_scripts(spec: &Spec, opts: &SlurmOptions) -> Result<SlurmPlan> {
    if opts.cells_per_task == 0 || opts.cpus_per_task == 0 {
        return Err(Error::flag("--cells-per-task and --cpus-per-task", "", "must be at least 1"));
    }
    let cells = if opts.db.exists() {
        plan(spec, &Store::open_read_only(&opts.db)?)?
    } else {
        spec.cells()?.into_iter().map(|c| (c, CellState::Missing)).collect()
    };
    let done = cells.iter().filter(|(_, s)| *s == CellState::Done).count();
    let todo: Vec<Cell> = cells.into_iter().filter(|(_, s)| *s != CellState::Done).map(|(c, _)| c).collect();
    // Compatible cells are made adjacent before the cells are cut into tasks, so that a task
    // trains its cells as few batched programs, not one at a time; the number of tasks stays
    // ⌈cells / cells_per_task⌉.
    // A seed's cells are put together too, so that they share their data in a task's groups.
    let ordered: Vec<Cell> =
        super::compatible_buckets(&todo).into_iter().flat_map(super::by_seed).cloned().collect();
    let tasks: Vec<Vec<Cell>> = ordered.chunks(opts.cells_per_task).map(<[Cell]>::to_vec).collect();
    let array_script = absolute(&opts.out)?;
    let stem = array_script.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep").to_string();
    let merge_script = array_script.with_file_name(format!("{stem}-merge.sbatch"));
    let db = absolute(&opts.db)?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let shared_dir =
        db.parent().unwrap_or(Path::new("/")).join("slurm").join(format!("{}-{stamp}", spec.name));
    let plan = SlurmPlan {
        experiment: spec.name.clone(),
        db: opts.db.clone(),
        array_script,
        merge_script,
        tasks,
        done,
        shared_dir,
    };
    if plan.tasks.is_empty() {
        return Ok(plan);
    }
    let rmlab =
        std::env::current_exe().map_err(|e| Error::system(format!("cannot locate the rmlab binary: {e}")))?;
    let spec_path = absolute(&spec.path)?;
    // SLURM opens each job's --output file before the job starts: its directory must exist.
    for dir in [plan.array_script.parent().unwrap_or(Path::new(".")), &plan.shared_dir] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    // Tasks run copies of the binary and the spec taken now: editing the spec or rebuilding
    // rmlab while the array waits in the queue changes nothing about it.
    let rmlab_copy = plan.shared_dir.join("rmlab");
    let spec_copy = plan.shared_dir.join("spec.toml");
    std::fs::copy(&rmlab, &rmlab_copy).map_err(|e| Error::io(&rmlab_copy, e))?;
    std::fs::write(&spec_copy, spec.text_for_copy()?).map_err(|e| Error::io(&spec_copy, e))?;
    let array = array_text(spec, opts, &plan, &rmlab_copy, &spec_copy, &spec_path);
    let merge = merge_text(spec, opts, &plan, &rmlab_copy, &spec_copy, &db);
    for (path, text) in [(&plan.array_script, array), (&plan.merge_script, merge)] {
        std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    }
    Ok(plan)
}

fn sbatch_header(out: &mut String, name: &str, opts: &SlurmOptions, log: &str) {
    let _ = writeln!(out, "#SBATCH --job-name={name}");
    if let Some(p) = &opts.partition {
        let _ = writeln!(out, "#SBATCH --partition={p}");
    }
    let _ = writeln!(out, "#SBATCH --output={log}");
}

fn array_text(
    spec: &Spec,
    opts: &SlurmOptions,
    plan: &SlurmPlan,
    rmlab: &Path,
    spec_path: &Path,
    original_spec: &Path,
) -> String {
    let n = plan.tasks.len();
    let jobs = opts.cells_per_task.min(opts.cpus_per_task);
    let threads = (opts.cpus_per_task / jobs).max(1);
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(
        s,
        "# rmlab sweep of {} as a SLURM job array, written by rmlab {}{}.",
        original_spec.display(),
        env!("CARGO_PKG_VERSION"),
        env!("RMLAB_BUILD")
    );
    let _ =
        writeln!(s, "# The tasks run the copies of rmlab and of the spec in {}.", plan.shared_dir.display());
    let _ = writeln!(
        s,
        "# {} cells to run ({} already done in {}), {} per task: {n} array tasks.",
        plan.tasks.iter().map(Vec::len).sum::<usize>(),
        plan.done,
        opts.db.display(),
        opts.cells_per_task
    );
    let _ = writeln!(s, "# Submit with the merge job after it (rmlab slurm --submit does both):");
    let _ = writeln!(s, "#   id=$(sbatch --parsable {})", plan.array_script.display());
    let _ = writeln!(s, "#   sbatch --dependency=afterany:$id {}", plan.merge_script.display());
    let _ = writeln!(s, "# Each task trains its cells into a store on node-local disk, then copies it to");
    let _ = writeln!(
        s,
        "# {}; the merge job merges those into the experiment's store.",
        plan.shared_dir.display()
    );
    sbatch_header(
        &mut s,
        &format!("rmlab-{}", spec.name),
        opts,
        &format!("{}/%x-%A_%a.out", plan.shared_dir.display()),
    );
    match opts.array_parallelism {
        Some(k) => {
            let _ = writeln!(s, "#SBATCH --array=0-{}%{k}", n - 1);
        }
        None => {
            let _ = writeln!(s, "#SBATCH --array=0-{}", n - 1);
        }
    }
    let _ = writeln!(s, "#SBATCH --ntasks=1");
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", opts.cpus_per_task);
    let _ = writeln!(s, "#SBATCH --time={}", opts.time);
    // SLURM sends the batch shell SIGTERM this long before the time limit, so the task can save
    // the cells it finished (SIGKILL follows at the limit).
    let _ = writeln!(s, "#SBATCH --signal=B:TERM@{}", grace_seconds(&opts.time));
    if let Some(g) = opts.gpus {
        let _ = writeln!(s, "#SBATCH --gpus={g}");
    }
    let _ = writeln!(s, "set -uo pipefail\n");
    let _ = writeln!(s, "RMLAB={}", shell_quote(&rmlab.display().to_string()));
    let _ = writeln!(s, "SPEC={}", shell_quote(&spec_path.display().to_string()));
    let _ = writeln!(s, "SHARED={}", shell_quote(&plan.shared_dir.display().to_string()));
    let _ = writeln!(
        s,
        "\n# Cells of each task, by config hash (rmlab status {}{} lists them).",
        spec_path.display(),
        spec.overrides.iter().map(|o| format!(" --set {}", shell_quote(o))).collect::<String>()
    );
    let _ = writeln!(s, "CELLS=(");
    for (i, task) in plan.tasks.iter().enumerate() {
        let hashes: Vec<&str> = task.iter().map(|c| c.hash.as_str()).collect();
        let labels: Vec<String> = task.iter().map(|c| format!("cell {}: {}", c.index, c.label())).collect();
        let _ = writeln!(s, "  {}  # task {i}: {}", hashes.join(","), labels.join("; "));
    }
    let _ = writeln!(s, ")\n");
    let _ = writeln!(s, "task=${{SLURM_ARRAY_TASK_ID:?run this script with sbatch, as an array job}}");
    let _ = writeln!(s, "# SLURM sets no SLURM_TMPDIR itself; many sites do. Node-local either way.");
    let _ =
        writeln!(s, "local=\"${{SLURM_TMPDIR:-${{TMPDIR:-/tmp}}}}/rmlab-${{SLURM_ARRAY_JOB_ID}}-${{task}}\"");
    let _ = writeln!(s, "mkdir -p \"$local\" \"$SHARED\" || exit 1");
    let _ =
        writeln!(s, "# Near the time limit, stop rmlab: cells it finished are in the store, the one it was");
    let _ = writeln!(s, "# training stays `running` and is not merged (the next submission reruns it).");
    let _ = writeln!(
        s,
        "stop() {{ echo \"rmlab task $task: time limit near, saving finished cells\" >&2; kill -TERM \"$pid\" 2>/dev/null; }}"
    );
    let _ = writeln!(s, "trap stop TERM");
    // The overrides the plan was made with, so each task expands the same cells.
    let set: String = spec.overrides.iter().map(|o| format!(" --set {}", shell_quote(o))).collect();
    let _ = writeln!(
        s,
        "\"$RMLAB\" sweep \"$SPEC\"{set} --db \"$local/task.sqlite\" --only \"${{CELLS[$task]}}\" --jobs {jobs} --threads {threads} &"
    );
    let _ = writeln!(s, "pid=$!");
    let _ = writeln!(s, "# `wait` returns when the trap runs; wait until rmlab itself has ended.");
    let _ = writeln!(s, "wait \"$pid\"; status=$?");
    let _ = writeln!(s, "while kill -0 \"$pid\" 2>/dev/null; do wait \"$pid\"; status=$?; done");
    let _ = writeln!(
        s,
        "# Copy through SQLite (rows still in the -wal file come too) under a temporary name, then"
    );
    let _ =
        writeln!(s, "# rename: the merge job never sees half a store. On failure the local store is kept.");
    let _ = writeln!(s, "if [ -f \"$local/task.sqlite\" ]; then");
    let _ = writeln!(
        s,
        "  if \"$RMLAB\" merge \"$local/task.sqlite\" --into \"$SHARED/task-$task.sqlite.part\" &&"
    );
    let _ = writeln!(s, "     mv \"$SHARED/task-$task.sqlite.part\" \"$SHARED/task-$task.sqlite\"; then");
    let _ = writeln!(s, "    rm -rf \"$local\"");
    let _ = writeln!(s, "  else");
    let _ = writeln!(
        s,
        "    echo \"rmlab task $task: could not copy $local/task.sqlite to $SHARED; kept on $(hostname)\" >&2"
    );
    let _ = writeln!(s, "    status=1");
    let _ = writeln!(s, "  fi");
    let _ = writeln!(s, "fi");
    let _ = writeln!(s, "exit $status");
    s
}

fn merge_text(
    spec: &Spec,
    opts: &SlurmOptions,
    plan: &SlurmPlan,
    rmlab: &Path,
    spec_path: &Path,
    db: &Path,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(s, "# Merges the task stores of {} into {}.", plan.array_script.display(), db.display());
    let _ =
        writeln!(s, "# Runs after the array (--dependency=afterany): also when some tasks failed, so that");
    let _ = writeln!(
        s,
        "# their finished cells are kept; `rmlab slurm` again then submits only what is missing."
    );
    sbatch_header(
        &mut s,
        &format!("rmlab-{}-merge", spec.name),
        opts,
        &format!("{}/%x-%j.out", plan.shared_dir.display()),
    );
    let _ = writeln!(s, "#SBATCH --ntasks=1");
    let _ = writeln!(s, "#SBATCH --cpus-per-task=1");
    let _ = writeln!(s, "#SBATCH --time=00:30:00");
    let _ = writeln!(s, "set -euo pipefail\n");
    let _ = writeln!(s, "RMLAB={}", shell_quote(&rmlab.display().to_string()));
    let _ = writeln!(s, "SHARED={}", shell_quote(&plan.shared_dir.display().to_string()));
    let _ = writeln!(s, "DB={}", shell_quote(&db.display().to_string()));
    let _ = writeln!(s, "shopt -s nullglob");
    let _ = writeln!(s, "stores=(\"$SHARED\"/task-*.sqlite)");
    let _ =
        writeln!(s, "if [ ${{#stores[@]}} -eq 0 ]; then echo \"no task stores in $SHARED\" >&2; exit 1; fi");
    let _ = writeln!(s, "\"$RMLAB\" merge \"${{stores[@]}}\" --into \"$DB\"");
    let _ = writeln!(s, "\"$RMLAB\" status {} --db \"$DB\"", shell_quote(&spec_path.display().to_string()));
    s
}

/// Seconds before the time limit at which a task is told to save its work: two minutes, or a
/// quarter of a limit shorter than eight minutes. `time` is SLURM's `[D-]HH:MM:SS`, `MM:SS` or
/// `MM`; anything else gets the two minutes.
fn grace_seconds(time: &str) -> u64 {
    let (days, rest) = match time.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().unwrap_or(0), r),
        None => (0, time),
    };
    let parts: Vec<u64> = rest.split(':').filter_map(|p| p.parse().ok()).collect();
    let secs = match parts.as_slice() {
        [h, m, s] => h * 3600 + m * 60 + s,
        [m, s] => m * 60 + s,
        [m] => m * 60,
        _ => return 120,
    } + days * 86_400;
    if secs == 0 { 120 } else { (secs / 4).clamp(1, 120) }
}

fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Submits the array and its merge job; returns their job ids.
pub fn submit(plan: &SlurmPlan) -> Result<(String, String)> {
    let sbatch = |args: &[&str]| -> Result<String> {
        let out = Command::new("sbatch").arg("--parsable").args(args).output().map_err(|e| {
            Error::system(format!(
                "cannot run sbatch ({e}); is SLURM installed here? The scripts are written."
            ))
        })?;
        if !out.status.success() {
            return Err(Error::system(format!(
                "sbatch {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.trim().split(';').next().unwrap_or_default().to_string())
    };
    let array = sbatch(&[&plan.array_script.display().to_string()])?;
    let merge =
        sbatch(&[&format!("--dependency=afterany:{array}"), &plan.merge_script.display().to_string()])?;
    Ok((array, merge))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_is_two_minutes_or_a_quarter_of_short_limits() {
        assert_eq!(grace_seconds("01:00:00"), 120);
        assert_eq!(grace_seconds("2-00:00:00"), 120);
        assert_eq!(grace_seconds("00:02:00"), 30);
        assert_eq!(grace_seconds("4"), 60);
        assert_eq!(grace_seconds("1:00"), 15);
        assert_eq!(grace_seconds("soon"), 120);
    }

    #[test]
    fn quoting_leaves_plain_paths_alone() {
        assert_eq!(shell_quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
