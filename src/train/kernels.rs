//! Host kernels of the batched engine and its flat optimizer: CPU loops that cost less than the
//! LibTorch kernels they replace at sweep sizes (Adam's per-step update, row gathers, one fused
//! pass for a ReLU layer and the head), with the host-memory views of CPU tensors they work on.
//! This file defines all of rmlab's unsafe functions (the batched engine calls the views in
//! unsafe blocks of its own); every unsafe block names what makes it sound.

use tch::{Device, Kind, Tensor};

/// Whether `t` is a contiguous CPU tensor of `kind`.
pub(super) fn is_host(t: &Tensor, kind: Kind) -> bool {
    t.device() == Device::Cpu && t.kind() == kind && t.is_contiguous()
}

/// The float32 elements of a contiguous float32 CPU tensor, writable; `None` otherwise (an
/// empty tensor gives an empty slice: its data pointer may be null).
///
/// # Safety
/// While the slice lives, nothing else reads or writes `t`'s elements (no other slice of it,
/// no LibTorch operation on it or on a view of it).
#[allow(clippy::mut_from_ref)]
pub(super) unsafe fn f32s_mut(t: &Tensor) -> Option<&mut [f32]> {
    if !is_host(t, Kind::Float) {
        return None;
    }
    if t.numel() == 0 {
        return Some(&mut []);
    }
    // SAFETY: a non-empty contiguous float32 CPU tensor holds numel() initialised f32s from
    // data_ptr(), which is non-null and aligned; exclusivity is the caller's contract.
    Some(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel()) })
}

/// The float32 elements of a contiguous float32 CPU tensor; `None` otherwise.
///
/// # Safety
/// Nothing writes `t`'s elements while the slice lives.
pub(super) unsafe fn f32s(t: &Tensor) -> Option<&[f32]> {
    if !is_host(t, Kind::Float) {
        return None;
    }
    if t.numel() == 0 {
        return Some(&[]);
    }
    // SAFETY: as in `f32s_mut`; that nothing writes meanwhile is the caller's contract.
    Some(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) })
}

/// The int64 elements of a contiguous int64 CPU tensor; `None` otherwise.
///
/// # Safety
/// Nothing writes `t`'s elements while the slice lives.
pub(super) unsafe fn i64s(t: &Tensor) -> Option<&[i64]> {
    if !is_host(t, Kind::Int64) {
        return None;
    }
    if t.numel() == 0 {
        return Some(&[]);
    }
    // SAFETY: as in `f32s_mut`, for int64 elements.
    Some(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const i64, t.numel()) })
}

/// Whether this CPU runs [`relu_head_mask`].
pub(super) fn relu_head_kernel_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// For pre-activations `a` `[K, N, H]` and head blocks `w` `[K, H + 1]` (weights, then bias):
/// `r[k, n] = b_k + Σⱼ relu(a[k, n, j]) · w[k, j]`, and `a` becomes the mask [a > 0]. A NaN
/// pre-activation stays NaN through the ReLU (as LibTorch's), so divergence still shows.
///
/// # Safety
/// The CPU has AVX2 and FMA ([`relu_head_kernel_available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn relu_head_mask(a: &mut [f32], w: &[f32], k: usize, n: usize, h: usize, r: &mut [f32]) {
    const LANES: usize = 8;
    for cell in 0..k {
        let (wk, bias) = (&w[cell * (h + 1)..][..h], w[cell * (h + 1) + h]);
        for row in 0..n {
            let ar = &mut a[(cell * n + row) * h..][..h];
            // Eight partial sums, so the loop vectorizes.
            let mut acc = [0f32; LANES];
            let body = h - h % LANES;
            for (chunk, wc) in ar[..body].chunks_exact_mut(LANES).zip(wk[..body].chunks_exact(LANES)) {
                for i in 0..LANES {
                    let x = chunk[i];
                    let relu = if x < 0.0 { 0.0 } else { x };
                    acc[i] = relu.mul_add(wc[i], acc[i]);
                    chunk[i] = if x > 0.0 { 1.0 } else { 0.0 };
                }
            }
            let mut sum = acc.iter().sum::<f32>();
            for (x, &wj) in ar[body..].iter_mut().zip(&wk[body..]) {
                let relu = if *x < 0.0 { 0.0 } else { *x };
                sum = relu.mul_add(wj, sum);
                *x = if *x > 0.0 { 1.0 } else { 0.0 };
            }
            r[cell * n + row] = sum + bias;
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn relu_head_mask(_: &mut [f32], _: &[f32], _: usize, _: usize, _: usize, _: &mut [f32]) {
    unreachable!("relu_head_kernel_available is false off x86_64")
}

/// Whether every tensor is a contiguous float32 CPU tensor of the same length, no two of their
/// element ranges overlap in memory, and the CPU has fused multiply-add.
fn fma_on_host(ts: &[&Tensor]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let n = ts[0].numel();
        std::arch::is_x86_feature_detected!("fma")
            && ts.iter().all(|t| is_host(t, Kind::Float) && t.numel() == n)
            && ts.iter().enumerate().all(|(i, a)| ts[..i].iter().all(|b| disjoint(a, b)))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ts, Kind::Float);
        false
    }
}

