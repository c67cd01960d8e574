//! Host kernels of the batched engine and its flat optimizer: CPU loops that cost less than the
//! LibTorch kernels they replace at sweep sizes (the pair table and its row gathers, one fused
//! pass for a ReLU layer and the head, Adam's per-step update).
//!
//! This is rmlab's only module allowed unsafe code (`#[allow(unsafe_code)] mod kernels` in
//! `train/mod.rs`; `lib.rs` denies it everywhere else), and everything it offers is safe. The
//! unsafe part is private: host views of CPU tensors' elements (`f32s`, `f32s_mut`, `i64s`)
//! and the AVX2/FMA loops. Each public function checks, once a call, what its views and loops
//! need (CPU tensors of the expected kind, contiguous, of the expected sizes; the tensors it
//! writes lying apart in memory from everything it reads; indices in range; the CPU's
//! features) and returns `None` or `false`, having changed nothing, when a check fails. Its
//! views live only while it runs, and it calls none of its caller's code meanwhile (no
//! callbacks), so no other Rust reference to the elements exists and no LibTorch operation of
//! this thread touches them while a view does.
//!
//! What a check cannot see: tch does not expose LibTorch's use counts, so a kernel cannot tell
//! whether another handle to a tensor (a `shallow_clone`, a view) exists. One could only race
//! with a kernel from another thread (`Tensor` is `Send` but not `Sync`); the tensors the
//! engine gives its kernels are made by the thread that trains the group, which hands none of
//! them to another thread while it trains.

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
unsafe fn f32s_mut(t: &Tensor) -> Option<&mut [f32]> {
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
unsafe fn f32s(t: &Tensor) -> Option<&[f32]> {
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
unsafe fn i64s(t: &Tensor) -> Option<&[i64]> {
    if !is_host(t, Kind::Int64) {
        return None;
    }
    if t.numel() == 0 {
        return Some(&[]);
    }
    // SAFETY: as in `f32s_mut`, for int64 elements.
    Some(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const i64, t.numel()) })
}

/// The bytes a contiguous tensor's elements occupy.
fn byte_range(t: &Tensor) -> std::ops::Range<usize> {
    let start = t.data_ptr() as usize;
    start..start + t.kind().elt_size_in_bytes() * t.numel()
}

/// Whether two byte ranges lie apart (an empty range lies apart from everything).
fn apart(a: std::ops::Range<usize>, b: std::ops::Range<usize>) -> bool {
    a.is_empty() || b.is_empty() || a.end <= b.start || b.end <= a.start
}

/// Whether the elements of two contiguous tensors lie apart in memory.
fn disjoint(a: &Tensor, b: &Tensor) -> bool {
    apart(byte_range(a), byte_range(b))
}

/// The table of training pairs of U inputs: for features `[U, R, W]` and `pairs[u]` the
/// (chosen, rejected) response indices of input u's pairs, the rows
/// `[features[u, a], features[u, b]]` `[2W]` of every pair of every input in order, flat
/// `[Σᵤ Pᵤ, 2W]` (what [`gather_rows`] reads). `None` unless `features` is a contiguous float32
/// CPU tensor `[pairs.len(), R, W]` and every index is below R.
pub(super) fn pair_table(features: &Tensor, pairs: &[&[(usize, usize)]]) -> Option<Vec<f32>> {
    let &[u, r, w] = features.size().as_slice() else { return None };
    if u as usize != pairs.len() {
        return None;
    }
    let (rows, width) = (r as usize, w as usize);
    if pairs.iter().any(|p| p.iter().any(|&(a, b)| a >= rows || b >= rows)) {
        return None;
    }
    // SAFETY: the view lives only in this function, which only reads it and writes a Vec of
    // its own.
    let all = unsafe { f32s(features) }?;
    let mut table = Vec::with_capacity(pairs.iter().map(|p| p.len()).sum::<usize>() * 2 * width);
    if rows * width == 0 {
        return Some(table);
    }
    for (f, pairs) in all.chunks_exact(rows * width).zip(pairs) {
        for &(a, b) in pairs.iter() {
            table.extend_from_slice(&f[a * width..][..width]);
            table.extend_from_slice(&f[b * width..][..width]);
        }
    }
    Some(table)
}

