//! The batched engine: K cells of a sweep trained as one program, without autograd.
//!
//! Cells that differ only in their seed and λ (same data shape, model, optimizer, schedule)
//! are stacked into one [`StackedMlp`] ([`stacked`]): one batched matmul per layer for all
//! cells, a hand-derived gradient ([`loss_grad`], then [`StackedMlp::backward`]) and one
//! optimizer update over all parameters ([`FlatOptimizer`]); on the CPU, host loops
//! (`train::kernels`, safe functions over the crate's only unsafe code) replace kernels where
//! that is faster. Each cell
//! keeps its own data (generated from its seed), its own initialisation and batch stream (the
//! same draws as the autograd trainer's: `model::build_model`, `train::batches`), its own λ and, because Adam and
//! SGD update every element on its own, its own optimizer state. A seed's cells listed
//! together share what they have in common, their data and batches: generated, tabled and
//! gathered once, and multiplied with each cell's weights ([`StackedMlp::share_inputs`]),
//! which changes no bit of any cell's numbers. Every cell reports through
//! its own sink, as if it had been trained alone; results equal the autograd trainer's up to
//! float32 rounding (`train::engine_equality` checks 1e-5). Nothing here uses that trainer.

mod cell_reports;
mod pair_batches;
mod stacked;

use tch::{Device, Tensor};

use super::optim::FlatOptimizer;
use super::schedule;
use super::step_loss::StepLoss;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::{MetricsSink, Outcome};
use crate::experiment::config::{DataKind, Finetune, ModelKind, Regularizer, RunConfig, TextFeatures};
use crate::model::build_model;
use crate::objective::{Objective, loss_grad, loss_grad_host};
use cell_reports::CellReports;
use pair_batches::PairBatches;
use stacked::StackedMlp;

/// The part of a config that must be equal for cells to share a batched program: everything
/// but the seed and λ (a λ = 0 cell joins the cells of any regularizer kind).
pub fn group_key(cfg: &RunConfig) -> Option<String> {
    // Preference files join when their features are precomputed (a file's embedding columns,
    // a frozen encoder's cached embeddings); their split depends on the seed, and with it the
    // number of training pairs, so their cells group by seed.
    let precomputed = cfg.data.text_features == TextFeatures::Embedding
        || (cfg.model.kind == ModelKind::Encoder && cfg.model.finetune() == Finetune::None);
    let file = cfg.data.kind == DataKind::PreferenceFile;
    if (file && !precomputed) || cfg.loss.margin_from_data {
        return None;
    }
    let mut c = cfg.clone();
    c.seed = if file { cfg.seed } else { 0 };
    c.loss.lambda = 0.0;
    c.loss.regularizer = Regularizer::None;
    let kind = if cfg.loss.lambda == 0.0 { None } else { Some(cfg.loss.regularizer) };
    Some(format!("{}|{kind:?}", c.canonical_json()))
}

/// Whether two cells can be trained together.
pub fn compatible(a: &RunConfig, b: &RunConfig) -> bool {
    match (group_key(a), group_key(b)) {
        (Some(x), Some(y)) => {
            // λ = 0 cells have no regularizer kind: they join either side.
            let (xs, ys) = (x.rsplit_once('|').unwrap(), y.rsplit_once('|').unwrap());
            xs.0 == ys.0 && (xs.1 == ys.1 || xs.1 == "None" || ys.1 == "None")
        }
        _ => false,
    }
}

/// Trains compatible cells together; returns each cell's outcome. `sinks[k]` receives cell
/// k's metrics and final rewards. Consecutive cells of one seed share their data and batches
/// (generated and gathered once), so a caller lists a seed's cells together. A cell that
/// diverges is reported as diverged at that evaluation and no longer evaluated; the others go
/// on. `on_step` gets each step's number and its loss, one value a cell (computed only if
/// asked for).
pub fn train_group(
    cfgs: &[RunConfig],
    device: Device,
    sinks: &mut [&mut dyn MetricsSink],
    on_step: &mut dyn FnMut(usize, &StepLoss),
) -> Result<Vec<Outcome>> {
    train_group_with(cfgs, device, sinks, on_step, true)
}

