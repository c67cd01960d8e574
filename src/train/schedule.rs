//! The learning rate of each optimizer step: a linear warmup from 0, then constant, linear
//! decay to 0 or half a cosine to 0, as Hugging Face's `get_constant_schedule_with_warmup`,
//! `get_linear_schedule_with_warmup` and `get_cosine_schedule_with_warmup` define them (a
//! `LambdaLR` multiplier of the peak rate, evaluated at the number of steps already taken).

use crate::experiment::config::{Schedule, TrainConfig};

/// The multiplier of the peak learning rate for the optimizer step after `done` steps
/// (`done` = 0 for the first step) of `total`, with `warmup` warmup steps.
pub fn lr_factor(schedule: Schedule, done: usize, total: usize, warmup: usize) -> f64 {
    let (s, t, w) = (done as f64, total as f64, warmup as f64);
    if done < warmup {
        return s / w.max(1.0);
    }
    match schedule {
        Schedule::Constant => 1.0,
        Schedule::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
        Schedule::Cosine => {
            let progress = (s - w) / (t - w).max(1.0);
            (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
        }
    }
}

/// The learning rate of optimizer step `step` (1-based) under `t`.
pub fn lr_at(t: &TrainConfig, step: usize) -> f64 {
    t.lr * lr_factor(t.schedule, step - 1, t.steps, t.warmup())
}

/// Whether the rate changes during training (otherwise the optimizer keeps `lr` untouched).
pub fn varies(t: &TrainConfig) -> bool {
    t.schedule != Schedule::Constant || t.warmup() > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rate of PyTorch's `LambdaLR` with Hugging Face's multipliers, and of
    /// `CosineAnnealingLR`, for several lengths and warmups
    /// (tests/fixtures/gen_schedule_fixture.py).
    #[test]
    fn matches_pytorch_schedulers() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/schedule_fixture.json")).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 8);
        for c in cases {
            let schedule = match c["schedule"].as_str().unwrap() {
                "constant" => Schedule::Constant,
                "linear" => Schedule::Linear,
                "cosine" => Schedule::Cosine,
                other => panic!("unknown schedule {other}"),
            };
            let (total, warmup, lr) = (
                c["steps"].as_u64().unwrap() as usize,
                c["warmup"].as_u64().unwrap() as usize,
                c["lr"].as_f64().unwrap(),
            );
            let want: Vec<f64> = c["lrs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(want.len(), total);
            for (done, w) in want.iter().enumerate() {
                let got = lr * lr_factor(schedule, done, total, warmup);
                assert!(
                    (got - w).abs() <= 1e-12 * lr,
                    "{} {schedule:?} T={total} W={warmup} step {done}: {got} vs {w}",
                    c["source"]
                );
            }
        }
    }

    #[test]
    fn warmup_ratio_rounds_up_and_the_rate_is_indexed_from_one() {
        let t = TrainConfig {
            steps: 10,
            warmup_ratio: 0.25,
            schedule: Schedule::Linear,
            lr: 1.0,
            ..TrainConfig::default()
        };
        assert_eq!(t.warmup(), 3);
        assert_eq!(lr_at(&t, 1), 0.0);
        assert!((lr_at(&t, 3) - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(lr_at(&t, 4), 1.0);
        assert!(!varies(&TrainConfig::default()));
    }
}
