//! Stage 4, the objective: the regularized pairwise loss, its value and its closed-form
//! gradient, in one place.
//!
//! `L = mean(−log σ(r_a − r_b − m)) + R(r_a, r_b)` over N pairs, with R one of (config
//! `loss.regularizer`, means over the pairs):
//!
//! | regularizer   | R                                        |
//! | ------------- | ---------------------------------------- |
//! | `none`        | 0                                        |
//! | `pair_sum_sq` | λ · mean((r_a + r_b)²)                   |
//! | `batch_sum`   | λ · N · (mean of all 2N rewards)²  (BSR) |
//! | `l2`          | λ · mean(r_a² + r_b²)                    |
//!
//! The value comes as tensors ([`Objective::loss`], differentiated by autograd in the one-cell
//! trainer) and on the host in f64 ([`Objective::loss_host`], for evaluation metrics); the
//! gradient with respect to the rewards of K stacked cells comes in closed form as tensors
//! ([`loss_grad`], any device) and on the host ([`loss_grad_host`], the CPU). Tests hold each
//! form against the others, against autograd and against a PyTorch fixture. Pure functions:
//! nothing here owns parameters or state.

use tch::Tensor;

use crate::experiment::config::LossConfig;
pub use crate::experiment::config::Regularizer;

/// A training objective: the pairwise term's margin and a regularizer with its λ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    /// The penalty; [`Regularizer::None`] whenever λ = 0.
    pub regularizer: Regularizer,
    /// λ ≥ 0 (0 for [`Regularizer::None`]).
    pub lambda: f64,
    /// m in −log σ(r_a − r_b − m); 0 is plain Bradley–Terry.
    pub margin: f64,
}

impl Objective {
    /// The objective of a `[loss]` section; λ = 0 is no regularizer whatever the kind.
    pub fn new(cfg: &LossConfig) -> Objective {
        let regularizer = if cfg.lambda == 0.0 { Regularizer::None } else { cfg.regularizer };
        let lambda = if regularizer == Regularizer::None { 0.0 } else { cfg.lambda };
        Objective { regularizer, lambda, margin: cfg.margin }
    }

    /// The plain Bradley–Terry loss.
    pub fn unregularized() -> Objective {
        Objective { regularizer: Regularizer::None, lambda: 0.0, margin: 0.0 }
    }

    /// `λ · mean((r_a + r_b)²)` (TRL's `center_rewards_coefficient`); λ = 0 is unregularized.
    pub fn pair_sum_sq(lambda: f64) -> Objective {
        Objective::penalty(Regularizer::PairSumSq, lambda)
    }

    /// A regularizer with its λ and no margin; λ = 0 is unregularized.
    pub fn penalty(regularizer: Regularizer, lambda: f64) -> Objective {
        if lambda == 0.0 || regularizer == Regularizer::None {
            Objective::unregularized()
        } else {
            Objective { regularizer, lambda, margin: 0.0 }
        }
    }

    /// The same objective with margin `m`.
    pub fn with_margin(self, margin: f64) -> Objective {
        Objective { margin, ..self }
    }

    /// All loss terms for rewards `r_a` (preferred) and `r_b`, both `[N]`; every term is a
    /// mean over the N pairs. `margins` `[N]`: a margin per pair (a data set's `margin`
    /// column), added to the constant one: −log σ(r_a − r_b − m − m_i).
    pub fn loss(&self, r_a: &Tensor, r_b: &Tensor, margins: Option<&Tensor>) -> LossTerms {
        if let Some(margins) = margins {
            let pair = -(r_a - r_b - margins - self.margin).log_sigmoid().mean(None);
            let reg = regularization(r_a, r_b, self.regularizer, self.lambda);
            let total = &pair + &reg;
            return LossTerms { pair, reg, total };
        }
        let pair = bradley_terry(r_a, r_b, self.margin);
        if self.regularizer == Regularizer::None {
            // No penalty: no zero-valued terms in the graph (every op counts at small sizes).
            let reg = Tensor::zeros([], (pair.kind(), pair.device()));
            return LossTerms { total: pair.shallow_clone(), pair, reg };
        }
        let reg = regularization(r_a, r_b, self.regularizer, self.lambda);
        let total = &pair + &reg;
        LossTerms { pair, reg, total }
    }

