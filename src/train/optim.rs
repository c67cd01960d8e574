//! Adam and SGD over one flat parameter tensor, with LibTorch's update rules.
//!
//! The batched engine keeps every cell's parameters in one flat tensor and computes their
//! gradient by hand, so it updates them here in a few whole-tensor kernels instead of through
//! `tch::nn::Optimizer` (one kernel sequence per parameter tensor); on a CPU with FMA, Adam runs
//! as two host loops (`kernels::adam_on_host`). The arithmetic follows
//! `torch::optim::Adam` and `torch::optim::SGD` (what `tch::nn::Adam` and `tch::nn::Sgd`
//! wrap) step for step: L2 weight decay added to the gradient, bias corrections
//! `1 − βᵗ`, `denom = √v / √(1 − β₂ᵗ) + ε`, momentum buffers started from the first gradient.

use tch::Tensor;

use super::kernels::{AdamCoefficients, adam_on_host};
use crate::experiment::config::{OptimizerKind, TrainConfig};

/// An optimizer's state for one flat parameter tensor `[P]`.
pub struct FlatOptimizer {
    rule: Rule,
    lr: f64,
    weight_decay: f64,
    step: i32,
    /// Take the host loops on a CPU with FMA (off: whole-tensor kernels everywhere).
    host_loops: bool,
}

enum Rule {
    /// First and second moment estimates `[P]`.
    Adam { beta1: f64, beta2: f64, eps: f64, m: Tensor, v: Tensor },
    /// Momentum buffer `[P]`, created from the first gradient.
    Sgd { momentum: f64, buf: Option<Tensor> },
}