/// One cell trained by the batched engine as a group of one, on data already loaded: the
/// one-cell path for every cell the engine can train ([`group_key`]; others are an error).
/// On this project's AMD EPYC the same numbers as that cell in a group, bit for bit
/// (`tests::a_cell_in_a_group_equals_the_cell_alone`; README, Reproducibility), and as the
/// autograd trainer to float32 rounding.
pub fn train_alone(
    cfg: &RunConfig,
    data: &Dataset,
    device: Device,
    sink: &mut dyn MetricsSink,
    on_step: &mut dyn FnMut(usize, &StepLoss),
) -> Result<Outcome> {
    if group_key(cfg).is_none() {
        return Err(Error::training("the batched engine cannot train this cell (train it with `train`)"));
    }
    let outcomes = train_stack(std::slice::from_ref(cfg), &[data], device, &mut [sink], on_step, true)?;
    Ok(outcomes[0])
}

/// [`train_group`]; `host_loops: false` keeps to tensor kernels on the CPU too (the code other
/// devices run), so that tests cover it.
pub(super) fn train_group_with(
    cfgs: &[RunConfig],
    device: Device,
    sinks: &mut [&mut dyn MetricsSink],
    on_step: &mut dyn FnMut(usize, &StepLoss),
    host_loops: bool,
) -> Result<Vec<Outcome>> {
    let (datasets, data_of) = load_data(cfgs, device)?;
    let per_cell: Vec<&Dataset> = data_of.iter().map(|&d| &datasets[d]).collect();
    train_stack(cfgs, &per_cell, device, sinks, on_step, host_loops)
}

/// Each cell's data, generated from its seed: the data sets and which one each cell has.
/// Consecutive compatible cells of one seed (which differ only in λ, on which data does not
/// depend) have one data set.
fn load_data(cfgs: &[RunConfig], device: Device) -> Result<(Vec<Dataset>, Vec<usize>)> {
    let mut datasets: Vec<Dataset> = Vec::new();
    let mut data_of = Vec::with_capacity(cfgs.len());
    for (i, c) in cfgs.iter().enumerate() {
        let shares = i > 0 && cfgs[i - 1].seed == c.seed && compatible(&cfgs[i - 1], c);
        if !shares {
            datasets.push(super::inputs::load(c, device)?.0);
        }
        data_of.push(datasets.len() - 1);
    }
    Ok((datasets, data_of))
}

/// The inputs of cells with `datasets` ([`StackedMlp::share_inputs`]): the number of cells of
/// each, in order. Consecutive cells with the same data set and seed train on the same rows
/// and draw the same batches, so they share one input.
fn input_counts(cfgs: &[RunConfig], datasets: &[&Dataset]) -> Vec<usize> {
    let mut counts: Vec<usize> = Vec::new();
    for (i, (c, ds)) in cfgs.iter().zip(datasets).enumerate() {
        let first = i - counts.last().map_or(0, |&n| n); // the first cell of the current input
        if i > 0 && std::ptr::eq(datasets[first], *ds) && cfgs[first].seed == c.seed {
            *counts.last_mut().expect("an input") += 1;
        } else {
            counts.push(1);
        }
    }
    counts
}