    /// [`Objective::loss`] on the host in f64 for P pairs given as `(r_a, r_b, m_i)` (m_i the
    /// pair's data margin, 0 without one): `(mean −log σ(r_a − r_b − m − m_i), R)`, NaN for
    /// P = 0. Accumulates in pair order, so a split's value does not depend on anything else.
    pub fn loss_host(&self, pairs: impl Iterator<Item = (f64, f64, f64)>) -> (f64, f64) {
        let (mut n, mut pair, mut sum, mut sum_sq, mut sq) = (0usize, 0.0, 0.0, 0.0, 0.0);
        for (ra, rb, m) in pairs {
            let z = ra - rb - self.margin - m;
            pair += softplus(-z);
            sum += ra + rb;
            sum_sq += (ra + rb).powi(2);
            sq += ra * ra + rb * rb;
            n += 1;
        }
        let p = n as f64;
        let reg = match self.regularizer {
            Regularizer::None => 0.0,
            Regularizer::PairSumSq => self.lambda * sum_sq / p,
            Regularizer::BatchSum => self.lambda * p * (sum / (2.0 * p)).powi(2),
            Regularizer::L2 => self.lambda * sq / p,
        };
        (pair / p, reg)
    }
}

/// The three loss terms, each a scalar tensor (0-dim, same kind and device as the rewards).
#[derive(Debug)]
pub struct LossTerms {
    /// `mean(−log σ(r_a − r_b))`.
    pub pair: Tensor,
    /// The regularizer's value (a zero scalar for [`Regularizer::None`]).
    pub reg: Tensor,
    /// `pair + reg`: what is differentiated.
    pub total: Tensor,
}

/// Bradley–Terry term with margin m: `mean(−log σ(r_a − r_b − m))` over N pairs.
///
/// `r_a` (preferred) and `r_b`: shape `[N]`. Returns a scalar. Uses `log_sigmoid`, which is
/// stable at any margin (it never forms `σ` and then takes its log).
pub fn bradley_terry(r_a: &Tensor, r_b: &Tensor, margin: f64) -> Tensor {
    let z = r_a - r_b;
    let z = if margin == 0.0 { z } else { z - margin };
    -z.log_sigmoid().mean(None)
}

/// The regularizer's value with coefficient λ for rewards of shape `[N]`: a scalar, mean over
/// pairs.
pub fn regularization(r_a: &Tensor, r_b: &Tensor, regularizer: Regularizer, lambda: f64) -> Tensor {
    match regularizer {
        Regularizer::None => r_a.zeros_like().sum(None),
        Regularizer::PairSumSq => (r_a + r_b).square().mean(None) * lambda,
        Regularizer::BatchSum => {
            let n = r_a.size()[0] as f64;
            Tensor::cat(&[r_a, r_b], 0).mean(None).square() * (lambda * n)
        }
        Regularizer::L2 => (r_a.square() + r_b.square()).mean(None) * lambda,
    }
}

/// softplus(x) = log(1 + eˣ), stable for any x: −log σ(z) = softplus(−z).
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Gradient of the sum over K cells of each cell's [`Objective::loss`] with respect to its
/// rewards, derived by hand so that the batched trainer needs no autograd graph.
///
/// `r_a`, `r_b`: `[K, N]` (cell k's N pairs in row k); `lambdas`: `[K, 1]` (a cell with λ = 0
/// is unregularized whatever `regularizer` says). Returns `(∂L/∂r_a, ∂L/∂r_b)`, both `[K, N]`.
/// With z = r_a − r_b − m, s = r_a + r_b: BT gives ∂/∂z = −σ(−z)/N; `pair_sum_sq` adds 2λs/N
/// to both; `batch_sum` adds λ·mean of all 2N rewards to every reward; `l2` adds 2λr/N to each.
pub fn loss_grad(
    r_a: &Tensor,
    r_b: &Tensor,
    regularizer: Regularizer,
    lambdas: &Tensor,
    margin: f64,
) -> (Tensor, Tensor) {
    let n = r_a.size()[1] as f64;
    let z = r_a - r_b;
    let z = if margin == 0.0 { z } else { z - margin };
    // σ(−z)/N: ∂(−log σ(z))/∂z = −σ(−z).
    let dz = z.neg().sigmoid() / n;
    match regularizer {
        Regularizer::None => (dz.neg(), dz),
        Regularizer::PairSumSq => {
            let ds = (r_a + r_b) * lambdas * (2.0 / n);
            (&ds - &dz, ds + dz)
        }
        Regularizer::BatchSum => {
            let mean = (r_a.sum_dim_intlist(1, true, r_a.kind()) + r_b.sum_dim_intlist(1, true, r_b.kind()))
                / (2.0 * n);
            let d = mean * lambdas;
            (&d - &dz, d + dz)
        }
        Regularizer::L2 => {
            let scale = lambdas * (2.0 / n);
            (r_a * &scale - &dz, r_b * scale + dz)
        }
    }
}

