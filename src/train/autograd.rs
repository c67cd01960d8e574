//! The one-cell training loop, differentiated by autograd: device → data → VarStore → model →
//! optimizer → steps → eval. This is the reference every other trainer is tested against.
//!
//! Metrics leave through a [`MetricsSink`]; the loop never touches storage. The host reads
//! tensors only at evaluation steps, so steps in between queue work without synchronising.

use tch::{Device, Tensor, nn, nn::OptimizerConfig};

use super::batches::{BatchStream, INIT_STREAM, stream};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::evaluator::{Truths, report_eval, report_rewards};
use crate::eval::{MetricsSink, Outcome};
use crate::experiment::config::{Finetune, ModelKind, OptimizerKind, RunConfig, TrainConfig};
use crate::model::encoder::{Checkpoint, EncoderRewardModel};
use crate::model::{RewardModel, Scorer};
use crate::objective::Objective;

/// Trains one run on `data` and reports metrics at step 0, every `eval.every` steps and after
/// the last step. `on_step` gets each step's number and its total loss (a scalar on the device:
/// reading it forces a host synchronisation, so progress display only uses the step).
///
/// Deterministic on CPU for a given config, seed and LibTorch thread count: initialisation and
/// batch sampling draw from ChaCha8 streams of the run's seed (stream 0 is the data's), never
/// from LibTorch's process-wide generator, so runs in other threads cannot disturb them.
pub fn train(
    cfg: &RunConfig,
    data: &Dataset,
    device: Device,
    sink: &mut dyn MetricsSink,
    on_step: &mut dyn FnMut(usize, &Tensor),
) -> Result<Outcome> {
    let n_train = data.train.n_pairs;
    if n_train == 0 {
        return Err(Error::Run("the training split has no pairs".into()));
    }
    // Model and optimizer.
    let (vs, model) = build_model(cfg, data, device)?;
    let mut opt = optimizer(&vs, &cfg.train)?;
    let objective = Objective::new(&cfg.loss);
    let b = cfg.train.batch_size as i64;
    let accumulate = cfg.train.gradient_accumulation_steps.unwrap_or(1) as i64;
    let mut batches = BatchStream::new(cfg.seed, n_train, cfg.train.batch_size, device);
    let pairs = Tensor::stack(&[&data.train.chosen, &data.train.rejected], 0);
    let train_margins = data.train.margins.as_ref().filter(|_| cfg.loss.margin_from_data);

    let truths = Truths::new(data);
    if let Some(outcome) = evaluate(&model, data, &truths, cfg, 0, sink)? {
        return finish(outcome, &model, data, sink);
    }
    for step in 1..=cfg.train.steps {
        // Batch: B training pairs drawn with replacement; one forward over [chosen; rejected]
        // per micro-batch of B / A pairs, gradients summed (each micro-batch's mean loss
        // weighted 1 / A: the batch mean when A = 1).
        let idx = batches.next();
        let loss = |idx: &Tensor| {
            let m = idx.size()[0];
            // [chosen; rejected] rows: one gather from the [2, P] pair table.
            let rows = pairs.index_select(1, idx).view([-1]);
            let r = model.forward_t(&data.features.index_select(0, &rows), true);
            let margins = train_margins.map(|t| t.index_select(0, idx));
            objective.loss(&r.narrow(0, 0, m), &r.narrow(0, m, m), margins.as_ref()).total
        };
        let total = if accumulate == 1 {
            let total = loss(&idx);
            opt.backward_step(&total);
            total
        } else {
            opt.zero_grad();
            let mut total = Tensor::zeros([], (tch::Kind::Float, device));
            for micro in idx.chunk(accumulate, 0) {
                let share = loss(&micro) * (micro.size()[0] as f64 / b as f64);
                share.backward();
                total += share.detach();
            }
            opt.step();
            total
        };
        on_step(step, &total);

        if (step % cfg.eval.every == 0 || step == cfg.train.steps)
            && let Some(outcome) = evaluate(&model, data, &truths, cfg, step, sink)?
        {
            return finish(outcome, &model, data, sink);
        }
    }
    finish(Outcome::Finished, &model, data, sink)
}

/// Reports the final reward of every response in a split with pairs, and returns `outcome`.
fn finish(outcome: Outcome, model: &Scorer, data: &Dataset, sink: &mut dyn MetricsSink) -> Result<Outcome> {
    let rewards = model.rewards(&data.features);
    report_rewards(&rewards, data, sink)?;
    Ok(outcome)
}