/// The engine: `cfgs[k]` trained on `datasets[k]`, reporting to `sinks[k]`; host loops on
/// the CPU unless `host_loops` is false.
fn train_stack(
    cfgs: &[RunConfig],
    datasets: &[&Dataset],
    device: Device,
    sinks: &mut [&mut dyn MetricsSink],
    on_step: &mut dyn FnMut(usize, &StepLoss),
    host_loops: bool,
) -> Result<Vec<Outcome>> {
    check_group(cfgs, datasets, sinks.len())?;
    // Inputs shared by a seed's cells: their data is stacked, tabled and gathered once.
    let counts = input_counts(cfgs, datasets);
    let firsts: Vec<usize> =
        counts.iter().scan(0, |next, &c| Some(std::mem::replace(next, *next + c))).collect();
    let input_of: Vec<usize> =
        counts.iter().enumerate().flat_map(|(u, &c)| std::iter::repeat_n(u, c)).collect();
    let inputs: Vec<&Dataset> = firsts.iter().map(|&i| datasets[i]).collect();
    let seeds: Vec<u64> = firsts.iter().map(|&i| cfgs[i].seed).collect();

    let mut mlp = stack_models(cfgs, datasets, device, &counts, host_loops)?;
    let t = &cfgs[0].train;
    let mut opt = FlatOptimizer::new(t, &mlp.params);
    if !host_loops {
        opt = opt.without_host_loops();
    }
    let cpu_loops = host_loops && device == Device::Cpu;
    let loss = GroupLoss::new(cfgs, device, cpu_loops);
    let mut pairs = PairBatches::new(&inputs, &seeds, &input_of, t, &mlp, cpu_loops, device)?;
    let mut cells = CellReports::new(cfgs, datasets, &inputs, &input_of);
    // Gradients of the micro-batches of one step, summed (accumulation only).
    let mut acc = (t.gradient_accumulation > 1).then(|| mlp.grad.zeros_like());

    cells.evaluate(&mlp, pairs.features(), 0, sinks)?;
    let mut step = 0;
    while step < t.steps && !cells.all_done() {
        step += 1;
        if schedule::varies(t) {
            opt.set_lr(schedule::lr_at(t, step));
        }
        let rewards = step_gradient(&mut mlp, &mut pairs, &loss, acc.as_mut(), t.gradient_accumulation)?;
        let grad = acc.as_ref().unwrap_or(&mlp.grad);
        if t.max_grad_norm > 0.0 {
            mlp.clip_per_cell(grad, t.max_grad_norm);
        }
        opt.step(&mut mlp.params, grad);
        on_step(step, &StepLoss::Rewards { rewards: &rewards, objectives: &loss.objectives });
        if step % cfgs[0].eval.every == 0 || step == t.steps {
            cells.evaluate(&mlp, pairs.features(), step, sinks)?;
        }
    }
    cells.finish(&mut mlp, pairs.features(), step, sinks)
}

/// Checks that the cells can be trained as one group: one data set and sink a cell, cells
/// compatible, and the same non-zero number of training pairs in every data set.
fn check_group(cfgs: &[RunConfig], datasets: &[&Dataset], sinks: usize) -> Result<()> {
    let k = cfgs.len();
    if k == 0 || sinks != k || datasets.len() != k || !cfgs.iter().all(|c| compatible(&cfgs[0], c)) {
        return Err(Error::training("train_group needs one data set and sink per cell and compatible cells"));
    }
    let n_train = datasets[0].train.n_pairs;
    if n_train == 0 || datasets.iter().any(|ds| ds.train.n_pairs != n_train) {
        return Err(Error::training("cells of a group need the same, non-zero number of training pairs"));
    }
    Ok(())
}

/// Each cell's initial weights (its own seed's draws, `model::build_model`), stacked; inputs
/// shared as `counts` says ([`StackedMlp::share_inputs`]).
fn stack_models(
    cfgs: &[RunConfig],
    datasets: &[&Dataset],
    device: Device,
    counts: &[usize],
    host_loops: bool,
) -> Result<StackedMlp> {
    let models: Vec<_> = cfgs
        .iter()
        .zip(datasets)
        .map(|(c, ds)| build_model(c, ds, device).map(|m| m.0))
        .collect::<Result<_>>()?;
    let mut names: Vec<String> =
        models[0].variables().into_keys().filter(|n| n.ends_with(".weight")).collect();
    names.sort_by_key(|n| (n.starts_with("head"), n.clone()));
    let layers: Vec<Vec<(Tensor, Tensor)>> = names
        .iter()
        .map(|w| {
            let layer = w.trim_end_matches(".weight");
            models
                .iter()
                .map(|m| {
                    let vars = m.variables();
                    (vars[w.as_str()].shallow_clone(), vars[&format!("{layer}.bias")].shallow_clone())
                })
                .collect()
        })
        .collect();
    let mut mlp = StackedMlp::new(&layers, cfgs[0].model.activation);
    mlp.use_host_kernels(host_loops);
    mlp.share_inputs(counts);
    Ok(mlp)
}