/// [`loss_grad`] on the host for float32 rewards laid out `[K, N, 2]` (each pair's r_a then
/// r_b), returning ∂L/∂rewards in the same layout. At sweep sizes (K·N of a few thousand) one
/// loop costs less than the dozen small kernels of the tensor version.
pub fn loss_grad_host(
    rewards: &[f32],
    n: usize,
    regularizer: Regularizer,
    lambdas: &[f64],
    margin: f64,
) -> Vec<f32> {
    let nf = n as f64;
    let mut out = vec![0f32; rewards.len()];
    for (k, (cell, grad)) in rewards.chunks_exact(2 * n).zip(out.chunks_exact_mut(2 * n)).enumerate() {
        let lambda = lambdas[k];
        let mean = match regularizer {
            Regularizer::BatchSum => cell.iter().map(|&r| r as f64).sum::<f64>() / (2.0 * nf),
            _ => 0.0,
        };
        for (pair, g) in cell.chunks_exact(2).zip(grad.chunks_exact_mut(2)) {
            let (a, b) = (pair[0] as f64, pair[1] as f64);
            let dz = 1.0 / (1.0 + (a - b - margin).exp()) / nf; // σ(−z)/N
            let (da, db) = match regularizer {
                Regularizer::None => (0.0, 0.0),
                Regularizer::PairSumSq => (2.0 * lambda * (a + b) / nf, 2.0 * lambda * (a + b) / nf),
                Regularizer::BatchSum => (lambda * mean, lambda * mean),
                Regularizer::L2 => (2.0 * lambda * a / nf, 2.0 * lambda * b / nf),
            };
            g[0] = (da - dz) as f32;
            g[1] = (db + dz) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    fn t(xs: &[f64]) -> Tensor {
        Tensor::from_slice(xs).to_kind(Kind::Double)
    }

    fn scalar(x: &Tensor) -> f64 {
        x.double_value(&[])
    }

    // Reference values worked by hand:
    //   pair(2, 1)   = ln(1 + e^-1) = 0.31326168751822286
    //   reg(2, 1)    = 0.01 * (2 + 1)^2 = 0.09
    #[test]
    fn golden_single_pair() {
        let terms = Objective::pair_sum_sq(0.01).loss(&t(&[2.0]), &t(&[1.0]), None);
        assert!((scalar(&terms.pair) - 0.313_261_687_518_222_86).abs() < 1e-12);
        assert!((scalar(&terms.reg) - 0.09).abs() < 1e-12);
        assert!((scalar(&terms.total) - 0.403_261_687_518_222_86).abs() < 1e-12);
    }

    // Two pairs, means over N = 2:
    //   pair = (ln(1 + e^-1) + ln(1 + e^2)) / 2 = (0.3132617 + 2.1269280) / 2 = 1.2200948
    //   reg  = 0.5 * ((2 + 1)^2 + (0 + 2)^2) / 2 = 3.25
    #[test]
    fn golden_mean_over_pairs() {
        let terms = Objective::pair_sum_sq(0.5).loss(&t(&[2.0, 0.0]), &t(&[1.0, 2.0]), None);
        let expected_pair = ((1.0 + (-1.0f64).exp()).ln() + (1.0 + 2.0f64.exp()).ln()) / 2.0;
        assert!((scalar(&terms.pair) - expected_pair).abs() < 1e-12);
        assert!((scalar(&terms.pair) - 1.220_094_8).abs() < 1e-6);
        assert!((scalar(&terms.reg) - 3.25).abs() < 1e-12);
    }

    // r_a = [2, 0], r_b = [1, 2], λ = 0.5, N = 2:
    //   batch_sum = 0.5 · 2 · ((2 + 0 + 1 + 2) / 4)² = 1.5625
    //   l2        = 0.5 · ((4 + 1) + (0 + 4)) / 2 = 2.25
    //   margin 1: pair = (ln(1 + e^0) + ln(1 + e^3)) / 2 = (0.6931472 + 3.0485874) / 2
    #[test]
    fn golden_batch_sum_l2_and_margin() {
        let (a, b) = (t(&[2.0, 0.0]), t(&[1.0, 2.0]));
        assert!((scalar(&regularization(&a, &b, Regularizer::BatchSum, 0.5)) - 1.5625).abs() < 1e-12);
        assert!((scalar(&regularization(&a, &b, Regularizer::L2, 0.5)) - 2.25).abs() < 1e-12);
        let pair = scalar(&bradley_terry(&a, &b, 1.0));
        assert!((pair - (2f64.ln() + (1.0 + 3f64.exp()).ln()) / 2.0).abs() < 1e-12);
        assert!((pair - 1.870_867_3).abs() < 1e-6);
    }

    /// ∂/∂r_i of batch_sum = λ · N · 2 · mean · 1/(2N) = λ · mean, for every reward of the batch.
    #[test]
    fn batch_sum_gradient_is_lambda_times_mean() {
        let a = t(&[0.3, -1.2, 2.5]).set_requires_grad(true);
        let b = t(&[1.1, -0.4, -2.0]).set_requires_grad(true);
        regularization(&a, &b, Regularizer::BatchSum, 0.7).backward();
        let mean = (0.3 - 1.2 + 2.5 + 1.1 - 0.4 - 2.0) / 6.0;
        for g in
            Vec::<f64>::try_from(a.grad()).unwrap().into_iter().chain(Vec::<f64>::try_from(b.grad()).unwrap())
        {
            assert!((g - 0.7 * mean).abs() < 1e-12, "{g}");
        }
    }

    #[test]
    fn none_is_lambda_zero() {
        assert_eq!(Objective::pair_sum_sq(0.0).regularizer, Regularizer::None);
        let terms = Objective::unregularized().loss(&t(&[3.0, -1.0]), &t(&[1.0, 4.0]), None);
        assert_eq!(scalar(&terms.reg), 0.0);
        assert_eq!(scalar(&terms.total), scalar(&terms.pair));
    }

    /// ∂total/∂r_a = −σ(r_b − r_a)/N + 2λ(r_a + r_b)/N and ∂total/∂r_b = σ(r_b − r_a)/N + 2λ(r_a + r_b)/N.
    #[test]
    fn autograd_matches_analytic_gradient() {
        let r_a_vals = [0.3, -1.2, 2.5, 0.0, 7.0];
        let r_b_vals = [1.1, -0.4, -2.0, 0.0, -3.0];
        let lambda = 0.37;
        let n = r_a_vals.len() as f64;
        let r_a = t(&r_a_vals).set_requires_grad(true);
        let r_b = t(&r_b_vals).set_requires_grad(true);
        let terms = Objective::pair_sum_sq(lambda).loss(&r_a, &r_b, None);
        terms.total.backward();
        let g_a = Vec::<f64>::try_from(r_a.grad()).unwrap();
        let g_b = Vec::<f64>::try_from(r_b.grad()).unwrap();
        for i in 0..r_a_vals.len() {
            let (a, b) = (r_a_vals[i], r_b_vals[i]);
            let s = 1.0 / (1.0 + (a - b).exp()); // σ(b − a)
            let reg = 2.0 * lambda * (a + b) / n;
            assert!((g_a[i] - (-s / n + reg)).abs() < 1e-12, "d/dr_a[{i}]");
            assert!((g_b[i] - (s / n + reg)).abs() < 1e-12, "d/dr_b[{i}]");
        }
    }

    /// The hand-derived gradient of K stacked cells equals autograd through [`Objective::loss`]
    /// cell by cell, for every penalty, with a margin, with λ = 0 in one cell.
    #[test]
    fn stacked_gradient_matches_autograd() {
        let (k, n) = (3i64, 5i64);
        let mut normal = crate::testing::Normal::new(3);
        let r_a = normal.tensor(&[k, n]).to_kind(Kind::Double) * 2.0;
        let r_b = normal.tensor(&[k, n]).to_kind(Kind::Double) * 2.0;
        let lambdas = [0.0, 0.3, 1.7];
        let lam = t(&lambdas).view([k, 1]);
        for kind in [Regularizer::None, Regularizer::PairSumSq, Regularizer::BatchSum, Regularizer::L2] {
            for margin in [0.0, 0.7] {
                let (ga, gb) = loss_grad(&r_a, &r_b, kind, &lam, margin);
                for c in 0..k {
                    let a = r_a.get(c).detach().set_requires_grad(true);
                    let b = r_b.get(c).detach().set_requires_grad(true);
                    let o = Objective::penalty(kind, lambdas[c as usize]).with_margin(margin);
                    o.loss(&a, &b, None).total.backward();
                    let close = |x: &Tensor, y: &Tensor| (x - y).abs().max().double_value(&[]) < 1e-12;
                    assert!(close(&ga.get(c), &a.grad()), "{kind:?} m={margin} cell {c} r_a");
                    assert!(close(&gb.get(c), &b.grad()), "{kind:?} m={margin} cell {c} r_b");
                }
            }
        }
    }

    /// The host gradient equals the tensor one (float32 inputs) to float32 rounding.
    #[test]
    fn host_gradient_matches_tensor_gradient() {
        let (k, n) = (3i64, 7i64);
        let r = crate::testing::Normal::new(4).tensor(&[k, n, 2]) * 3.0;
        let lambdas = [0.0, 0.2, 1.5];
        let lam = Tensor::from_slice(&lambdas).to_kind(Kind::Float).view([k, 1]);
        let host: Vec<f32> = Vec::try_from(r.flatten(0, -1)).unwrap();
        for kind in [Regularizer::None, Regularizer::PairSumSq, Regularizer::BatchSum, Regularizer::L2] {
            for margin in [0.0, 0.5] {
                let (ga, gb) = loss_grad(&r.select(2, 0), &r.select(2, 1), kind, &lam, margin);
                let want: Vec<f32> = Vec::try_from(Tensor::stack(&[ga, gb], 2).flatten(0, -1)).unwrap();
                let got = loss_grad_host(&host, n as usize, kind, &lambdas, margin);
                for (x, y) in got.iter().zip(&want) {
                    // The tensor version sums a batch mean in float32: a few ulps apart.
                    assert!((x - y).abs() <= 1e-5 * y.abs() + 1e-8, "{kind:?} m={margin}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn finite_at_extreme_margins() {
        for kind in [Kind::Float, Kind::Double] {
            let r_a = Tensor::from_slice(&[1e4f64, -1e4]).to_kind(kind).set_requires_grad(true);
            let r_b = Tensor::from_slice(&[0.0f64, 0.0]).to_kind(kind).set_requires_grad(true);
            let terms = Objective::pair_sum_sq(0.01).loss(&r_a, &r_b, None);
            terms.total.backward();
            let pair = scalar(&terms.pair);
            // −log σ(1e4) ≈ 0 and −log σ(−1e4) ≈ 1e4; their mean is 5e3.
            assert!((pair - 5e3).abs() < 1e-3, "{kind:?}: pair = {pair}");
            assert!(scalar(&terms.total).is_finite());
            for g in Vec::<f64>::try_from(r_a.grad()).unwrap() {
                assert!(g.is_finite(), "{kind:?}: gradient {g}");
            }
        }
    }

    /// Every case of a fixture computed by PyTorch (tests/fixtures/gen_loss_fixture.py).
    #[test]
    fn matches_pytorch_fixture() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/loss_fixture.json")).unwrap();
        let vec = |v: &serde_json::Value| -> Vec<f64> {
            v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
        };
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 11);
        for (i, c) in cases.iter().enumerate() {
            let lambda = c["lambda"].as_f64().unwrap();
            let reg = match c["regularizer"].as_str().unwrap() {
                "pair_sum_sq" => Regularizer::PairSumSq,
                "batch_sum" => Regularizer::BatchSum,
                "l2" => Regularizer::L2,
                "none" => Regularizer::None,
                other => panic!("unknown regularizer {other}"),
            };
            let margin = c["margin"].as_f64().unwrap();
            let r_a = t(&vec(&c["r_a"])).set_requires_grad(true);
            let r_b = t(&vec(&c["r_b"])).set_requires_grad(true);
            let terms = Objective::penalty(reg, lambda).with_margin(margin).loss(&r_a, &r_b, None);
            terms.total.backward();
            let close = |got: f64, want: f64, what: &str| {
                let tol = 1e-12 * want.abs().max(1.0);
                assert!((got - want).abs() <= tol, "case {i} {what}: {got} vs {want}");
            };
            close(scalar(&terms.pair), c["pair"].as_f64().unwrap(), "pair");
            close(scalar(&terms.reg), c["reg"].as_f64().unwrap(), "reg");
            close(scalar(&terms.total), c["total"].as_f64().unwrap(), "total");
            for (g, w) in Vec::<f64>::try_from(r_a.grad()).unwrap().iter().zip(vec(&c["grad_a"])) {
                close(*g, w, "grad_a");
            }
            for (g, w) in Vec::<f64>::try_from(r_b.grad()).unwrap().iter().zip(vec(&c["grad_b"])) {
                close(*g, w, "grad_b");
            }
        }
    }

    /// The loss written as a plain loop in f64, with the stable form
    /// −log σ(z) = max(−z, 0) + ln(1 + e^−|z|).
    fn pairwise_loss_slow(r_a: &[f64], r_b: &[f64], lambda: f64) -> (f64, f64) {
        let n = r_a.len() as f64;
        let mut pair = 0.0;
        let mut reg = 0.0;
        for (a, b) in r_a.iter().zip(r_b) {
            let z = a - b;
            pair += (-z).max(0.0) + (-z.abs()).exp().ln_1p();
            reg += (a + b) * (a + b);
        }
        (pair / n, lambda * reg / n)
    }

    #[test]
    fn matches_slow_reference_on_random_inputs() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        for trial in 0..50 {
            let n = 1 + trial * 7;
            let scale = [0.1, 1.0, 30.0, 1e3][trial % 4];
            let r_a: Vec<f64> = (0..n).map(|_| (rng.random::<f64>() - 0.5) * scale).collect();
            let r_b: Vec<f64> = (0..n).map(|_| (rng.random::<f64>() - 0.5) * scale).collect();
            let lambda = [0.0, 1e-3, 0.01, 1.0][trial % 4];
            let terms = Objective::pair_sum_sq(lambda).loss(&t(&r_a), &t(&r_b), None);
            let (pair, reg) = pairwise_loss_slow(&r_a, &r_b, lambda);
            assert!((scalar(&terms.pair) - pair).abs() <= 1e-10 * pair.abs().max(1.0), "trial {trial}");
            assert!((scalar(&terms.reg) - reg).abs() <= 1e-10 * reg.abs().max(1.0), "trial {trial}");
        }
    }

    #[test]
    fn per_pair_margins_shift_each_pair() {
        // Pairs (2, 1) with margin 1 and (0, 2) with margin 0, constant margin 0.5:
        //   z = [2 − 1 − 1 − 0.5, 0 − 2 − 0 − 0.5] = [−0.5, −2.5]
        let terms = Objective::unregularized().with_margin(0.5).loss(
            &t(&[2.0, 0.0]),
            &t(&[1.0, 2.0]),
            Some(&t(&[1.0, 0.0])),
        );
        let expected = ((1.0 + 0.5f64.exp()).ln() + (1.0 + 2.5f64.exp()).ln()) / 2.0;
        assert!((scalar(&terms.pair) - expected).abs() < 1e-12);
    }
}