/// Evaluates every non-empty split under no-grad and reports it; returns `Some(Diverged)` if
/// the training loss is not finite.
fn evaluate(
    model: &Scorer,
    data: &Dataset,
    truths: &Truths,
    cfg: &RunConfig,
    step: usize,
    sink: &mut dyn MetricsSink,
) -> Result<Option<Outcome>> {
    let rewards = model.rewards(&data.features);
    report_eval(&rewards, model.head_weight_norm().double_value(&[]), data, truths, cfg, step, sink)
}

/// The run's model with its initial weights (from the seed's initialisation stream): a
/// fine-tuned encoder's from its checkpoint, its head's from the stream.
pub fn build_model(cfg: &RunConfig, data: &Dataset, device: Device) -> Result<(nn::VarStore, Scorer)> {
    let vs = nn::VarStore::new(device);
    let mut rng = stream(cfg.seed, INIT_STREAM);
    let model = if cfg.model.kind == ModelKind::Encoder && cfg.model.finetune() != Finetune::None {
        let ck = Checkpoint::open(&cfg.model)
            .map_err(|(key, message)| Error::Input(format!("{key}: {message}")))?;
        Scorer::Encoder(Box::new(
            EncoderRewardModel::new(&vs.root(), &ck, &cfg.model, &mut rng).map_err(Error::Input)?,
        ))
    } else {
        Scorer::Features(RewardModel::new(&vs.root(), data.dim, &cfg.model, &mut rng, data.buckets))
    };
    Ok((vs, model))
}

