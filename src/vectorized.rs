//! Training K cells of a sweep as one batched program.
//!
//! Cells that differ only in their seed and λ (same data shape, model, optimizer, schedule)
//! are stacked: weights `[K, out, in]`, one batched matmul per layer, per-cell losses summed
//! before one backward pass. Each cell keeps its own data (generated from its seed), its own
//! initialisation and batch stream (the same draws as [`crate::train::train`]), its own λ
//! and, because Adam and SGD update every element on its own, its own optimizer state. Every
//! cell reports through its own sink, as if it had been trained alone; results equal the
//! one-cell path up to float32 rounding of batched against plain matmuls (a test checks 1e-5).

use tch::{Device, Kind, Tensor, nn, nn::OptimizerConfig};

use crate::config::{DataKind, ModelKind, OptimizerKind, RegularizerKind, RunConfig};
use crate::data::{self, Dataset};
use crate::error::{Error, Result};
use crate::model::activate;
use crate::sink::MetricsSink;
use crate::train::{BatchStream, Outcome, build_model, report_eval, report_rewards};

/// The part of a config that must be equal for cells to share a batched program: everything
/// but the seed and λ (a λ = 0 cell joins the cells of any regularizer kind).
pub fn group_key(cfg: &RunConfig) -> Option<String> {
    if cfg.data.kind != DataKind::Synthetic || cfg.loss.margin_from_data {
        return None;
    }
    let mut c = cfg.clone();
    c.seed = 0;
    c.loss.lambda = 0.0;
    c.loss.regularizer = RegularizerKind::None;
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

/// One stacked linear layer: `ws` `[K, out, in]`, `bs` `[K, out]`.
struct Layer {
    ws: Tensor,
    bs: Tensor,
}

impl Layer {
    /// `[K, N, in]` → `[K, N, out]`.
    fn forward(&self, xs: &Tensor) -> Tensor {
        // bias + xs · Wᵀ in one batched kernel.
        self.bs.unsqueeze(1).baddbmm(xs, &self.ws.transpose(1, 2), 1.0, 1.0)
    }
}

/// Trains compatible cells together; returns each cell's outcome. `sinks[k]` receives cell
/// k's metrics and final rewards. A cell that diverges is reported as diverged at that
/// evaluation and no longer evaluated; the others go on.
pub fn train_group(
    cfgs: &[RunConfig],
    device: Device,
    sinks: &mut [&mut dyn MetricsSink],
    on_step: &mut dyn FnMut(usize),
) -> Result<Vec<Outcome>> {
    let k = cfgs.len();
    if k == 0 || sinks.len() != k || !cfgs.iter().all(|c| compatible(&cfgs[0], c)) {
        return Err(Error::Run("train_group needs one sink per cell and compatible cells".into()));
    }
    let base = &cfgs[0];
    // Data: each cell's own, stacked as [K·R, D] with pair tables offset into it.
    let datasets: Vec<Dataset> = cfgs
        .iter()
        .map(|c| data::load(&c.data, c.seed).map(|(p, _)| Dataset::new(&p, device)))
        .collect::<Result<_>>()?;
    let (r, d) = (datasets[0].features.size()[0], datasets[0].dim as i64);
    let n_train = datasets[0].train.n_pairs;
    if n_train == 0 || datasets.iter().any(|ds| ds.train.n_pairs != n_train) {
        return Err(Error::Run("cells of a group need the same, non-zero number of training pairs".into()));
    }
    let features = Tensor::stack(&datasets.iter().map(|ds| &ds.features).collect::<Vec<_>>(), 0); // [K, R, D]
    let flat = features.view([k as i64 * r, d]);
    let pairs = Tensor::stack(
        &datasets
            .iter()
            .enumerate()
            .map(|(i, ds)| Tensor::stack(&[&ds.train.chosen, &ds.train.rejected], 0) + i as i64 * r)
            .collect::<Vec<_>>(),
        0,
    ); // [K, 2, P]

    // Parameters: each cell's initial weights, stacked into one VarStore for the optimizer.
    let vs = nn::VarStore::new(device);
    let models: Vec<_> = cfgs.iter().zip(&datasets).map(|(c, ds)| build_model(c, ds, device).0).collect();
    let mut names: Vec<String> =
        models[0].variables().into_keys().filter(|n| n.ends_with(".weight")).collect();
    names.sort_by_key(|n| (n.starts_with("head"), n.clone()));
    let layers: Vec<Layer> = names
        .iter()
        .map(|w| {
            let layer = w.trim_end_matches(".weight");
            let stack = |name: &str| {
                Tensor::stack(&models.iter().map(|m| m.variables()[name].detach()).collect::<Vec<_>>(), 0)
            };
            let path = vs.root() / layer;
            Layer {
                ws: path.var_copy("weight", &stack(&format!("{layer}.weight"))),
                bs: path.var_copy("bias", &stack(&format!("{layer}.bias"))),
            }
        })
        .collect();
    drop(models);
    let activation = base.model.activation;
    let forward = |xs: &Tensor| -> Tensor {
        let mut h = xs.shallow_clone();
        for (i, l) in layers.iter().enumerate() {
            h = l.forward(&h);
            if i + 1 < layers.len() {
                h = activate(&h, activation);
            }
        }
        h.squeeze_dim(-1)
    };
    let t = &base.train;
    let mut opt = match t.optimizer {
        OptimizerKind::Adam => nn::Adam { wd: t.weight_decay, ..Default::default() }.build(&vs, t.lr)?,
        OptimizerKind::Sgd => {
            nn::Sgd { momentum: t.momentum, wd: t.weight_decay, ..Default::default() }.build(&vs, t.lr)?
        }
    };
    let lambdas =
        Tensor::from_slice(&cfgs.iter().map(|c| c.loss.lambda as f32).collect::<Vec<_>>()).to_device(device);
    let reg_kind =
        cfgs.iter().find(|c| c.loss.lambda != 0.0).map_or(RegularizerKind::None, |c| c.loss.regularizer);
    let b = t.batch_size as i64;
    let seeds: Vec<u64> = cfgs.iter().map(|c| c.seed).collect();
    let mut batches = BatchStream::many(&seeds, n_train, t.batch_size, device);
    let mut outcomes: Vec<Option<Outcome>> = vec![None; k];

    let evaluate = |step: usize,
                    outcomes: &mut Vec<Option<Outcome>>,
                    sinks: &mut [&mut dyn MetricsSink]|
     -> Result<()> {
        let rewards = tch::no_grad(|| forward(&features)); // [K, R]
        let head = &layers[layers.len() - 1].ws;
        for i in 0..k {
            if outcomes[i].is_some() {
                continue;
            }
            let norm = head.get(i as i64).norm().double_value(&[]);
            if let Some(o) =
                report_eval(&rewards.get(i as i64), norm, &datasets[i], &cfgs[i], step, &mut *sinks[i])?
            {
                report_rewards(&rewards.get(i as i64), &datasets[i], &mut *sinks[i])?;
                outcomes[i] = Some(o);
            }
        }
        Ok(())
    };
    evaluate(0, &mut outcomes, sinks)?;
    for step in 1..=t.steps {
        // [K, B] batch indices, each cell from its own stream, gathered from its own pairs.
        let idx = if k == 1 { batches.next().unsqueeze(0) } else { batches.next() };
        let rows = pairs.gather(2, &idx.unsqueeze(1).expand([k as i64, 2, b], false), false).view([-1]);
        let rr = forward(&flat.index_select(0, &rows).view([k as i64, 2 * b, d])); // [K, 2B]
        let (r_a, r_b) = (rr.narrow(1, 0, b), rr.narrow(1, b, b));
        let z = &r_a - &r_b;
        let z = if base.loss.margin == 0.0 { z } else { z - base.loss.margin };
        let pair = -z.log_sigmoid().mean_dim(1, false, Kind::Float); // [K]
        let reg = match reg_kind {
            RegularizerKind::None => None,
            RegularizerKind::PairSumSq => Some((&r_a + &r_b).square().mean_dim(1, false, Kind::Float)),
            RegularizerKind::BatchSum => {
                Some(Tensor::cat(&[&r_a, &r_b], 1).mean_dim(1, false, Kind::Float).square() * b as f64)
            }
            RegularizerKind::L2 => Some((r_a.square() + r_b.square()).mean_dim(1, false, Kind::Float)),
        };
        let per_cell = match reg {
            Some(reg) => pair + reg * &lambdas,
            None => pair,
        };
        // Cells own disjoint parameters, so the gradient of the sum is each cell's gradient.
        opt.backward_step(&per_cell.sum(Kind::Float));
        on_step(step);
        if step % base.eval.every == 0 || step == t.steps {
            evaluate(step, &mut outcomes, sinks)?;
        }
        if outcomes.iter().all(Option::is_some) {
            break;
        }
    }
    let rewards = tch::no_grad(|| forward(&features));
    let mut done = Vec::with_capacity(k);
    for (i, o) in outcomes.into_iter().enumerate() {
        match o {
            Some(o) => done.push(o),
            None => {
                report_rewards(&rewards.get(i as i64), &datasets[i], &mut *sinks[i])?;
                done.push(Outcome::Finished);
            }
        }
    }
    let _ = ModelKind::Linear; // both kinds stack: a linear model is a head alone
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DataConfig, EvalConfig, LossConfig, ModelConfig, TrainConfig};
    use crate::data::Split;
    use crate::sink::MemorySink;

    fn cfg(seed: u64, lambda: f64, hidden: Option<Vec<usize>>) -> RunConfig {
        RunConfig {
            seed,
            data: DataConfig { n_prompts: 80, feature_dim: 6, ..DataConfig::default() },
            model: ModelConfig {
                kind: if hidden.is_some() { ModelKind::Mlp } else { ModelKind::Linear },
                hidden,
                ..ModelConfig::default()
            },
            train: TrainConfig { steps: 120, batch_size: 32, lr: 1e-2, ..TrainConfig::default() },
            loss: LossConfig { lambda, ..LossConfig::default() },
            eval: EvalConfig { every: 40 },
        }
        .resolve()
    }

    /// Every metric of every cell equals the one-cell path within 1e-5.
    #[test]
    fn equals_one_cell_at_a_time() {
        for hidden in [Some(vec![16]), None] {
            let cfgs =
                vec![cfg(0, 0.0, hidden.clone()), cfg(1, 0.01, hidden.clone()), cfg(2, 0.5, hidden.clone())];
            let mut batched: Vec<MemorySink> = (0..3).map(|_| MemorySink::default()).collect();
            {
                let mut refs: Vec<&mut dyn MetricsSink> =
                    batched.iter_mut().map(|s| s as &mut dyn MetricsSink).collect();
                let outcomes = train_group(&cfgs, Device::Cpu, &mut refs, &mut |_| {}).unwrap();
                assert!(outcomes.iter().all(|o| *o == Outcome::Finished));
            }
            for (c, got) in cfgs.iter().zip(&batched) {
                let (p, _) = data::load(&c.data, c.seed).unwrap();
                let ds = Dataset::new(&p, Device::Cpu);
                let mut alone = MemorySink::default();
                crate::train::train(c, &ds, Device::Cpu, &mut alone, &mut |_, _| {}).unwrap();
                assert_eq!(got.rows.len(), alone.rows.len());
                for (x, y) in got.rows.iter().zip(&alone.rows) {
                    assert_eq!((x.step, x.split, x.name), (y.step, y.split, y.name));
                    let tol = 1e-5 * y.value.abs().max(1.0);
                    assert!(
                        (x.value - y.value).abs() <= tol,
                        "{} {:?} step {}: {} vs {}",
                        x.name,
                        x.split,
                        x.step,
                        x.value,
                        y.value
                    );
                }
                assert_eq!(got.rewards.len(), alone.rewards.len());
                for (x, y) in got.rewards.iter().zip(&alone.rewards) {
                    assert!((x.reward - y.reward).abs() <= 1e-5 * y.reward.abs().max(1.0));
                }
                assert!(got.last(Split::Val, "accuracy").is_some());
            }
        }
    }

    #[test]
    fn grouping_ignores_seed_and_lambda_only() {
        let a = cfg(0, 0.0, Some(vec![16]));
        assert!(compatible(&a, &cfg(5, 0.1, Some(vec![16]))));
        assert!(!compatible(&a, &cfg(0, 0.1, Some(vec![32]))));
        let mut c = cfg(0, 0.1, Some(vec![16]));
        c.loss.regularizer = RegularizerKind::L2;
        assert!(compatible(&a, &c), "λ = 0 joins any kind");
        assert!(!compatible(&cfg(0, 0.1, Some(vec![16])), &c), "two kinds with λ > 0 do not mix");
    }
}
