//! The batched engine: K cells of a sweep trained as one program, without autograd.
//!
//! Cells that differ only in their seed and λ (same data shape, model, optimizer, schedule)
//! are stacked into one [`StackedMlp`] ([`stacked`]): one batched matmul per layer for all
//! cells, a hand-derived gradient ([`loss_grad`], then [`StackedMlp::backward`]) and one
//! optimizer update over all parameters ([`FlatOptimizer`]); on the CPU, host loops
//! ([`kernels`], the crate's only unsafe functions) replace kernels where that is faster. Each cell
//! keeps its own data (generated from its seed), its own initialisation and batch stream (the
//! same draws as the autograd trainer's: `model::build_model`, `train::batches`), its own λ and, because Adam and
//! SGD update every element on its own, its own optimizer state. A seed's cells listed
//! together share what they have in common, their data and batches: generated, tabled and
//! gathered once, and multiplied with each cell's weights ([`StackedMlp::share_inputs`]),
//! which changes no bit of any cell's numbers. Every cell reports through
//! its own sink, as if it had been trained alone; results equal the autograd trainer's up to
//! float32 rounding (`train::engine_equality` checks 1e-5). Nothing here uses that trainer.

mod stacked;

use tch::{Device, Kind, Tensor};

use super::batches::BatchStream;
use super::early_stopping::{EarlyStopping, Verdict};
use super::kernels;
use super::optim::FlatOptimizer;
use super::schedule;
use super::step_loss::StepLoss;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::evaluator::{Truths, report_eval_watching, report_rewards};
use crate::eval::{MetricsSink, Outcome, TrainedModel};
use crate::experiment::config::{
    DataKind, Finetune, ModelKind, Regularizer, RunConfig, SaveModel, TextFeatures,
};
use crate::model::build_model;
use crate::objective::{Objective, loss_grad, loss_grad_host};
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
/// On this project's AMD EPYC the same numbers as that cell in a group (tested bit for bit for
/// one ReLU layer, README, Reproducibility), and as the autograd trainer to float32 rounding.
pub fn train_alone(
    cfg: &RunConfig,
    data: &Dataset,
    device: Device,
    sink: &mut dyn MetricsSink,
    on_step: &mut dyn FnMut(usize, &StepLoss),
) -> Result<Outcome> {
    if group_key(cfg).is_none() {
        return Err(Error::Run("the batched engine cannot train this cell (train it with `train`)".into()));
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

/// The engine: `cfgs[k]` trained on `datasets[k]`, reporting to `sinks[k]`.
fn train_stack(
    cfgs: &[RunConfig],
    datasets: &[&Dataset],
    device: Device,
    sinks: &mut [&mut dyn MetricsSink],
    on_step: &mut dyn FnMut(usize, &StepLoss),
    host_loops: bool,
) -> Result<Vec<Outcome>> {
    let cpu_loops = host_loops && device == Device::Cpu;
    let k = cfgs.len();
    if k == 0 || sinks.len() != k || datasets.len() != k || !cfgs.iter().all(|c| compatible(&cfgs[0], c)) {
        return Err(Error::Run(
            "train_group needs one data set and sink per cell and compatible cells".into(),
        ));
    }
    let base = &cfgs[0];
    let n_train = datasets[0].train.n_pairs;
    if n_train == 0 || datasets.iter().any(|ds| ds.train.n_pairs != n_train) {
        return Err(Error::Run("cells of a group need the same, non-zero number of training pairs".into()));
    }
    // Inputs shared by a seed's cells: their data is stacked, tabled and gathered once.
    let counts = input_counts(cfgs, datasets);
    let firsts: Vec<usize> =
        counts.iter().scan(0, |next, &c| Some(std::mem::replace(next, *next + c))).collect();
    let n_inputs = firsts.len();
    let input_of: Vec<usize> =
        counts.iter().enumerate().flat_map(|(u, &c)| std::iter::repeat_n(u, c)).collect();
    let inputs: Vec<&Dataset> = firsts.iter().map(|&i| datasets[i]).collect();
    // Every response's features, ones appended: [U, R, D + 1] (evaluation input).
    let features = StackedMlp::stack_with_ones(&inputs.iter().map(|ds| &ds.features).collect::<Vec<_>>());
    let d1 = features.size()[2];
    // Training pairs as rows of a table [U·P, 2·(D + 1)], chosen then rejected features: a
    // batch is one row gather, its rows interleaved (chosen, rejected, chosen, …). On the CPU
    // the table is built on the host, row by row from the features (no tensor copies in
    // between), and read into one reused batch buffer.
    let (table_host, pair_table) = if cpu_loops {
        // SAFETY: nothing writes `features` while this block reads it.
        let all = unsafe { kernels::f32s(&features) }.ok_or_else(|| {
            Error::Run("the stacked features are not a contiguous float32 CPU tensor".into())
        })?;
        let (width, per_cell) = (d1 as usize, (features.size()[1] * d1) as usize);
        let mut table = Vec::with_capacity(n_inputs * n_train * 2 * width);
        for (f, ds) in all.chunks_exact(per_cell).zip(&inputs) {
            for &(a, b) in &ds.train.pairs_host {
                table.extend_from_slice(&f[a * width..][..width]);
                table.extend_from_slice(&f[b * width..][..width]);
            }
        }
        (Some(table), None)
    } else {
        let rows: Vec<Tensor> = features
            .unbind(0)
            .iter()
            .zip(&inputs)
            .map(|(f, ds)| {
                Tensor::cat(&[f.index_select(0, &ds.train.chosen), f.index_select(0, &ds.train.rejected)], 1)
            })
            .collect();
        (None, Some(Tensor::cat(&rows, 0)))
    };
    // Input u's pairs start at row u·P.
    let offsets =
        Tensor::arange_start_step(0, n_inputs as i64 * n_train as i64, n_train as i64, (Kind::Int64, device))
            .view([n_inputs as i64, 1]);

    // Parameters: each cell's initial weights (its own seed's draws), stacked.
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
    let mut mlp = StackedMlp::new(&layers, base.model.activation);
    mlp.use_host_kernels(host_loops);
    mlp.share_inputs(&counts);
    // The fused host pass reads a shared input as it is; other paths take one input a cell,
    // so their batches are gathered a cell (from the shared table) and their evaluation input
    // is copied a cell once, here.
    let per_input = cpu_loops && mlp.fused_on_host();
    let features = if per_input { features } else { mlp.per_cell(&features) };
    let entry_input: Vec<usize> = if per_input { (0..n_inputs).collect() } else { input_of.clone() };
    let entries = entry_input.len() as i64;
    let input_of_cell = mlp.input_of_cells();
    drop((layers, models));
    let mut opt = FlatOptimizer::new(&base.train, &mlp.params);
    if !host_loops {
        opt = opt.without_host_loops();
    }
    let lambda_host: Vec<f64> = cfgs.iter().map(|c| c.loss.lambda).collect();
    let lambdas = Tensor::from_slice(&cfgs.iter().map(|c| c.loss.lambda as f32).collect::<Vec<_>>())
        .to_device(device)
        .view([k as i64, 1]);
    // The group's regularizer: that of its cells with λ > 0 (a λ = 0 cell joins any kind).
    let penalty =
        cfgs.iter().find(|c| c.loss.lambda != 0.0).map_or(Regularizer::None, |c| c.loss.regularizer);
    let t = &base.train;
    let seeds: Vec<u64> = firsts.iter().map(|&i| cfgs[i].seed).collect();
    let mut batches = BatchStream::many(&seeds, n_train, t.batch_size, t.sampling, device);
    let b_full = batches.batch() as i64;
    let x_full = Tensor::zeros([entries, 2 * b_full, d1], (Kind::Float, device));
    let mut outcomes: Vec<Option<Outcome>> = vec![None; k];
    let mut stoppers: Vec<Option<EarlyStopping>> =
        cfgs.iter().map(|c| EarlyStopping::new(&c.train)).collect();
    // Each cell's parameters at its best evaluation (early stopping).
    let mut best: Vec<Option<Vec<Tensor>>> = (0..k).map(|_| None).collect();
    let truths: Vec<Truths> = inputs.iter().map(|ds| Truths::new(ds)).collect();
    // Gradients of the micro-batches of one step, summed (accumulation only).
    let accumulate = t.gradient_accumulation;
    let mut acc = (accumulate > 1).then(|| mlp.grad.zeros_like());
    let objectives: Vec<Objective> = cfgs.iter().map(|c| Objective::new(&c.loss)).collect();
    // The rewards of the step's last micro-batch, for its loss (on request).
    let mut step_rewards = Tensor::new();

    let evaluate = |mlp: &StackedMlp,
                    step: usize,
                    outcomes: &mut Vec<Option<Outcome>>,
                    stoppers: &mut Vec<Option<EarlyStopping>>,
                    best: &mut Vec<Option<Vec<Tensor>>>,
                    sinks: &mut [&mut dyn MetricsSink]|
     -> Result<()> {
        let rewards = mlp.forward(&features); // [K, R]
        let norms =
            Vec::<f64>::try_from(mlp.head_weight_norms().to_kind(Kind::Double).to_device(Device::Cpu))?;
        for i in 0..k {
            if outcomes[i].is_some() {
                continue;
            }
            let watch = stoppers[i].as_ref().map(|e| (e.split, e.metric.as_str()));
            let (diverged, watched) = report_eval_watching(
                &rewards.get(i as i64),
                norms[i],
                datasets[i],
                &truths[input_of[i]],
                &cfgs[i],
                step,
                &mut *sinks[i],
                watch,
            )?;
            if let Some(o) = diverged {
                report_rewards(&rewards.get(i as i64), datasets[i], cfgs[i].eval.rewards, &mut *sinks[i])?;
                outcomes[i] = Some(o);
            } else if let Some(e) = &mut stoppers[i] {
                match e.observe(step, watched) {
                    Verdict::Improved => best[i] = Some(mlp.cell_parameters(i as i64)),
                    Verdict::Stop => outcomes[i] = Some(Outcome::Finished),
                    Verdict::Continue => {}
                }
            }
        }
        Ok(())
    };
    evaluate(&mlp, 0, &mut outcomes, &mut stoppers, &mut best, sinks)?;
    let mut step = 0;
    while step < t.steps && !outcomes.iter().all(Option::is_some) {
        step += 1;
        if schedule::varies(t) {
            opt.set_lr(schedule::lr_at(t, step));
        }
        for micro in 0..accumulate {
            // [U, b] pair indices, each input from its own stream, offset into its own pairs.
            let idx = if n_inputs == 1 { batches.next().unsqueeze(0) } else { batches.next() };
            let b = idx.size()[1];
            // A partial batch (the end of an epoch) gets a buffer of its own size.
            let x_buf = if b == b_full {
                x_full.shallow_clone()
            } else {
                Tensor::zeros([entries, 2 * b, d1], (Kind::Float, device))
            };
            let x = match &table_host {
                Some(table) => {
                    // On the CPU the row copies overlap their cache misses in one loop.
                    // SAFETY: `x_buf` is read and written only through the previous
                    // micro-batch's forward and backward passes, done by now (its tape is
                    // dropped), and `idx` is a fresh tensor of the batch stream that nothing
                    // writes.
                    let buf = unsafe { kernels::f32s_mut(&x_buf) }.expect("a float32 CPU buffer");
                    let idx = unsafe { kernels::i64s(&idx) }.expect("int64 CPU indices");
                    let (width, b) = (2 * d1 as usize, b as usize);
                    for (i, dst) in buf.chunks_exact_mut(width).enumerate() {
                        // Entry i / b (an input, or a cell reading its input), pair i % b.
                        let u = entry_input[i / b];
                        let row = u * n_train + idx[u * b + i % b] as usize;
                        dst.copy_from_slice(&table[row * width..][..width]);
                    }
                    x_buf
                }
                None => {
                    let rows = idx + &offsets; // [U, b]
                    let rows = if per_input { rows } else { rows.index_select(0, &input_of_cell) };
                    pair_table
                        .as_ref()
                        .expect("a pair table off the CPU's host loops")
                        .index_select(0, &rows.view([-1]))
                        .view([entries, 2 * b, d1])
                }
            };
            let (rr, tape) = mlp.forward_train(&x); // [K, 2b], interleaved
            // ∂L/∂rewards [K, 2b]: on the CPU one host loop beats a dozen small kernels.
            let mut dr = if cpu_loops {
                let host = Vec::<f32>::try_from(rr.view([-1]))?;
                let dr = loss_grad_host(&host, b as usize, penalty, &lambda_host, base.loss.margin);
                Tensor::from_slice(&dr).view([k as i64, 2 * b])
            } else {
                let rr = rr.view([k as i64, b, 2]);
                let (d_a, d_b) =
                    loss_grad(&rr.select(2, 0), &rr.select(2, 1), penalty, &lambdas, base.loss.margin);
                Tensor::stack(&[d_a, d_b], 2).view([k as i64, 2 * b])
            };
            if accumulate > 1 {
                // Each micro-batch's loss counts 1/accumulate, as in the autograd trainer.
                dr /= accumulate as f64;
            }
            mlp.backward(&dr, &tape);
            step_rewards = rr;
            if let Some(acc) = &mut acc {
                if micro == 0 {
                    acc.copy_(&mlp.grad);
                } else {
                    let _ = acc.g_add_(&mlp.grad);
                }
            }
        }
        let grad = acc.as_ref().unwrap_or(&mlp.grad);
        if t.max_grad_norm > 0.0 {
            mlp.clip_per_cell(grad, t.max_grad_norm);
        }
        opt.step(&mut mlp.params, grad);
        on_step(step, &StepLoss::Rewards { rewards: &step_rewards, objectives: &objectives });
        if step % base.eval.every == 0 || step == t.steps {
            evaluate(&mlp, step, &mut outcomes, &mut stoppers, &mut best, sinks)?;
        }
    }
    // Early-stopped cells (and finished cells with early stopping) keep their best weights.
    for i in 0..k {
        if let (Some(snapshot), None | Some(Outcome::Finished)) = (&best[i], outcomes[i]) {
            mlp.set_cell_parameters(i as i64, snapshot);
        }
    }
    let rewards = mlp.forward(&features);
    let mut done = Vec::with_capacity(k);
    for (i, o) in outcomes.into_iter().enumerate() {
        if let Some(d @ Outcome::Diverged { .. }) = o {
            done.push(d);
            continue;
        }
        let rows = report_rewards(&rewards.get(i as i64), datasets[i], cfgs[i].eval.rewards, &mut *sinks[i])?;
        if let Some(best_step) = stoppers[i].as_ref().and_then(EarlyStopping::best_step) {
            sinks[i].record_best_step(best_step)?;
        }
        if cfgs[i].train.save != SaveModel::None {
            let (reward_mean, reward_std) = TrainedModel::train_statistics(&rows);
            sinks[i].record_model(&TrainedModel {
                tensors: mlp.export_cell(i as i64),
                engine: "batched",
                config_json: cfgs[i].canonical_json(),
                step: stoppers[i].as_ref().and_then(EarlyStopping::best_step).unwrap_or(step),
                reward_mean,
                reward_std,
            })?;
        }
        done.push(Outcome::Finished);
    }
    Ok(done)
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