/// The group's loss: each cell's λ under the group's regularizer, and its objective for the
/// loss reported each step.
struct GroupLoss {
    /// The regularizer of the group's cells with λ > 0 (a λ = 0 cell joins any kind).
    penalty: Regularizer,
    lambda_host: Vec<f64>,
    /// λ of every cell, `[K, 1]` on the device.
    lambdas: Tensor,
    margin: f64,
    objectives: Vec<Objective>,
    /// ∂L/∂rewards by one host loop (on the CPU it beats a dozen small kernels).
    host_loop: bool,
}

impl GroupLoss {
    fn new(cfgs: &[RunConfig], device: Device, host_loop: bool) -> GroupLoss {
        let k = cfgs.len() as i64;
        GroupLoss {
            penalty: cfgs
                .iter()
                .find(|c| c.loss.lambda != 0.0)
                .map_or(Regularizer::None, |c| c.loss.regularizer),
            lambda_host: cfgs.iter().map(|c| c.loss.lambda).collect(),
            lambdas: Tensor::from_slice(&cfgs.iter().map(|c| c.loss.lambda as f32).collect::<Vec<_>>())
                .to_device(device)
                .view([k, 1]),
            margin: cfgs[0].loss.margin,
            objectives: cfgs.iter().map(|c| Objective::new(&c.loss)).collect(),
            host_loop,
        }
    }

    /// ∂L/∂rewards `[K, 2b]` for rewards `rr` `[K, 2b]` of b pairs, interleaved (chosen,
    /// rejected, …).
    fn reward_grad(&self, rr: &Tensor) -> Result<Tensor> {
        let (k, b) = (rr.size()[0], rr.size()[1] / 2);
        Ok(if self.host_loop {
            let host = Vec::<f32>::try_from(rr.view([-1]))?;
            let dr = loss_grad_host(&host, b as usize, self.penalty, &self.lambda_host, self.margin);
            Tensor::from_slice(&dr).view([k, 2 * b])
        } else {
            let rr = rr.view([k, b, 2]);
            let (d_a, d_b) =
                loss_grad(&rr.select(2, 0), &rr.select(2, 1), self.penalty, &self.lambdas, self.margin);
            Tensor::stack(&[d_a, d_b], 2).view([k, 2 * b])
        })
    }
}

/// One step's gradient over `accumulate` micro-batches, in [`StackedMlp::grad`] and, when
/// accumulating, summed into `acc`; returns the last micro-batch's rewards `[K, 2b]`. Each
/// micro-batch's input is borrowed from `pairs` by its tape until the backward pass consumes
/// it.
fn step_gradient(
    mlp: &mut StackedMlp,
    pairs: &mut PairBatches,
    loss: &GroupLoss,
    mut acc: Option<&mut Tensor>,
    accumulate: usize,
) -> Result<Tensor> {
    let mut rewards = Tensor::new();
    for micro in 0..accumulate {
        let x = pairs.next()?;
        let (rr, tape) = mlp.forward_train(x); // [K, 2b], interleaved
        let mut dr = loss.reward_grad(&rr)?;
        if accumulate > 1 {
            // Each micro-batch's loss counts 1/accumulate, as in the autograd trainer.
            dr /= accumulate as f64;
        }
        mlp.backward(&dr, tape);
        rewards = rr;
        if let Some(acc) = acc.as_deref_mut() {
            if micro == 0 {
                acc.copy_(&mlp.grad);
            } else {
                let _ = acc.g_add_(&mlp.grad);
            }
        }
    }
    Ok(rewards)
}