/// A batch of rows of `table` (`[T, W]`, flat) written into `out` `[E·b, W]`, for pair indices
/// `idx` `[U, b]` (int64, each below `rows_per_input`) and `entry_input[e] < U`, the input
/// entry e reads: out row `e·b + j` = table row `entry_input[e] · rows_per_input +
/// idx[entry_input[e], j]` (input u's rows start at row `u · rows_per_input`). One loop over
/// host memory, so the row copies overlap their cache misses. Returns false, and changes
/// nothing, unless `out` is a contiguous float32 CPU tensor of E·b·W elements, `idx` a
/// contiguous int64 CPU tensor `[U, b]`, every index in range, the table at least
/// `U · rows_per_input` rows long, and neither `idx` nor `table` overlaps `out` in memory.
pub(super) fn gather_rows(
    out: &mut Tensor,
    table: &[f32],
    width: usize,
    idx: &Tensor,
    rows_per_input: usize,
    entry_input: &[usize],
) -> bool {
    let &[u, b] = idx.size().as_slice() else { return false };
    let (u, b) = (u as usize, b as usize);
    let table_bytes = table.as_ptr_range();
    let ok = width > 0
        && is_host(out, Kind::Float)
        && out.numel() == entry_input.len() * b * width
        && is_host(idx, Kind::Int64)
        && entry_input.iter().all(|&e| e < u)
        && table.len() >= u * rows_per_input * width
        && disjoint(out, idx)
        && apart(byte_range(out), table_bytes.start as usize..table_bytes.end as usize);
    if !ok {
        return false;
    }
    // SAFETY: the views live only in this function, which calls no other code while they do;
    // `out` lies apart in memory from `idx` and `table`, which are only read.
    let (Some(idx), Some(buf)) = (unsafe { i64s(idx) }, unsafe { f32s_mut(out) }) else { return false };
    if idx.iter().any(|&i| i < 0 || i as usize >= rows_per_input) {
        return false;
    }
    if b == 0 {
        return true;
    }
    for (i, dst) in buf.chunks_exact_mut(width).enumerate() {
        // Entry i / b (an input, or a cell reading its input), pair i % b.
        let u = entry_input[i / b];
        let row = u * rows_per_input + idx[u * b + i % b] as usize;
        dst.copy_from_slice(&table[row * width..][..width]);
    }
    true
}

/// Whether this CPU runs the head kernels, [`relu_head_mask`] and [`head_rewards`].
pub(super) fn head_kernels_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// For pre-activations `a` `[K, N, H]` and head blocks `head` `[K, H + 1, 1]` (weights, then
/// bias): the rewards `r[k, n] = b_k + Σⱼ relu(a[k, n, j]) · w[k, j]`, `[K·N]` flat, while `a`
/// becomes the mask [a > 0] in place. A NaN pre-activation stays NaN through the ReLU (as
/// LibTorch's), so divergence still shows. `None`, and `a` unchanged, unless both are
/// contiguous float32 CPU tensors of those shapes lying apart in memory and the CPU has AVX2
/// and FMA ([`head_kernels_available`]).
pub(super) fn relu_head_mask(a: &mut Tensor, head: &Tensor) -> Option<Vec<f32>> {
    let &[k, n, h] = a.size().as_slice() else { return None };
    let (k, n, h) = (k as usize, n as usize, h as usize);
    let ok = head_kernels_available()
        && is_host(a, Kind::Float)
        && is_host(head, Kind::Float)
        && head.numel() == k * (h + 1)
        && disjoint(a, head);
    if !ok {
        return None;
    }
    let mut r = vec![0f32; k * n];
    // SAFETY: the views live only in this function, which calls no other code while they do;
    // `a`, the one written, lies apart from `head`; the CPU has AVX2 and FMA (checked above).
    unsafe {
        let (a, w) = (f32s_mut(a)?, f32s(head)?);
        relu_head_avx2(a, w, k, n, h, &mut r);
    }
    Some(r)
}

/// [`relu_head_mask`]'s loop over `a` `[K, N, H]` and `w` `[K, H + 1]` into `r` `[K·N]`.
///
/// # Safety
/// The CPU has AVX2 and FMA ([`head_kernels_available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn relu_head_avx2(a: &mut [f32], w: &[f32], k: usize, n: usize, h: usize, r: &mut [f32]) {
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
unsafe fn relu_head_avx2(_: &mut [f32], _: &[f32], _: usize, _: usize, _: usize, _: &mut [f32]) {
    unreachable!("head_kernels_available is false off x86_64")
}

