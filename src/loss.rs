//! The regularized pairwise loss: Bradley–Terry plus a penalty on each pair's reward sum.
//!
//! `L = mean(−log σ(r_a − r_b)) + λ · mean((r_a + r_b)²)`
//!
//! Pure functions: tensors in, loss terms out. Nothing here owns parameters or state.

use tch::Tensor;

/// The penalty added to the Bradley–Terry term.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Regularizer {
    /// No penalty (λ = 0): the unregularized Bradley–Terry loss.
    None,
    /// `λ · mean((r_a + r_b)²)`: pins each pair's reward sum (TRL's `center_rewards_coefficient`).
    PairSumSq { lambda: f64 },
}

impl Regularizer {
    /// The regularizer for a `pair_sum_sq` coefficient; λ = 0 is [`Regularizer::None`].
    pub fn pair_sum_sq(lambda: f64) -> Self {
        if lambda == 0.0 { Regularizer::None } else { Regularizer::PairSumSq { lambda } }
    }

    /// The coefficient λ (0 for `None`).
    pub fn lambda(&self) -> f64 {
        match self {
            Regularizer::None => 0.0,
            Regularizer::PairSumSq { lambda } => *lambda,
        }
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

/// Bradley–Terry term: `mean(−log σ(r_a − r_b))` over N pairs.
///
/// `r_a` (preferred) and `r_b`: shape `[N]`. Returns a scalar. Uses `log_sigmoid`, which is
/// stable at any margin (it never forms `σ` and then takes its log).
pub fn bradley_terry(r_a: &Tensor, r_b: &Tensor) -> Tensor {
    -(r_a - r_b).log_sigmoid().mean(None)
}

/// The regularizer's value for rewards of shape `[N]`: a scalar, mean over pairs.
pub fn regularization(r_a: &Tensor, r_b: &Tensor, reg: &Regularizer) -> Tensor {
    match reg {
        Regularizer::None => r_a.zeros_like().sum(None),
        Regularizer::PairSumSq { lambda } => (r_a + r_b).square().mean(None) * *lambda,
    }
}

/// All loss terms for rewards `r_a` (preferred) and `r_b`, both of shape `[N]`; every term is
/// a mean over the N pairs.
pub fn pairwise_loss(r_a: &Tensor, r_b: &Tensor, reg: &Regularizer) -> LossTerms {
    let pair = bradley_terry(r_a, r_b);
    let reg = regularization(r_a, r_b, reg);
    let total = &pair + &reg;
    LossTerms { pair, reg, total }
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
        let terms = pairwise_loss(&t(&[2.0]), &t(&[1.0]), &Regularizer::pair_sum_sq(0.01));
        assert!((scalar(&terms.pair) - 0.313_261_687_518_222_86).abs() < 1e-12);
        assert!((scalar(&terms.reg) - 0.09).abs() < 1e-12);
        assert!((scalar(&terms.total) - 0.403_261_687_518_222_86).abs() < 1e-12);
    }

    // Two pairs, means over N = 2:
    //   pair = (ln(1 + e^-1) + ln(1 + e^2)) / 2 = (0.3132617 + 2.1269280) / 2 = 1.2200948
    //   reg  = 0.5 * ((2 + 1)^2 + (0 + 2)^2) / 2 = 3.25
    #[test]
    fn golden_mean_over_pairs() {
        let terms = pairwise_loss(&t(&[2.0, 0.0]), &t(&[1.0, 2.0]), &Regularizer::pair_sum_sq(0.5));
        let expected_pair = ((1.0 + (-1.0f64).exp()).ln() + (1.0 + 2.0f64.exp()).ln()) / 2.0;
        assert!((scalar(&terms.pair) - expected_pair).abs() < 1e-12);
        assert!((scalar(&terms.pair) - 1.220_094_8).abs() < 1e-6);
        assert!((scalar(&terms.reg) - 3.25).abs() < 1e-12);
    }

    #[test]
    fn none_is_lambda_zero() {
        assert_eq!(Regularizer::pair_sum_sq(0.0), Regularizer::None);
        let terms = pairwise_loss(&t(&[3.0, -1.0]), &t(&[1.0, 4.0]), &Regularizer::None);
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
        let terms = pairwise_loss(&r_a, &r_b, &Regularizer::pair_sum_sq(lambda));
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

    #[test]
    fn finite_at_extreme_margins() {
        for kind in [Kind::Float, Kind::Double] {
            let r_a = Tensor::from_slice(&[1e4f64, -1e4]).to_kind(kind).set_requires_grad(true);
            let r_b = Tensor::from_slice(&[0.0f64, 0.0]).to_kind(kind).set_requires_grad(true);
            let terms = pairwise_loss(&r_a, &r_b, &Regularizer::pair_sum_sq(0.01));
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
        assert!(cases.len() >= 6);
        for (i, c) in cases.iter().enumerate() {
            let lambda = c["lambda"].as_f64().unwrap();
            let r_a = t(&vec(&c["r_a"])).set_requires_grad(true);
            let r_b = t(&vec(&c["r_b"])).set_requires_grad(true);
            let terms = pairwise_loss(&r_a, &r_b, &Regularizer::pair_sum_sq(lambda));
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
            let terms = pairwise_loss(&t(&r_a), &t(&r_b), &Regularizer::pair_sum_sq(lambda));
            let (pair, reg) = pairwise_loss_slow(&r_a, &r_b, lambda);
            assert!((scalar(&terms.pair) - pair).abs() <= 1e-10 * pair.abs().max(1.0), "trial {trial}");
            assert!((scalar(&terms.reg) - reg).abs() <= 1e-10 * reg.abs().max(1.0), "trial {trial}");
        }
    }
}