/// The rewards `[R]` of one model (the variables of `vs`, as the one-cell model names them) by
/// the batched engine's forward pass, for features `[R, D]`.
pub(super) fn forward_one(vs: &tch::nn::VarStore, cfg: &RunConfig, features: &Tensor) -> Tensor {
    let vars = vs.variables();
    let mut names: Vec<String> = vars.keys().filter(|n| n.ends_with(".weight")).cloned().collect();
    names.sort_by_key(|n| (n.starts_with("head"), n.clone()));
    let layers: Vec<Vec<(Tensor, Tensor)>> = names
        .iter()
        .map(|w| {
            let layer = w.trim_end_matches(".weight");
            vec![(vars[w.as_str()].shallow_clone(), vars[&format!("{layer}.bias")].shallow_clone())]
        })
        .collect();
    let mlp = StackedMlp::new(&layers, cfg.model.activation);
    mlp.forward(&StackedMlp::with_ones(&features.unsqueeze(0))).get(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::MemorySink;
    use crate::train::test_cells::{cells, cfg, variants};

    /// Cells of one seed next to each other share their input (data, batches, gathered rows),
    /// and that changes no bit of what any cell reports (metrics, final rewards, best step,
    /// kept model): the same group trained with one data set a cell gives the same numbers,
    /// for every model and trainer setting of [`variants`] (partial batches at epochs' ends,
    /// accumulation and early stopping among them), with the host loops and with the kernels
    /// other devices run, in a group of several seeds and in a group of one seed.
    #[test]
    fn shared_inputs_change_no_bit() {
        // Seeds 3, 3, 3, 5, 5 and 3 again (inputs of 3, 2 and 1 cells), and one seed for all.
        type Group = (&'static [(u64, f64)], &'static [usize]); // (seed, λ) a cell; cells an input
        let groups: [Group; 2] = [
            (&[(3, 0.0), (3, 0.01), (3, 0.5), (5, 0.1), (5, 0.0), (3, 0.2)], &[3, 2, 1]),
            (&[(4, 0.0), (4, 0.1), (4, 0.3)], &[3]),
        ];
        for (((hidden, tweak), host_loops), (group, counts)) in variants()
            .iter()
            .flat_map(|v| [(v.clone(), true), (v.clone(), false)])
            .flat_map(|v| groups.map(|g| (v.clone(), g)))
        {
            let cfgs = cells(group, &hidden, tweak);
            let what = format!("{hidden:?} {:?} host loops {host_loops}", cfgs[0].model.activation);
            let mut shared: Vec<MemorySink> = cfgs.iter().map(|_| MemorySink::default()).collect();
            let mut separate: Vec<MemorySink> = cfgs.iter().map(|_| MemorySink::default()).collect();
            {
                let mut refs: Vec<&mut dyn MetricsSink> =
                    shared.iter_mut().map(|s| s as &mut dyn MetricsSink).collect();
                train_group_with(&cfgs, Device::Cpu, &mut refs, &mut |_, _| {}, host_loops).unwrap();
                let (datasets, data_of) = load_data(&cfgs, Device::Cpu).unwrap();
                assert_eq!(datasets.len(), counts.len(), "a data set a run of one seed");
                let per_cell: Vec<&Dataset> = data_of.iter().map(|&d| &datasets[d]).collect();
                assert_eq!(input_counts(&cfgs, &per_cell), counts, "{what}: the inputs shared");
                // One data set a cell: equal contents, but no two cells share one.
                let own: Vec<Dataset> =
                    cfgs.iter().map(|c| crate::train::inputs::load(c, Device::Cpu).unwrap().0).collect();
                let mut refs: Vec<&mut dyn MetricsSink> =
                    separate.iter_mut().map(|s| s as &mut dyn MetricsSink).collect();
                let own: Vec<&Dataset> = own.iter().collect();
                train_stack(&cfgs, &own, Device::Cpu, &mut refs, &mut |_, _| {}, host_loops).unwrap();
            }
            for ((c, a), b) in cfgs.iter().zip(&shared).zip(&separate) {
                let bits = |s: &MemorySink| {
                    let m = s.rows.iter().map(|r| (r.step, r.name, r.value.to_bits()));
                    let r = s.rewards.iter().map(|r| (r.response, r.reward.to_bits()));
                    (m.collect::<Vec<_>>(), r.collect::<Vec<_>>())
                };
                let what = format!("{what}, seed {} λ {}", c.seed, c.loss.lambda);
                assert_eq!(a.best_step, b.best_step, "{what}");
                assert_eq!(a.model.is_some(), b.model.is_some());
                for ((name, x), (_, y)) in a.model.iter().flatten().zip(b.model.iter().flatten()) {
                    assert!(x.equal(y), "{what}: kept {name}");
                }
                let (a, b) = (bits(a), bits(b));
                assert!(!a.1.is_empty() && a.0.len() > 30, "{what}: metrics and final rewards reported");
                assert_eq!(a, b, "{what}");
            }
        }
    }

    /// A cell's metric rows (step, name, bits) and final rewards (response, bits).
    type Bits = (Vec<(usize, &'static str, u64)>, Vec<(usize, u64)>);

    /// What a cell reports, as bits: its metric rows and final rewards.
    fn bits(s: &MemorySink) -> Bits {
        let m = s.rows.iter().map(|r| (r.step, r.name, r.value.to_bits()));
        let r = s.rewards.iter().map(|r| (r.response, r.reward.to_bits()));
        (m.collect(), r.collect())
    }

    /// A cell trained in a group reports the same bits as trained alone (a group of one, what
    /// `--no-vectorize` and a sweep's leftover cells run), for every model and trainer setting
    /// of [`variants`], linear models and MLPs of two layers among them, on the host loops
    /// (the CPU's path). LibTorch's batched matmul at one output rounds a group of one
    /// differently from a larger group; the head's host loop does not.
    #[test]
    fn a_cell_in_a_group_equals_the_cell_alone() {
        let group = [(3, 0.0), (3, 0.01), (5, 0.1), (3, 0.2)];
        for (hidden, tweak) in variants() {
            let cfgs = cells(&group, &hidden, tweak);
            let what = format!("{hidden:?} {:?}", cfgs[0].model.activation);
            let mut together: Vec<MemorySink> = cfgs.iter().map(|_| MemorySink::default()).collect();
            {
                let mut refs: Vec<&mut dyn MetricsSink> =
                    together.iter_mut().map(|s| s as &mut dyn MetricsSink).collect();
                train_group_with(&cfgs, Device::Cpu, &mut refs, &mut |_, _| {}, true).unwrap();
            }
            for (c, grouped) in cfgs.iter().zip(&together) {
                let mut alone = MemorySink::default();
                let data = crate::train::inputs::load(c, Device::Cpu).unwrap().0;
                train_alone(c, &data, Device::Cpu, &mut alone, &mut |_, _| {}).unwrap();
                let what = format!("{what}, seed {} λ {}", c.seed, c.loss.lambda);
                assert_eq!(grouped.best_step, alone.best_step, "{what}");
                for ((name, x), (_, y)) in grouped.model.iter().flatten().zip(alone.model.iter().flatten()) {
                    assert!(x.equal(y), "{what}: kept {name}");
                }
                let (g, a) = (bits(grouped), bits(&alone));
                assert!(!g.1.is_empty() && g.0.len() > 30, "{what}: metrics and final rewards reported");
                let differing = g.0.iter().zip(&a.0).filter(|(x, y)| x != y).count();
                assert_eq!(g.0.len(), a.0.len(), "{what}");
                assert_eq!(differing, 0, "{what}: {differing} of {} metric values differ", g.0.len());
                assert_eq!(g.1, a.1, "{what}: final rewards");
            }
        }
    }

    #[test]
    fn grouping_ignores_seed_and_lambda_only() {
        let a = cfg(0, 0.0, Some(vec![16]));
        assert!(compatible(&a, &cfg(5, 0.1, Some(vec![16]))));
        assert!(!compatible(&a, &cfg(0, 0.1, Some(vec![32]))));
        let mut c = cfg(0, 0.1, Some(vec![16]));
        c.loss.regularizer = Regularizer::L2;
        assert!(compatible(&a, &c), "λ = 0 joins any kind");
        assert!(!compatible(&cfg(0, 0.1, Some(vec![16])), &c), "two kinds with λ > 0 do not mix");
    }
}