/// The rewards of heads with one output: for inputs `x` `[K, N, W]` and head blocks `head`
/// `[K, W + 1, 1]` (weights, then bias) or `[K, W, 1]` (a linear model: the bias is the last
/// weight, read by the ones column of `x`), `r[k, n] = Σᵢ x[k, n, i] · w[k, i]` (`+ b_k`),
/// `[K·N]` flat. Every row is summed in one fixed order (eight partial sums, their sum, then
/// the tail), so a cell's rewards do not depend on how many cells share the call: MKL's
/// batched matmul computes one matrix-vector product (a cell alone) by another kernel than
/// several, and rounds differently. `None` unless both are contiguous float32 CPU tensors of
/// those shapes and the CPU has AVX2 and FMA ([`head_kernels_available`]).
pub(super) fn head_rewards(x: &Tensor, head: &Tensor) -> Option<Vec<f32>> {
    let &[k, n, w] = x.size().as_slice() else { return None };
    let &[hk, rows, 1] = head.size().as_slice() else { return None };
    let ok = head_kernels_available()
        && hk == k
        && (rows == w || rows == w + 1)
        && is_host(x, Kind::Float)
        && is_host(head, Kind::Float);
    if !ok {
        return None;
    }
    let mut r = vec![0f32; (k * n) as usize];
    // SAFETY: the views live only in this function, which calls no other code while they do
    // and only reads them; the CPU has AVX2 and FMA (checked above).
    unsafe {
        let (x, head) = (f32s(x)?, f32s(head)?);
        head_avx2(x, head, [k, n, w, rows].map(|d| d as usize), &mut r);
    }
    Some(r)
}

