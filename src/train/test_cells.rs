//! The cells the engine tests train: small synthetic runs, and a set of models and trainer
//! settings that covers what the batched engine implements.

use crate::experiment::config::{
    BatchSize, DataConfig, EvalConfig, LossConfig, ModelConfig, ModelKind, Regularizer, RunConfig,
    TrainConfig,
};

/// A synthetic cell of seed `seed` and λ `lambda`: 80 prompts of 6 features, an MLP with hidden
/// layers `hidden` (`None`: a linear model), 120 steps of Adam at lr 0.01 on batches of 32.
pub fn cfg(seed: u64, lambda: f64, hidden: Option<Vec<usize>>) -> RunConfig {
    RunConfig {
        seed,
        data: DataConfig { n_prompts: 80, feature_dim: 6, ..DataConfig::default() },
        model: ModelConfig {
            kind: if hidden.is_some() { ModelKind::Mlp } else { ModelKind::Linear },
            hidden,
            ..ModelConfig::default()
        },
        train: TrainConfig {
            steps: 120,
            batch_size: BatchSize::Pairs(32),
            lr: 1e-2,
            ..TrainConfig::default()
        },
        loss: LossConfig { lambda, ..LossConfig::default() },
        eval: EvalConfig { every: 40, ..EvalConfig::default() },
    }
    .resolve()
}

pub type Tweak = fn(&mut RunConfig);

/// Models and trainer settings the engine's tests run: a linear model, MLPs of one and two
/// hidden layers, every activation and regularizer, a margin, both optimizers, and every
/// trainer control.
pub fn variants() -> [(Option<Vec<usize>>, Tweak); 8] {
    use crate::experiment::config::{Activation, OptimizerKind, Sampling, SaveModel, Schedule};
    [
        (Some(vec![16]), |_| {}),
        (None, |_| {}),
        (Some(vec![8, 8]), |c| {
            c.model.activation = Activation::Tanh;
            c.train.optimizer = OptimizerKind::Sgd;
            c.train.momentum = 0.9;
            c.train.weight_decay = 0.01;
        }),
        (Some(vec![8]), |c| {
            c.model.activation = Activation::Gelu;
            c.loss.regularizer = Regularizer::L2;
            c.loss.margin = 0.5;
        }),
        (Some(vec![8]), |c| {
            c.model.activation = Activation::Silu;
            c.loss.regularizer = Regularizer::BatchSum;
            c.train.weight_decay = 0.05;
        }),
        (Some(vec![8]), |c| {
            c.train.optimizer = OptimizerKind::Sgd;
            c.train.lr = 0.1;
        }),
        // Every trainer control at once: a cosine schedule with warmup, clipping,
        // accumulation, epochs whose last batch is partial, early stopping with its
        // restored weights, a kept model.
        (Some(vec![8]), |c| {
            c.train.schedule = Schedule::Cosine;
            c.train.warmup_ratio = 0.1;
            c.train.max_grad_norm = 0.5;
            c.train.gradient_accumulation = 2;
            c.train.sampling = Sampling::Epochs;
            c.train.batch_size = BatchSize::Pairs(48);
            c.train.early_stopping_metric = Some("loss_pair".into());
            c.train.early_stopping_patience = 1;
            c.train.save = SaveModel::Final;
        }),
        // Full batch, SGD, a linear decay after warmup, clipping.
        (Some(vec![8]), |c| {
            c.train.batch_size = BatchSize::All;
            c.train.optimizer = OptimizerKind::Sgd;
            c.train.lr = 0.5;
            c.train.schedule = Schedule::Linear;
            c.train.warmup_steps = 10;
            c.train.max_grad_norm = 1.0;
            c.train.save = SaveModel::Final;
        }),
    ]
}

/// Cells of `(seed, λ)` with hidden layers `hidden`, `tweak` applied.
pub fn cells(seeds_lambdas: &[(u64, f64)], hidden: &Option<Vec<usize>>, tweak: Tweak) -> Vec<RunConfig> {
    seeds_lambdas
        .iter()
        .map(|&(seed, lambda)| {
            let mut c = cfg(seed, lambda, hidden.clone());
            tweak(&mut c);
            c
        })
        .collect()
}