/// Whether the element ranges of two contiguous float32 tensors lie apart in memory.
fn disjoint(a: &Tensor, b: &Tensor) -> bool {
    let range = |t: &Tensor| {
        let start = t.data_ptr() as usize;
        start..start + 4 * t.numel()
    };
    let (a, b) = (range(a), range(b));
    a.end <= b.start || b.end <= a.start
}

/// The elements of a tensor `fma_on_host` accepted.
///
/// # Safety
/// As [`f32s_mut`].
#[allow(clippy::mut_from_ref)]
unsafe fn slice(t: &Tensor) -> &mut [f32] {
    // SAFETY: the caller upholds `f32s_mut`'s contract.
    unsafe { f32s_mut(t) }.expect("checked by fma_on_host")
}

/// The coefficients of one Adam step, each rounded once to float32 (as LibTorch's CPU kernels
/// get them from double).
pub(super) struct AdamCoefficients {
    /// β₁, 1 − β₁, β₂, 1 − β₂.
    pub moments: [f32; 4],
    /// The coupled L2 weight decay added to the gradient.
    pub weight_decay: f32,
    /// −lr / (1 − β₁ᵗ).
    pub step_size: f32,
    /// √(1 − β₂ᵗ).
    pub bias2_sqrt: f32,
    pub eps: f32,
}

/// One step of `torch::optim::Adam` on parameters `p`, gradient `g`, moments `m` and `v` (all
/// `[P]`), in place, as two loops over host memory that round as LibTorch's kernels do:
/// `train::optim`'s tests hold them bit for bit to LibTorch's Adam. Returns false, and changes
/// nothing, unless the four are contiguous float32 CPU tensors of one length lying apart in
/// memory on a CPU with FMA.
pub(super) fn adam_on_host(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, c: &AdamCoefficients) -> bool {
    if !fma_on_host(&[p, g, m, v]) {
        return false;
    }
    // SAFETY: `fma_on_host` checked that the four tensors are contiguous float32 CPU tensors of
    // one length whose elements lie apart in memory (so the slices do not alias) and that the
    // CPU has FMA; `root` is a fresh tensor, and nothing else touches these tensors meanwhile
    // (the caller holds them for the step).
    unsafe {
        adam_moments(slice(p), slice(g), slice(m), slice(v), c.moments, c.weight_decay);
        let root = v.sqrt();
        adam_update(slice(p), slice(m), slice(&root), c.step_size, c.bias2_sqrt, c.eps);
    }
    true
}

/// Adam's moments as `torch::optim::Adam` computes them: g ← g + wd·p (`add` with alpha),
/// m ← β₁m + (1 − β₁)g (`mul_`, `add_` with alpha), v ← β₂v + ((1 − β₂)g)g (`addcmul_`);
/// LibTorch's CPU kernels fuse each "+ α·x" into one multiply-add.
///
/// # Safety
/// The CPU has FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn adam_moments(p: &[f32], g: &[f32], m: &mut [f32], v: &mut [f32], coefs: [f32; 4], wd: f32) {
    let [b1, one_minus_b1, b2, one_minus_b2] = coefs;
    for i in 0..p.len() {
        let gi = if wd != 0.0 { p[i].mul_add(wd, g[i]) } else { g[i] };
        m[i] = gi.mul_add(one_minus_b1, m[i] * b1);
        v[i] = (one_minus_b2 * gi).mul_add(gi, v[i] * b2);
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn adam_moments(_: &[f32], _: &[f32], _: &mut [f32], _: &mut [f32], _: [f32; 4], _: f32) {
    unreachable!("only x86_64 takes the host path")
}

/// Adam's update from `root` = √v: p ← p + (step·m) / (√v / √(1 − β₂ᵗ) + ε) (`addcdiv_`).
fn adam_update(p: &mut [f32], m: &[f32], root: &[f32], step: f32, bias2_sqrt: f32, eps: f32) {
    for i in 0..p.len() {
        p[i] += step * m[i] / (root[i] / bias2_sqrt + eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_see_the_tensor_and_refuse_other_layouts() {
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
        // SAFETY: no other access to `t` while `s` lives.
        let s = unsafe { f32s_mut(&t) }.unwrap();
        s[3] = 9.0;
        assert_eq!(t.double_value(&[1, 1]), 9.0);
        let (transposed, double) = (t.tr(), t.to_kind(Kind::Double));
        assert!(unsafe { f32s_mut(&transposed) }.is_none(), "a transposed view is not contiguous");
        assert!(unsafe { f32s_mut(&double) }.is_none());
        // A row of a contiguous tensor starts at its own offset.
        let row = Tensor::from_slice(&[5i64, 6, 7, 8]).view([2, 2]).get(1);
        assert_eq!(unsafe { i64s(&row) }.unwrap(), &[7, 8]);
    }
}