impl FlatOptimizer {
    /// The optimizer `t` asks for, with tch's defaults (Adam β = (0.9, 0.999), ε = 1e-8;
    /// SGD without dampening or Nesterov), for parameters shaped like `params`.
    pub fn new(t: &TrainConfig, params: &Tensor) -> FlatOptimizer {
        let rule = match t.optimizer {
            OptimizerKind::Adam => Rule::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                m: params.zeros_like(),
                v: params.zeros_like(),
            },
            OptimizerKind::Sgd => Rule::Sgd { momentum: t.momentum, buf: None },
        };
        FlatOptimizer { rule, lr: t.lr, weight_decay: t.weight_decay, step: 0, host_loops: true }
    }

    /// The same optimizer on whole-tensor kernels only: what runs on other devices, for tests
    /// on the CPU.
    pub fn without_host_loops(mut self) -> FlatOptimizer {
        self.host_loops = false;
        self
    }

    /// Sets the learning rate of the next updates (a schedule).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// One update of `params` `[P]` in place from `grad` `[P]`.
    pub fn step(&mut self, params: &mut Tensor, grad: &Tensor) {
        self.step += 1;
        if let Rule::Adam { beta1, beta2, eps, m, v } = &mut self.rule
            && self.host_loops
        {
            // A dozen whole-tensor kernels cost more than the arithmetic at these sizes: two
            // passes over host memory instead, rounding as LibTorch's kernels do (fused
            // multiply-adds where they use them, LibTorch's own square root). Each coefficient
            // is rounded once to float32 from double, as the kernels get them.
            let c = AdamCoefficients {
                moments: [*beta1 as f32, (1.0 - *beta1) as f32, *beta2 as f32, (1.0 - *beta2) as f32],
                weight_decay: self.weight_decay as f32,
                step_size: (-self.lr / (1.0 - beta1.powi(self.step))) as f32,
                bias2_sqrt: (1.0 - beta2.powi(self.step)).sqrt() as f32,
                eps: *eps as f32,
            };
            if adam_on_host(params, grad, m, v, &c) {
                return;
            }
        }
        self.step_tensors(params, grad);
    }

    /// [`FlatOptimizer::step`] as whole-tensor kernels (any device), after `self.step` has
    /// been advanced.
    fn step_tensors(&mut self, params: &mut Tensor, grad: &Tensor) {
        let grad =
            if self.weight_decay != 0.0 { grad + &*params * self.weight_decay } else { grad.shallow_clone() };
        match &mut self.rule {
            Rule::Adam { beta1, beta2, eps, m, v } => {
                let bias1 = 1.0 - beta1.powi(self.step);
                let bias2 = 1.0 - beta2.powi(self.step);
                let _ = m.g_mul_scalar_(*beta1).g_add_(&(&grad * (1.0 - *beta1)));
                // addcmul: v + ((1 − β₂)·g)·g.
                let _ = v.g_mul_scalar_(*beta2).addcmul_(&(&grad * (1.0 - *beta2)), &grad);
                let mut denom = v.sqrt();
                let _ = denom.g_div_scalar_(bias2.sqrt()).g_add_scalar_(*eps);
                // addcdiv: p + ((−lr/bias1)·m) / denom.
                let mut step = &*m * (-self.lr / bias1);
                let _ = params.g_add_(&step.g_div_(&denom));
            }
            Rule::Sgd { momentum, buf } => {
                let d = if *momentum == 0.0 {
                    grad
                } else {
                    match buf {
                        Some(b) => {
                            let _ = b.g_mul_scalar_(*momentum).g_add_(&grad);
                            b.shallow_clone()
                        }
                        None => {
                            let b = grad.copy();
                            *buf = Some(b.shallow_clone());
                            b
                        }
                    }
                };
                let _ = params.g_add_(&(d * -self.lr));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, nn, nn::OptimizerConfig};

    /// Ten steps with fixed pseudo-random gradients: the flat optimizer and tch's optimizer
    /// (LibTorch's C++ implementation) on the same values agree to float32 rounding.
    fn agrees_with_tch(t: TrainConfig) {
        agrees_with_tch_on(t.clone(), false);
        agrees_with_tch_on(t, true);
    }

    /// `tensors`: force the whole-tensor path (what other devices run) instead of the host loop.
    fn agrees_with_tch_on(t: TrainConfig, tensors: bool) {
        let mut normal = crate::testing::Normal::new(7);
        let p0 = normal.tensor(&[1000]);
        let grads: Vec<Tensor> = (0..10).map(|_| normal.tensor(&[1000])).collect();

        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &p0);
        let mut opt = match t.optimizer {
            OptimizerKind::Adam => nn::Adam { wd: t.weight_decay, ..Default::default() }.build(&vs, t.lr),
            OptimizerKind::Sgd => {
                nn::Sgd { momentum: t.momentum, wd: t.weight_decay, ..Default::default() }.build(&vs, t.lr)
            }
        }
        .unwrap();
        let mut flat = p0.copy();
        let mut mine = FlatOptimizer::new(&t, &flat);
        if tensors {
            mine = mine.without_host_loops();
        }
        for g in &grads {
            opt.zero_grad();
            // d(w·g)/dw = g: tch's optimizer sees exactly g as the gradient.
            (&w * g).sum(Kind::Float).backward();
            opt.step();
            mine.step(&mut flat, g);
        }
        let diff = (&flat - &w.detach()).abs().max().double_value(&[]);
        let moved = (&flat - &p0).abs().max().double_value(&[]);
        // The host loop rounds as LibTorch's kernels do: bit for bit the same parameters.
        let tol = if !tensors && t.optimizer == OptimizerKind::Adam { 0.0 } else { 1e-6 };
        assert!(diff <= tol, "{:?} (tensors: {tensors}): differs by {diff}", t.optimizer);
        assert!(moved > 10.0 * t.lr * 0.5, "{:?}: parameters barely moved ({moved})", t.optimizer);
    }

    #[test]
    fn adam_matches_libtorch() {
        let t = TrainConfig { optimizer: OptimizerKind::Adam, lr: 0.05, ..TrainConfig::default() };
        agrees_with_tch(t.clone());
        agrees_with_tch(TrainConfig { weight_decay: 0.1, ..t });
    }

    #[test]
    fn sgd_matches_libtorch() {
        let t =
            TrainConfig { optimizer: OptimizerKind::Sgd, lr: 0.05, momentum: 0.0, ..TrainConfig::default() };
        agrees_with_tch(t.clone());
        agrees_with_tch(TrainConfig { momentum: 0.9, weight_decay: 0.01, ..t });
    }
}