fn optimizer(vs: &nn::VarStore, t: &TrainConfig) -> Result<nn::Optimizer> {
    let opt = match t.optimizer {
        OptimizerKind::Adam => nn::Adam { wd: t.weight_decay, ..Default::default() }.build(vs, t.lr)?,
        OptimizerKind::Sgd => {
            nn::Sgd { momentum: t.momentum, wd: t.weight_decay, ..Default::default() }.build(vs, t.lr)?
        }
    };
    Ok(opt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Split, synthetic};
    use crate::eval::MemorySink;
    use crate::experiment::config::{DataConfig, EvalConfig, LossConfig, ModelConfig, TrainConfig};

    fn small(seed: u64, lambda: f64) -> RunConfig {
        RunConfig {
            seed,
            data: DataConfig { n_prompts: 120, feature_dim: 8, ..DataConfig::default() },
            model: ModelConfig { hidden: Some(vec![16]), ..ModelConfig::default() },
            train: TrainConfig { steps: 200, batch_size: 32, lr: 1e-2, ..TrainConfig::default() },
            loss: LossConfig { lambda, ..LossConfig::default() },
            eval: EvalConfig { every: 50 },
        }
        .resolve()
    }

    fn run(cfg: &RunConfig) -> (Outcome, MemorySink) {
        let prefs = synthetic::generate(&cfg.data, cfg.seed);
        let data = Dataset::new(&prefs, Device::Cpu);
        let mut sink = MemorySink::default();
        let outcome = train(cfg, &data, Device::Cpu, &mut sink, &mut |_, _| {}).unwrap();
        (outcome, sink)
    }

    #[test]
    fn final_rewards_are_reported_for_every_evaluated_response() {
        let cfg = small(0, 0.0);
        let (_, sink) = run(&cfg);
        // 120 prompts × 4 responses, all in train or val (no test prompts).
        assert_eq!(sink.rewards.len(), 480);
        let prefs = synthetic::generate(&cfg.data, cfg.seed);
        for row in &sink.rewards {
            assert_eq!(row.prompt, prefs.prompt_of[row.response]);
            assert_eq!(row.true_reward, Some(prefs.true_reward.as_ref().unwrap()[row.response]));
            assert!(row.reward.is_finite());
        }
    }

    #[test]
    fn loss_falls_and_evals_at_the_right_steps() {
        let (outcome, sink) = run(&small(0, 0.0));
        assert_eq!(outcome, Outcome::Finished);
        let curve = sink.curve(Split::Train, "loss_pair");
        assert_eq!(curve.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 50, 100, 150, 200]);
        assert!(curve[4].1 < 0.8 * curve[0].1, "{curve:?}");
        assert!(sink.last(Split::Val, "accuracy").unwrap() > 0.7);
        assert!(sink.curve(Split::Test, "loss_pair").is_empty(), "no test prompts, no test rows");
    }

    #[test]
    fn same_seed_gives_identical_numbers() {
        let (_, a) = run(&small(3, 0.01));
        let (_, b) = run(&small(3, 0.01));
        assert_eq!(a.rows.len(), b.rows.len());
        for (x, y) in a.rows.iter().zip(&b.rows) {
            assert_eq!(x.value.to_bits(), y.value.to_bits(), "{} at {}", x.name, x.step);
        }
        let (_, c) = run(&small(4, 0.01));
        assert_ne!(a.last(Split::Train, "loss_total"), c.last(Split::Train, "loss_total"));
    }

    #[test]
    fn tiny_learning_rate_leaves_rewards_unchanged() {
        let mut cfg = small(1, 0.0);
        cfg.train.optimizer = OptimizerKind::Sgd;
        cfg.train.lr = 1e-12;
        let (_, sink) = run(&cfg);
        let curve = sink.curve(Split::Train, "reward_mean");
        assert!((curve[0].1 - curve[curve.len() - 1].1).abs() < 1e-8, "{curve:?}");
    }

    #[test]
    fn regularizer_pins_pair_sums() {
        let (_, free) = run(&small(2, 0.0));
        let (_, pinned) = run(&small(2, 1.0));
        let free_sum = free.last(Split::Train, "pair_sum_abs_mean").unwrap();
        let pinned_sum = pinned.last(Split::Train, "pair_sum_abs_mean").unwrap();
        assert!(pinned_sum < 0.5 * free_sum, "λ = 1: {pinned_sum}, λ = 0: {free_sum}");
        assert!(pinned.last(Split::Train, "loss_reg").unwrap() > 0.0);
        assert_eq!(free.last(Split::Train, "loss_reg").unwrap(), 0.0);
    }

    #[test]
    fn divergence_is_an_outcome_not_a_crash() {
        let mut cfg = small(0, 1.0);
        cfg.train.optimizer = OptimizerKind::Sgd;
        cfg.train.lr = 1e30;
        let (outcome, sink) = run(&cfg);
        assert_eq!(outcome, Outcome::Diverged { step: 50, reason: crate::eval::Divergence::NonFiniteLoss });
        assert!(!sink.last(Split::Train, "loss_total").unwrap().is_finite());
    }

    /// Identifiability, small: a linear truth with offsets, all pairs, a linear model with
    /// prompt one-hot features. λ = 0 recovers r* up to per-prompt offsets (prompt-centred
    /// correlation > 0.95); λ = 0.01 halves the learned per-prompt level (offset part) without
    /// changing the within-prompt ranking by a point.
    #[test]
    fn lambda_pins_offsets_but_not_the_ranking() {
        use crate::experiment::config::{Graph, ModelKind, PromptFeatures};
        let cfg = |lambda: f64| {
            RunConfig {
                seed: 0,
                data: DataConfig {
                    n_prompts: 150,
                    responses_per_prompt: 4,
                    graph: Graph::AllPairs,
                    feature_dim: 6,
                    offset_scale: 2.0,
                    beta: f64::INFINITY,
                    prompt_features: PromptFeatures::Onehot,
                    ..DataConfig::default()
                },
                model: ModelConfig { kind: ModelKind::Linear, hidden: None, ..ModelConfig::default() },
                train: TrainConfig { steps: 1500, batch_size: 128, lr: 1e-2, ..TrainConfig::default() },
                loss: LossConfig { lambda, ..LossConfig::default() },
                eval: EvalConfig { every: 500 },
            }
            .resolve()
        };
        let (_, free) = run(&cfg(0.0));
        let (_, pinned) = run(&cfg(0.01));
        let get = |s: &MemorySink, m| s.last(Split::Train, m).unwrap();
        assert!(get(&free, "true_pearson_within") > 0.95, "{}", get(&free, "true_pearson_within"));
        let (o_free, o_pinned) = (get(&free, "offset_part_abs_mean"), get(&pinned, "offset_part_abs_mean"));
        assert!(o_pinned < 0.5 * o_free, "offset part: λ = 0.01 {o_pinned}, λ = 0 {o_free}");
        let (a_free, a_pinned) =
            (get(&free, "true_within_prompt_accuracy"), get(&pinned, "true_within_prompt_accuracy"));
        assert!((a_free - a_pinned).abs() < 0.01, "within-prompt accuracy {a_free} vs {a_pinned}");
    }
}
