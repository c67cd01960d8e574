//! Gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_` does it: the L2 norm
//! of the per-tensor L2 norms, and every gradient scaled by `max / (norm + 1e-6)` when that is
//! below 1.

use tch::{Kind, Tensor};

/// Scales the gradients of `vars` in place so that their global L2 norm is at most `max_norm`;
/// returns the norm before clipping. Variables without a gradient are left out.
pub fn clip_grad_norm(vars: &[Tensor], max_norm: f64) -> f64 {
    let grads: Vec<Tensor> = vars.iter().map(Tensor::grad).filter(Tensor::defined).collect();
    if grads.is_empty() {
        return 0.0;
    }
    let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
    let total = Tensor::stack(&norms, 0).norm();
    // In the gradients' precision, as PyTorch computes the coefficient as a tensor.
    let coef = total.full_like(max_norm) / (&total + 1e-6);
    let coef = coef.clamp_max(1.0);
    tch::no_grad(|| {
        for g in &grads {
            let mut g = g.shallow_clone();
            let _ = g.g_mul_(&coef);
        }
    });
    total.to_kind(Kind::Double).double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clipped gradients and norms of PyTorch's clip_grad_norm_
    /// (tests/fixtures/gen_clip_fixture.py), with clipping acting and not.
    #[test]
    fn matches_pytorch_clip_grad_norm() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/clip_fixture.json")).unwrap();
        let floats = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
        };
        let mut acted = 0;
        for c in doc["cases"].as_array().unwrap() {
            let vars: Vec<Tensor> = c["shapes"]
                .as_array()
                .unwrap()
                .iter()
                .zip(c["grads"].as_array().unwrap())
                .map(|(shape, g)| {
                    let shape: Vec<i64> =
                        shape.as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
                    let v = Tensor::zeros(shape.as_slice(), (Kind::Float, tch::Device::Cpu))
                        .set_requires_grad(true);
                    // d(v·g)/dv = g: the variable's gradient is exactly g.
                    (&v * Tensor::from_slice(&floats(g)).view(shape.as_slice())).sum(Kind::Float).backward();
                    v
                })
                .collect();
            let max_norm = c["max_norm"].as_f64().unwrap();
            let total = clip_grad_norm(&vars, max_norm);
            let want_total = c["total_norm"].as_f64().unwrap();
            assert!((total - want_total).abs() <= 1e-6 * want_total, "norm {total} vs {want_total}");
            acted += usize::from(max_norm < want_total);
            for (v, want) in vars.iter().zip(c["clipped"].as_array().unwrap()) {
                let got = Vec::<f32>::try_from(v.grad().flatten(0, -1)).unwrap();
                for (a, b) in got.iter().zip(floats(want)) {
                    assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "max {max_norm}: {a} vs {b}");
                }
            }
        }
        assert!(acted >= 2, "the fixture clips in some cases");
    }
}