/// [`head_rewards`]' loop over `x` `[K, N, W]` and `w` `[K, rows]` (rows = W, or W + 1 with
/// the bias last) into `r` `[K·N]`; `dims` = [K, N, W, rows].
///
/// # Safety
/// The CPU has AVX2 and FMA ([`head_kernels_available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(x: &[f32], w: &[f32], dims: [usize; 4], r: &mut [f32]) {
    const LANES: usize = 8;
    let [k, n, width, rows] = dims;
    let body = width - width % LANES;
    for cell in 0..k {
        let block = &w[cell * rows..][..rows];
        let wk = &block[..width];
        for row in 0..n {
            let xr = &x[(cell * n + row) * width..][..width];
            // Eight partial sums, so the loop vectorizes.
            let mut acc = [0f32; LANES];
            for (xc, wc) in xr[..body].chunks_exact(LANES).zip(wk[..body].chunks_exact(LANES)) {
                for i in 0..LANES {
                    acc[i] = xc[i].mul_add(wc[i], acc[i]);
                }
            }
            let mut sum = acc.iter().sum::<f32>();
            for (&xi, &wi) in xr[body..].iter().zip(&wk[body..]) {
                sum = xi.mul_add(wi, sum);
            }
            r[cell * n + row] = if rows > width { sum + block[width] } else { sum };
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn head_avx2(_: &[f32], _: &[f32], _: [usize; 4], _: &mut [f32]) {
    unreachable!("head_kernels_available is false off x86_64")
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
    // CPU has FMA; `root` is a fresh tensor. Each statement's views end with it, and the one
    // LibTorch call between them (`sqrt`) runs while none is live.
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

    fn host(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    /// The pair table and a gather from it equal LibTorch's `index_select` of the same rows;
    /// bad shapes, indices out of range and overlapping tensors are refused, changing nothing.
    #[test]
    fn pair_table_and_gather_equal_index_select() {
        let mut normal = crate::testing::Normal::new(7);
        let features = normal.tensor(&[2, 5, 3]); // [U, R, W]
        let pairs: [&[(usize, usize)]; 2] = [&[(0, 1), (4, 2), (3, 3)], &[(2, 0), (1, 4), (0, 3)]];
        let table = pair_table(&features, &pairs).unwrap();
        let reference: Vec<Tensor> = pairs
            .iter()
            .enumerate()
            .map(|(u, p)| {
                let (a, b): (Vec<i64>, Vec<i64>) = p.iter().map(|&(a, b)| (a as i64, b as i64)).unzip();
                let f = features.get(u as i64);
                Tensor::cat(
                    &[f.index_select(0, &Tensor::from_slice(&a)), f.index_select(0, &Tensor::from_slice(&b))],
                    1,
                )
            })
            .collect();
        let reference = Tensor::cat(&reference, 0); // [U·P, 2W]
        assert_eq!(table, host(&reference));
        assert!(pair_table(&features, &pairs[..1]).is_none(), "one pair list an input");
        assert!(pair_table(&features, &[&[(0, 5)], &[]]).is_none(), "a response out of range");
        assert!(pair_table(&features.to_kind(Kind::Double), &pairs).is_none());

        // Entries: input 1, input 0, input 1 again (cells reading their inputs); b = 2.
        let idx = Tensor::from_slice(&[2i64, 0, 1, 1]).view([2, 2]);
        let entry_input = [1, 0, 1];
        let mut out = Tensor::zeros([3, 2, 6], (Kind::Float, Device::Cpu));
        assert!(gather_rows(&mut out, &table, 6, &idx, 3, &entry_input));
        let rows = Tensor::from_slice(&[3 + 1i64, 3 + 1, 2, 0, 3 + 1, 3 + 1]);
        assert_eq!(host(&out), host(&reference.index_select(0, &rows)));

        let before = host(&out);
        let refused = |out: &mut Tensor, idx: &Tensor, entry_input: &[usize], table: &[f32]| {
            !gather_rows(out, table, 6, idx, 3, entry_input)
        };
        assert!(refused(&mut out, &Tensor::from_slice(&[2i64, 0, 1, 3]).view([2, 2]), &entry_input, &table));
        assert!(refused(&mut out, &Tensor::from_slice(&[2i64, 0, -1, 1]).view([2, 2]), &entry_input, &table));
        assert!(refused(&mut out, &idx, &[1, 0, 2], &table), "an entry of a third input");
        assert!(refused(&mut out, &idx, &entry_input, &table[..30]), "a table too short");
        assert!(refused(&mut out, &idx, &entry_input[..2], &table), "an output of another size");
        assert_eq!(host(&out), before, "a refused gather changes nothing");
        // An output that is a view of the indices' memory.
        let raw = Tensor::zeros([36], (Kind::Int64, Device::Cpu));
        let mut aliased = raw.view_dtype(Kind::Float).narrow(0, 0, 36);
        assert!(refused(&mut aliased, &raw.narrow(0, 0, 4).view([2, 2]), &entry_input, &table));
    }

    /// The fused pass equals ReLU then the head's product by LibTorch, and leaves the mask.
    #[test]
    fn relu_head_equals_tensor_ops() {
        if !head_kernels_available() {
            return;
        }
        let mut normal = crate::testing::Normal::new(3);
        // H = 11: one vectorized chunk of eight and a tail of three.
        let (k, n, h) = (2, 4, 11);
        let pre = normal.tensor(&[k, n, h]);
        let head = normal.tensor(&[k, h + 1, 1]);
        let mut a = pre.copy();
        let r = relu_head_mask(&mut a, &head).unwrap();
        let want = pre.relu().bmm(&head.narrow(1, 0, h)).squeeze_dim(-1) + head.narrow(1, h, 1).view([k, 1]);
        for (x, y) in r.iter().zip(host(&want)) {
            assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{x} vs {y}");
        }
        assert_eq!(host(&a), host(&pre.gt(0.0).to_kind(Kind::Float)));
        let mut b = pre.copy();
        assert!(relu_head_mask(&mut b, &head.narrow(1, 0, h)).is_none(), "a head without its bias");
        // Pre-activations [K, 1, H] in the head's own memory.
        let raw = head.copy();
        let mut same = raw.view([-1]).narrow(0, 0, k * h).view([k, 1, h]);
        assert!(relu_head_mask(&mut same, &raw).is_none(), "the head's own memory");
        assert_eq!(host(&b), host(&pre), "a refused pass changes nothing");
    }

    /// Head rewards equal a float64 matmul to float32 rounding, with the bias as its own row
    /// and folded into the weights, and a cell's rewards are the same bits alone as among
    /// others.
    #[test]
    fn head_rewards_equal_a_double_matmul_and_ignore_other_cells() {
        if !head_kernels_available() {
            return;
        }
        let mut normal = crate::testing::Normal::new(5);
        // W = 19: two vectorized chunks of eight and a tail of three.
        let (k, n, w) = (3, 5, 19);
        let x = normal.tensor(&[k, n, w]);
        for rows in [w, w + 1] {
            let head = normal.tensor(&[k, rows, 1]);
            let r = head_rewards(&x, &head).unwrap();
            let (xd, hd) = (x.to_kind(Kind::Double), head.to_kind(Kind::Double));
            let mut want = xd.bmm(&hd.narrow(1, 0, w)).squeeze_dim(-1);
            if rows > w {
                want += hd.narrow(1, w, 1).view([k, 1]);
            }
            let want = Vec::<f64>::try_from(want.view([-1])).unwrap();
            for (x, y) in r.iter().zip(want) {
                assert!((f64::from(*x) - y).abs() <= 1e-5 * y.abs().max(1.0), "{x} vs {y}");
            }
            for cell in 0..k {
                let alone =
                    head_rewards(&x.narrow(0, cell, 1).copy(), &head.narrow(0, cell, 1).copy()).unwrap();
                let of_cell = &r[(cell * n) as usize..][..n as usize];
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&alone), bits(of_cell), "cell {cell}, {rows} rows");
            }
        }
        assert!(head_rewards(&x, &normal.tensor(&[k, w + 2, 1])).is_none(), "rows neither W nor W + 1");
        assert!(head_rewards(&x.transpose(0, 1), &normal.tensor(&[n, w, 1])).is_none(), "not contiguous");
    }
}
