//! Evaluating a run at a step: rewards of every response → the metrics of each split (with the
//! truth metrics where the true reward is known) → its sink; and the final rewards. Shared by
//! the autograd and the batched trainer, so both report exactly the same numbers.

use tch::{Device, Tensor};

use super::graph_kind::graph_kind_metrics;
use super::metrics::split_metrics;
use super::record::{Divergence, MetricsSink, Outcome, RewardRow};
use super::truth::{HostSplit, TruthIndex};
use crate::data::{Dataset, Split};
use crate::error::Result;
use crate::experiment::RunConfig;
use crate::experiment::config::KeptRewards;
use crate::objective::Objective;

/// Reports the final reward `[R]` of every response in a split with pairs, unless `keep` is
/// [`KeptRewards::None`]; returns the rows either way (kept models need their statistics).
pub fn report_rewards(
    rewards: &Tensor,
    data: &Dataset,
    keep: KeptRewards,
    sink: &mut dyn MetricsSink,
) -> Result<Vec<RewardRow>> {
    let rewards = Vec::<f64>::try_from(rewards.to_kind(tch::Kind::Double).to_device(Device::Cpu))?;
    let rows: Vec<RewardRow> = (0..rewards.len())
        .filter(|&r| data.split(data.split_of[r]).n_pairs > 0)
        .map(|r| RewardRow {
            response: r,
            prompt: data.prompt_of[r],
            split: data.split_of[r],
            reward: rewards[r],
            true_reward: data.true_reward_host.as_ref().map(|t| t[r]),
        })
        .collect();
    if keep == KeptRewards::All {
        sink.record_rewards(&rows)?;
    }
    Ok(rows)
}

/// The truth index of each split of a data set with a known true reward and β (synthetic), in
/// the order of [`Dataset::splits`].
pub struct Truths(Vec<Option<TruthIndex>>);

impl Truths {
    pub fn new(data: &Dataset) -> Truths {
        Truths(
            data.splits()
                .map(|split| {
                    let s = data.split(split);
                    match (&data.true_reward_host, data.beta) {
                        (Some(t), Some(beta)) if s.n_pairs > 0 => Some(TruthIndex::new(&HostSplit {
                            responses: &s.responses_host,
                            pairs: &s.pairs_host,
                            prompt_of: &data.prompt_of,
                            true_reward: t,
                            beta,
                            flip: data.flip,
                        })),
                        _ => None,
                    }
                })
                .collect(),
        )
    }
}

/// Reports the metrics of rewards `[R]` of all responses after `step` steps (shared by both
/// engines); `Some(Diverged)` if the training split is out of [`Divergence`]'s bounds. Also
/// returns the value of one metric of one split (`watch`, for early stopping; NaN when that
/// split has no pairs, or nothing is watched).
#[allow(clippy::too_many_arguments)]
pub fn report_eval_watching(
    rewards: &Tensor,
    head_norm: f64,
    data: &Dataset,
    truths: &Truths,
    cfg: &RunConfig,
    step: usize,
    sink: &mut dyn MetricsSink,
    watch: Option<(Split, &str)>,
) -> Result<(Option<Outcome>, f64)> {
    let mut watched = f64::NAN;
    let objective = Objective::new(&cfg.loss);
    // Every metric is computed on the host: one transfer of R rewards per evaluation.
    let r = Vec::<f64>::try_from(rewards.to_kind(tch::Kind::Double).to_device(Device::Cpu))?;
    let mut diverged = None;
    for (split, truth) in data.splits().zip(&truths.0) {
        let s = data.split(split);
        if s.n_pairs == 0 {
            continue;
        }
        let mut values =
            split_metrics(&r, s, data.true_reward_host.as_deref(), &objective, cfg.loss.margin_from_data);
        if let Some(index) = truth {
            values.extend(index.metrics(&r));
        }
        values.extend(graph_kind_metrics(&r, s));
        if split == Split::Train {
            let get =
                |metric: &str| values.iter().find(|(name, _)| *name == metric).map_or(f64::NAN, |v| v.1);
            diverged = Divergence::check(get("loss_total"), get("reward_max_abs"));
            values.push(("head_weight_norm", head_norm));
        }
        if let Some((s, metric)) = watch
            && s == split
        {
            watched = values.iter().find(|(name, _)| *name == metric).map_or(f64::NAN, |v| v.1);
        }
        sink.record(step, split, &values)?;
    }
    Ok((diverged.map(|reason| Outcome::Diverged { step, reason }), watched))
}
