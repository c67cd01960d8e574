//! Evaluating a run at a step: rewards of every response → the metrics of each split (with the
//! truth metrics where the true reward is known) → its sink; and the final rewards with their
//! reliability bins. Shared by the autograd and the batched trainer, so both report exactly the
//! same numbers.

use tch::{Device, Tensor};

use super::calibration::Reliability;
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
/// Also records, whatever `keep`, each such split's reliability bins
/// ([`crate::experiment::metric::reliability_names`]) as metrics at `step`, the step whose
/// weights gave these rewards (the best step under early stopping): once a run, as a
/// reliability diagram needs them, rather than 30 more rows at every evaluation.
pub fn report_rewards(
    rewards: &Tensor,
    data: &Dataset,
    keep: KeptRewards,
    step: usize,
    sink: &mut dyn MetricsSink,
) -> Result<Vec<RewardRow>> {
    let rewards = Vec::<f64>::try_from(rewards.to_kind(tch::Kind::Double).to_device(Device::Cpu))?;
    for split in data.splits() {
        let s = data.split(split);
        if s.n_pairs > 0 {
            sink.record(step, split, &Reliability::of(&rewards, &s.pairs_host).metrics())?;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Pair, Preferences};
    use crate::eval::MemorySink;
    use crate::experiment::config::LossConfig;

    /// Three prompts: p0 (train) with responses 0, 1, 2 and pairs (0, 1), (1, 2), (0, 2);
    /// p1 (val) with responses 3, 4 and pair (4, 3); p2 (test) with response 5 and no pair.
    fn dataset(true_reward: Option<Vec<f64>>) -> Dataset {
        let pair = |chosen, rejected| Pair { chosen, rejected };
        let prefs = Preferences {
            dim: 1,
            features: vec![0.0; 6],
            prompt_of: vec![0, 0, 0, 1, 1, 2],
            beta: true_reward.as_ref().map(|_| 1.0),
            true_reward,
            split_of_prompt: vec![Split::Train, Split::Val, Split::Test],
            flip: 0.0,
            pairs: vec![pair(0, 1), pair(1, 2), pair(0, 2), pair(4, 3)],
            bags: None,
            texts: None,
            margins: None,
            pair_kind: None,
        };
        Dataset::new(&prefs, Device::Cpu)
    }

    fn config(lambda: f64) -> RunConfig {
        RunConfig {
            seed: 0,
            data: Default::default(),
            model: Default::default(),
            train: Default::default(),
            loss: LossConfig { lambda, ..Default::default() },
            eval: Default::default(),
        }
    }

    const REWARDS: [f32; 6] = [2.0, -1.0, 0.5, 1.0, 3.0, 9.0];

    /// Every value worked by hand from [`REWARDS`] (all exact in float32) and λ = 0.1.
    #[test]
    fn metrics_of_each_split_with_pairs_match_hand_computed_values() {
        let data = dataset(None);
        let truths = Truths::new(&data);
        assert!(truths.0.iter().all(Option::is_none), "no true reward, no truth metrics");
        let mut sink = MemorySink::default();
        let r = Tensor::from_slice(&REWARDS);
        let (outcome, watched) = report_eval_watching(
            &r,
            0.75,
            &data,
            &truths,
            &config(0.1),
            40,
            &mut sink,
            Some((Split::Val, "accuracy")),
        )
        .unwrap();
        assert_eq!(outcome, None);
        assert_eq!(watched, 1.0);
        let get = |split, name| sink.last(split, name).unwrap_or_else(|| panic!("{split:?} {name}"));
        let close = |split, name, want: f64| {
            let got = get(split, name);
            assert!((got - want).abs() < 1e-12, "{split:?} {name}: {got} vs {want}");
        };
        // Train: differences 3, −1.5, 1.5; sums 1, −0.5, 2.5.
        let softplus = |x: f64| (1.0 + x.exp()).ln();
        let pair = (softplus(-3.0) + softplus(1.5) + softplus(-1.5)) / 3.0;
        close(Split::Train, "loss_pair", pair);
        close(Split::Train, "loss_reg", 0.1 * (1.0 + 0.25 + 6.25) / 3.0);
        close(Split::Train, "loss_total", pair + 0.25);
        close(Split::Train, "accuracy", 2.0 / 3.0);
        close(Split::Train, "reward_mean", 0.5);
        close(Split::Train, "reward_std", 1.5f64.sqrt());
        close(Split::Train, "reward_max_abs", 2.0);
        close(Split::Train, "pair_sum_mean", 1.0);
        close(Split::Train, "pair_sum_abs_mean", 4.0 / 3.0);
        close(Split::Train, "pair_diff_mean", 1.0);
        // Folded confidences σ(3) (bin 9, right), σ(1.5) twice (bin 6, one wrong): ECE
        // (|σ(3) − 1| + |2σ(1.5) − 1|) / 3; Brier σ(r_b − r_a)².
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        close(Split::Train, "label_ece", ((1.0 - sigmoid(3.0)) + (2.0 * sigmoid(1.5) - 1.0)) / 3.0);
        close(
            Split::Train,
            "label_brier",
            (sigmoid(-3.0).powi(2) + sigmoid(1.5).powi(2) + sigmoid(-1.5).powi(2)) / 3.0,
        );
        close(Split::Train, "head_weight_norm", 0.75);
        // Val: one pair, 3 over 1.
        close(Split::Val, "accuracy", 1.0);
        close(Split::Val, "reward_mean", 2.0);
        close(Split::Val, "reward_std", 1.0);
        close(Split::Val, "reward_max_abs", 3.0);
        close(Split::Val, "loss_pair", softplus(-2.0));
        close(Split::Val, "loss_reg", 0.1 * 16.0);
        assert!(sink.last(Split::Val, "head_weight_norm").is_none(), "the head norm is a train value");
        assert!(
            sink.rows.iter().all(|r| r.split != Split::Test && r.step == 40),
            "a split without pairs is not reported"
        );
    }

    #[test]
    fn a_watched_split_without_pairs_or_nothing_watched_is_nan() {
        let data = dataset(None);
        let truths = Truths::new(&data);
        let r = Tensor::from_slice(&REWARDS);
        for watch in [Some((Split::Test, "accuracy")), Some((Split::Val, "no_such_metric")), None] {
            let (_, watched) = report_eval_watching(
                &r,
                0.0,
                &data,
                &truths,
                &config(0.0),
                0,
                &mut MemorySink::default(),
                watch,
            )
            .unwrap();
            assert!(watched.is_nan(), "{watch:?}");
        }
    }

    /// Divergence is judged on the training split only: a huge reward there diverges the run,
    /// the same reward in the validation split does not.
    #[test]
    fn divergence_is_judged_on_the_training_split() {
        let data = dataset(None);
        let truths = Truths::new(&data);
        let run = |r: [f32; 6]| {
            report_eval_watching(
                &Tensor::from_slice(&r),
                0.0,
                &data,
                &truths,
                &config(0.0),
                7,
                &mut MemorySink::default(),
                None,
            )
            .unwrap()
            .0
        };
        let mut big = REWARDS;
        big[4] = 2e6;
        assert_eq!(run(big), None, "a validation reward does not count");
        big[2] = -2e6;
        assert_eq!(run(big), Some(Outcome::Diverged { step: 7, reason: Divergence::RewardsTooLarge }));
        let mut nan = REWARDS;
        nan[0] = f32::NAN;
        assert_eq!(run(nan), Some(Outcome::Diverged { step: 7, reason: Divergence::NonFiniteLoss }));
    }

    /// Rewards of responses in splits with pairs (5 of 6: the test split has none), kept in the
    /// sink only under `eval.rewards = "all"`, returned either way.
    #[test]
    fn final_rewards_cover_the_splits_with_pairs() {
        let data = dataset(Some(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6]));
        let r = Tensor::from_slice(&REWARDS);
        let mut sink = MemorySink::default();
        let rows = report_rewards(&r, &data, KeptRewards::All, 60, &mut sink).unwrap();
        let got: Vec<(usize, usize, Split, f64, Option<f64>)> =
            rows.iter().map(|w| (w.response, w.prompt, w.split, w.reward, w.true_reward)).collect();
        assert_eq!(
            got,
            [
                (0, 0, Split::Train, 2.0, Some(0.1)),
                (1, 0, Split::Train, -1.0, Some(0.2)),
                (2, 0, Split::Train, 0.5, Some(0.3)),
                (3, 1, Split::Val, 1.0, Some(0.4)),
                (4, 1, Split::Val, 3.0, Some(0.5)),
            ]
        );
        assert_eq!(sink.rewards, rows);
        let mut none = MemorySink::default();
        assert_eq!(report_rewards(&r, &data, KeptRewards::None, 60, &mut none).unwrap(), rows);
        assert!(none.rewards.is_empty());
        // The reliability bins of each split with pairs, at the step given, kept or not.
        for s in [&sink, &none] {
            assert_eq!(s.rows.len(), 2 * crate::experiment::metric::reliability_names().len());
            assert!(s.rows.iter().all(|r| r.step == 60 && r.split != Split::Test));
        }
        // Train: confidences σ(3) (bin 9), σ(1.5) twice (bin 6: [0.80, 0.85)), one wrong;
        // val: σ(2) (bin 7).
        assert_eq!(sink.last(Split::Train, "reliability_9_pairs"), Some(1.0));
        assert_eq!(sink.last(Split::Train, "reliability_6_pairs"), Some(2.0));
        assert_eq!(sink.last(Split::Train, "reliability_6_correct"), Some(0.5));
        assert_eq!(sink.last(Split::Val, "reliability_7_pairs"), Some(1.0));
        assert_eq!(sink.last(Split::Val, "reliability_7_correct"), Some(1.0));
        // With a true reward and β, the splits with pairs get a truth index.
        let truths = Truths::new(&data);
        let has: Vec<bool> = truths.0.iter().map(Option::is_some).collect();
        assert_eq!(has, [true, true, false]);
    }
}
