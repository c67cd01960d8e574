//! K reward models of one shape, stacked: all parameters in one flat tensor, a batched
//! forward pass and a hand-derived backward pass.
//!
//! The layout is chosen for the CPU kernels: layer l of cell k is a block `[in + 1, out]`
//! (its weight transposed, then its bias as the last row), so the forward pass multiplies
//! contiguous `[N, in] · [in, out]` matrices and every intermediate is contiguous. The first
//! layer's input carries a column of ones ([`StackedMlp::with_ones`]), which folds its bias
//! into the matmul and its bias gradient into the weight gradient's matmul. Autograd is not
//! used: the backward pass is a fixed sequence of batched matmuls and one activation backward
//! per hidden layer, written into a flat gradient `[P]` that the flat optimizer
//! (`train::optim`) consumes whole.
//!
//! Cells may share an input ([`StackedMlp::share_inputs`]): cells of one seed that differ only
//! in λ train on the same data and draw the same batches, so their rows can be gathered once
//! and the input given as `[U, N, D + 1]`, one a group of cells, instead of `[K, N, D + 1]`.
//! Every cell still multiplies its own weights with the same numbers, so its results are
//! unchanged to the bit.

use std::marker::PhantomData;

use tch::{Kind, Tensor};

use crate::experiment::config::Activation;
use crate::model::activate;
use crate::train::kernels::{self, head_kernels_available};

/// The parameters of K models with the same layer sizes.
pub struct StackedMlp {
    k: i64,
    /// Every parameter, flat `[P]`; `ws` are views into it.
    pub params: Tensor,
    /// ∂loss/∂params `[P]`, written by [`StackedMlp::backward`]; `gws` are views into it.
    pub grad: Tensor,
    /// Layer l: `[K, in_l + 1, out_l]`, the last row the bias; the head (out = 1) last.
    ws: Vec<Tensor>,
    gws: Vec<Tensor>,
    activation: Activation,
    /// Use the fused host kernel for one ReLU layer when the tensors are on the CPU.
    host_kernels: bool,
    /// Inputs shared by consecutive cells; `None`: one input a cell.
    shared: Option<SharedInputs>,
    /// The scaled first-layer input of the backward pass from a shared input,
    /// `[K, N, D + 1]`, kept between steps of one batch size (a fresh one would be faulted in
    /// every step).
    scaled: Tensor,
}

/// Which input each cell reads when consecutive cells share one.
struct SharedInputs {
    /// Cells of each input, in order: input u feeds the `counts[u]` cells after those of the
    /// inputs before it.
    counts: Vec<i64>,
    /// The input of every cell, `[K]` int64: what gives each cell its own copy.
    of_cell: Tensor,
}

/// What the backward pass needs from a forward pass of input `xs`, which it borrows for `'x`:
/// `inputs[0]` is a handle to `xs` (or to a copy of it), which [`StackedMlp::backward`] reads
/// and may scale in place, so the borrow checker keeps the caller from writing `xs` (a batch
/// buffer reused for the next micro-batch) while the tape can still be used.
pub struct Tape<'x> {
    /// The input of every layer: `[K, N, D + 1]` (with ones) for the first (`[U, N, D + 1]` when
    /// `shared_input`), `[K, N, in_l]` after.
    inputs: Vec<Tensor>,
    /// Pre-activations of hidden layers, kept only for activations whose derivative needs them
    /// (GELU, SiLU); ReLU and tanh use the layer's output.
    pre: Vec<Option<Tensor>>,
    /// `inputs[1]` holds the ReLU mask [h > 0] rather than h (the fused host kernel).
    hidden_is_mask: bool,
    /// `inputs[0]` is `[U, N, D + 1]`, one a group of cells ([`StackedMlp::share_inputs`]).
    shared_input: bool,
    /// The borrow of the input `inputs[0]` holds a handle to.
    input: PhantomData<&'x Tensor>,
}

impl StackedMlp {
    /// Stacks K models given as `layers[l][k] = (weight [out, in], bias [out])`, head last.
    pub fn new(layers: &[Vec<(Tensor, Tensor)>], activation: Activation) -> StackedMlp {
        let k = layers[0].len() as i64;
        let blocks: Vec<Tensor> = layers
            .iter()
            .map(|cells| {
                let per_cell: Vec<Tensor> = cells
                    .iter()
                    .map(|(w, b)| Tensor::cat(&[w.detach().tr(), b.detach().unsqueeze(0)], 0))
                    .collect();
                Tensor::stack(&per_cell, 0).to_kind(Kind::Float)
            })
            .collect();
        let params = Tensor::cat(&blocks.iter().map(|b| b.flatten(0, -1)).collect::<Vec<_>>(), 0);
        let grad = params.zeros_like();
        let views = |flat: &Tensor| {
            let mut offset = 0;
            blocks
                .iter()
                .map(|b| {
                    let n = b.numel() as i64;
                    let v = flat.narrow(0, offset, n).view(b.size().as_slice());
                    offset += n;
                    v
                })
                .collect::<Vec<_>>()
        };
        let (ws, gws) = (views(&params), views(&grad));
        StackedMlp {
            k,
            params,
            grad,
            ws,
            gws,
            activation,
            host_kernels: true,
            shared: None,
            scaled: Tensor::new(),
        }
    }

    /// From now on consecutive cells share inputs, `counts[u]` cells input u (Σ counts = K):
    /// [`StackedMlp::forward`] and [`StackedMlp::forward_train`] take inputs either shared,
    /// `[U, N, D + 1]` with U < K (each cell reading its input's entry), or one a cell,
    /// `[K, N, D + 1]`, as always.
    pub fn share_inputs(&mut self, counts: &[usize]) {
        assert_eq!(counts.iter().sum::<usize>(), self.k as usize, "every cell reads one input");
        if counts.len() == self.k as usize {
            self.shared = None;
            return;
        }
        let of_cell: Vec<i64> =
            counts.iter().enumerate().flat_map(|(u, &c)| std::iter::repeat_n(u as i64, c)).collect();
        let device = self.params.device();
        self.shared = Some(SharedInputs {
            counts: counts.iter().map(|&c| c as i64).collect(),
            of_cell: Tensor::from_slice(&of_cell).to_device(device),
        });
    }

    /// Whether `xs` has one entry an input shared by several cells (else one a cell); panics
    /// if it has neither.
    fn is_shared(&self, xs: &Tensor) -> bool {
        let n = xs.size()[0];
        let inputs = self.shared.as_ref().map(|sh| sh.counts.len() as i64);
        assert!(n == self.k || Some(n) == inputs, "inputs have one entry a cell or one a shared input");
        n != self.k
    }

    /// Inputs as one entry a cell, `[K, ...]` (a copy when `xs` is shared).
    pub fn per_cell(&self, xs: &Tensor) -> Tensor {
        match &self.shared {
            Some(sh) if self.is_shared(xs) => xs.index_select(0, &sh.of_cell),
            _ => xs.shallow_clone(),
        }
    }

    /// The input of every cell, `[K]` int64 on the parameters' device: `[0, 1, …, K − 1]`
    /// unless inputs are shared.
    pub fn input_of_cells(&self) -> Tensor {
        match &self.shared {
            Some(sh) => sh.of_cell.shallow_clone(),
            None => Tensor::arange(self.k, (Kind::Int64, self.params.device())),
        }
    }

    /// The groups of cells sharing an input: (input, first cell, cells).
    fn groups(&self) -> impl Iterator<Item = (i64, i64, i64)> + '_ {
        let counts = self.shared.as_ref().map(|sh| sh.counts.as_slice()).unwrap_or(&[]);
        counts.iter().enumerate().scan(0, |start, (u, &c)| {
            let first = *start;
            *start += c;
            Some((u as i64, first, c))
        })
    }

    /// Features `[..., D]` with a column of ones appended, `[..., D + 1]`: the input layout of
    /// [`StackedMlp::forward`].
    pub fn with_ones(features: &Tensor) -> Tensor {
        let mut size = features.size();
        *size.last_mut().expect("features have a feature dimension") = 1;
        Tensor::cat(&[features, &Tensor::ones(size.as_slice(), (features.kind(), features.device()))], -1)
    }

    /// K cells' features, each `[R, D]`, stacked with a column of ones appended:
    /// `[K, R, D + 1]`, as [`StackedMlp::with_ones`] of their stack, written in one pass (at
    /// paper scale this is hundreds of MB, and every pass over fresh memory faults it in).
    pub fn stack_with_ones(features: &[&Tensor]) -> Tensor {
        let (r, d) = features[0].size2().expect("features are [R, D]");
        let k = features.len() as i64;
        let out = Tensor::empty([k, r, d + 1], (features[0].kind(), features[0].device()));
        for (i, f) in features.iter().enumerate() {
            out.get(i as i64).narrow(1, 0, d).copy_(f);
        }
        let _ = out.narrow(2, d, 1).fill_(1.0);
        out
    }

    /// Rewards `[K, N]` for inputs `xs` `[K, N, D + 1]` (last column ones; or `[U, N, D + 1]`,
    /// [`StackedMlp::share_inputs`]), no tape.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.run(xs, false).0
    }

    /// Rewards `[K, N]` and the tape for [`StackedMlp::backward`], which borrows `xs`.
    pub fn forward_train<'x>(&self, xs: &'x Tensor) -> (Tensor, Tape<'x>) {
        let (r, tape) = self.run(xs, true);
        (r, tape.expect("taped"))
    }

    fn run<'x>(&self, xs: &'x Tensor, taped: bool) -> (Tensor, Option<Tape<'x>>) {
        if let Some(out) = self.run_one_relu_on_host(xs, taped) {
            return out;
        }
        let n_layers = self.ws.len();
        let xs = &self.per_cell(xs);
        let mut tape = Tape {
            inputs: Vec::with_capacity(n_layers),
            pre: Vec::with_capacity(n_layers),
            hidden_is_mask: false,
            shared_input: false,
            input: PhantomData,
        };
        let mut h = xs.shallow_clone();
        for (l, w) in self.ws.iter().enumerate() {
            if l + 1 == n_layers {
                let r = self.head(&h, w, l == 0);
                if taped {
                    tape.inputs.push(h);
                }
                return (r, taped.then_some(tape));
            }
            let a = if l == 0 {
                h.bmm(w)
            } else {
                let rows = w.size()[1] - 1;
                w.narrow(1, rows, 1).baddbmm(&h, &w.narrow(1, 0, rows), 1.0, 1.0)
            };
            if taped {
                tape.inputs.push(h);
            }
            h = match self.activation {
                // In place: the output alone decides the derivative.
                Activation::Relu => {
                    let mut a = a;
                    a.relu_()
                }
                Activation::Tanh => a.tanh(),
                Activation::Gelu | Activation::Silu => {
                    let out = activate(&a, self.activation);
                    if taped {
                        tape.pre.push(Some(a));
                    }
                    out
                }
            };
            if taped && matches!(self.activation, Activation::Relu | Activation::Tanh) {
                tape.pre.push(None);
            }
        }
        unreachable!("a stacked model has a head layer")
    }

    /// The head's rewards `[K, N]` for its input `h` `[K, N, in(+1)]` (`with_ones`: a linear
    /// model, whose input carries the ones column that folds the bias in) and its block `w`
    /// `[K, in + 1, 1]`. On the CPU, by a host loop ([`kernels::head_rewards`]) that sums each
    /// row in one order whatever K is: LibTorch's batched matmul at one output rounds a cell
    /// alone differently than among others, so results would depend on the group.
    fn head(&self, h: &Tensor, w: &Tensor, with_ones: bool) -> Tensor {
        if self.host_kernels
            && kernels::is_host(h, Kind::Float)
            && let Some(r) = kernels::head_rewards(h, w)
        {
            return Tensor::from_slice(&r).view([self.k, h.size()[1]]);
        }
        if with_ones {
            return h.bmm(w).squeeze_dim(-1);
        }
        // The bias added to the [K, N, 1] product costs less than a fused baddbmm, whose bias
        // broadcast MKL handles slowly at out = 1.
        let rows = w.size()[1] - 1;
        (h.bmm(&w.narrow(1, 0, rows)) + w.narrow(1, rows, 1)).squeeze_dim(-1)
    }

    /// Whether forward passes of CPU inputs take the fused host path (`x̃ → ReLU → head`, the
    /// host kernels on, a CPU that runs them), which reads a shared input without a copy a
    /// cell; other paths copy it ([`StackedMlp::per_cell`]).
    pub fn fused_on_host(&self) -> bool {
        self.host_kernels
            && self.ws.len() == 2
            && self.activation == Activation::Relu
            && head_kernels_available()
    }

    /// [`StackedMlp::run`] for `x̃ → ReLU → head` on the CPU: one matmul, then one host pass
    /// over the `[K, N, H]` pre-activations that computes the rewards and leaves the ReLU
    /// mask in their place (three kernels and their passes otherwise: ReLU, the head's
    /// matrix-vector product, the mask). `None` where it does not apply.
    fn run_one_relu_on_host<'x>(&self, xs: &'x Tensor, taped: bool) -> Option<(Tensor, Option<Tape<'x>>)> {
        if !(self.fused_on_host() && kernels::is_host(xs, Kind::Float)) {
            return None;
        }
        let shared_input = self.is_shared(xs);
        let mut a = self.first_layer(xs); // [K, N, H], contiguous
        let n = a.size()[1];
        let head = self.ws[1].contiguous(); // [K, H + 1, 1]
        let r = kernels::relu_head_mask(&mut a, &head)?;
        let r = Tensor::from_slice(&r).view([self.k, n]);
        let tape = taped.then(|| Tape {
            inputs: vec![xs.shallow_clone(), a],
            pre: vec![None],
            hidden_is_mask: true,
            shared_input,
            input: PhantomData,
        });
        Some((r, tape))
    }

    /// The first layer's products `[K, N, out]` of inputs `xs` (`[U, N, D + 1]` when shared):
    /// a group's input multiplies each of its cells' weights in one batched call, without a
    /// copy a cell.
    fn first_layer(&self, xs: &Tensor) -> Tensor {
        if !self.is_shared(xs) {
            return xs.bmm(&self.ws[0]);
        }
        let (n, d1, out) = (xs.size()[1], xs.size()[2], self.ws[0].size()[2]);
        let a = Tensor::empty([self.k, n, out], (xs.kind(), xs.device()));
        for (u, first, c) in self.groups() {
            let x = xs.get(u).unsqueeze(0).expand([c, n, d1], false);
            let _ = x.bmm_out(&a.narrow(0, first, c), &self.ws[0].narrow(0, first, c));
        }
        a
    }

    /// Writes ∂loss/∂params into [`StackedMlp::grad`] from `dr` = ∂loss/∂rewards `[K, N]`.
    /// A tape serves one backward pass, which consumes it and may overwrite what it holds, the
    /// input `xs` given to [`StackedMlp::forward_train`] among them (one ReLU layer scales it
    /// in place): `xs` is not meant to be read afterwards.
    ///
    /// The gradient at every layer is carried as `diag(s) · G` with the row scale `s = dr`
    /// kept aside: the head has one output, so below it `G` starts as the head's weights
    /// broadcast over rows (no `[K, N, H]` product is formed), activation derivatives act
    /// element-wise and commute with the row scale, and each weight gradient is
    /// `(s ⊙ input)ᵀ · G`, scaling the layer's input instead of its output gradient.
    pub fn backward(&mut self, dr: &Tensor, tape: Tape<'_>) {
        let s = dr.unsqueeze(-1); // [K, N, 1]
        let head = self.ws.len() - 1;
        let input_t = tape.inputs[head].transpose(1, 2); // [K, in(+1), N]
        if head == 0 {
            // A linear model: the ones column makes the last row the bias gradient.
            let _ = input_t.bmm_out(&self.gws[0], &s);
            return;
        }
        let rows = self.ws[head].size()[1] - 1;
        let _ = s.sum_intlist_out(&self.gws[head].narrow(1, rows, 1), 1, true, Kind::Float);
        if head == 1 && self.activation == Activation::Relu {
            self.backward_one_relu_layer(&s, &tape);
            return;
        }
        // Into a new tensor, then copied: LibTorch's batched matmul into this strided view
        // (one output column) rounds a group of one differently from a larger group.
        self.gws[head].narrow(1, 0, rows).copy_(&input_t.bmm(&s));
        let n = s.size()[1];
        // ∂loss/∂(head input) = diag(s) · G with G = head weights on every row.
        let mut g = self.ws[head].narrow(1, 0, rows).transpose(1, 2).expand([self.k, n, rows], false);
        for l in (0..head).rev() {
            let out = &tape.inputs[l + 1];
            g = match (self.activation, &tape.pre[l]) {
                (Activation::Relu, _) => out.threshold_backward(&g, 0.0),
                (Activation::Tanh, _) => Tensor::tanh_backward(&g, out),
                (Activation::Gelu, Some(pre)) => pre.gelu_backward(&g, "none"),
                (Activation::Silu, Some(pre)) => pre.silu_backward(&g),
                _ => unreachable!("pre-activations are taped for GELU and SiLU"),
            }; // [K, N, out_l], ∂loss/∂pre_l = diag(s) · g
            let scaled_t = (&tape.inputs[l] * &s).transpose(1, 2); // [K, in(+1), N]
            if l == 0 {
                // The ones column (scaled to s) makes the last row the bias gradient.
                let _ = scaled_t.bmm_out(&self.gws[0], &g);
            } else {
                let rows = self.ws[l].size()[1] - 1;
                let _ = scaled_t.bmm_out(&self.gws[l].narrow(1, 0, rows), &g);
                let _ = s.transpose(1, 2).bmm_out(&self.gws[l].narrow(1, rows, 1), &g);
                g = g.bmm(&self.ws[l].narrow(1, 0, rows).transpose(1, 2)); // [K, N, in_l]
            }
        }
    }

    /// The weight gradients of `x̃ → ReLU → head` (one hidden layer) from one matmul.
    ///
    /// With the 0/1 mask m = [h > 0] and G = (s ⊙ x̃)ᵀ · m `[K, D + 1, H]`: the hidden layer's
    /// gradient is G with column j scaled by the head weight w_j, and, since h = m ⊙ (x̃ · W)
    /// for a ReLU, the head's weight gradient Σₙ sₙ hₙⱼ is Σᵢ Wᵢⱼ Gᵢⱼ. This never reads h for
    /// the head's gradient (a pass over `[K, N, H]` saved); the head bias is done already.
    fn backward_one_relu_layer(&mut self, s: &Tensor, tape: &Tape<'_>) {
        // h is not needed after this: it becomes its own mask in place (no new [K, N, H]).
        let mut mask = tape.inputs[1].shallow_clone(); // [K, N, H]
        if !tape.hidden_is_mask {
            let _ = mask.sign_();
        }
        let hidden = mask.size()[2];
        // Nor is x̃: it is scaled in place (the same products as into a new tensor, without
        // allocating and faulting in [K, N, D + 1] each step); a shared input is scaled once a
        // cell into a buffer kept for the next step.
        let scaled = if tape.shared_input {
            debug_assert!(self.shared.is_some(), "a shared input needs share_inputs");
            let x = &tape.inputs[0]; // [U, N, D + 1]
            let size = [self.k, x.size()[1], x.size()[2]];
            // The buffer is kept for the usual batch size; a partial batch (an epoch's end)
            // gets one of its own, and the next full batch finds the kept one.
            if !self.scaled.defined() {
                self.scaled = Tensor::empty(size, (x.kind(), x.device()));
            }
            let out = if self.scaled.size() == size {
                self.scaled.shallow_clone()
            } else {
                Tensor::empty(size, (x.kind(), x.device()))
            };
            for (u, first, c) in self.groups() {
                let _ = x.get(u).unsqueeze(0).mul_out(&out.narrow(0, first, c), &s.narrow(0, first, c));
            }
            out
        } else {
            let mut scaled = tape.inputs[0].shallow_clone();
            let _ = scaled.g_mul_(s);
            scaled
        };
        let mut g = scaled.transpose(1, 2).bmm(&mask); // [K, D + 1, H]
        let head_w = self.ws[1].narrow(1, 0, hidden).transpose(1, 2); // [K, 1, H]
        let _ = g.mul_out(&self.gws[0], &head_w);
        // G is not needed after the hidden layer's gradient: Wᵢⱼ Gᵢⱼ in place.
        let _ = g.g_mul_(&self.ws[0]);
        let head_grad = g.sum_dim_intlist(1, true, Kind::Float); // [K, 1, H]
        self.gws[1].narrow(1, 0, hidden).copy_(&head_grad.transpose(1, 2));
    }

    /// L2 norm of each cell's head weight vector (bias excluded), `[K]`.
    pub fn head_weight_norms(&self) -> Tensor {
        let head = self.ws.last().expect("a head layer");
        let rows = head.size()[1] - 1;
        head.narrow(1, 0, rows).square().sum_dim_intlist(&[1i64, 2][..], false, Kind::Float).sqrt()
    }

    /// Cell `k`'s parameters, copied: one `[in + 1, out]` block per layer.
    pub fn cell_parameters(&self, k: i64) -> Vec<Tensor> {
        self.ws.iter().map(|w| w.get(k).copy()).collect()
    }

    /// Sets cell `k`'s parameters from blocks as [`StackedMlp::cell_parameters`] gives them.
    pub fn set_cell_parameters(&mut self, k: i64, blocks: &[Tensor]) {
        for (w, b) in self.ws.iter().zip(blocks) {
            w.get(k).copy_(b);
        }
    }

    /// Cell `k`'s weights by the one-cell model's names and shapes (`hidden_l.weight`
    /// `[out, in]`, `hidden_l.bias` `[out]`, …, `head.weight` `[1, in]`, `head.bias` `[1]`), on
    /// the CPU, in name order.
    pub fn export_cell(&self, k: i64) -> Vec<(String, Tensor)> {
        let last = self.ws.len() - 1;
        let mut out = Vec::new();
        for (l, w) in self.ws.iter().enumerate() {
            let block = w.get(k).to_device(tch::Device::Cpu); // [in + 1, out]
            let rows = block.size()[0] - 1;
            let name = if l == last { "head".to_string() } else { format!("hidden_{l}") };
            out.push((format!("{name}.weight"), block.narrow(0, 0, rows).tr().contiguous()));
            out.push((format!("{name}.bias"), block.get(rows).contiguous()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Scales each cell's part of a flat gradient `grad` `[P]` (laid out as the parameters) so
    /// that its L2 norm is at most `max_norm`, as `torch.nn.utils.clip_grad_norm_` does for one
    /// model: by `max_norm / (norm + 1e-6)` where that is below 1.
    pub fn clip_per_cell(&self, grad: &Tensor, max_norm: f64) {
        let blocks = self.views_of(grad);
        let sq = blocks
            .iter()
            .map(|b| b.square().sum_dim_intlist(&[1i64, 2][..], false, Kind::Float))
            .reduce(|a, b| a + b)
            .expect("a stacked model has layers");
        let norm = sq.sqrt(); // [K]
        let coef = (norm.full_like(max_norm) / (norm + 1e-6)).clamp_max(1.0).view([self.k, 1, 1]);
        for b in blocks {
            let mut b = b;
            let _ = b.g_mul_(&coef);
        }
    }

    /// A flat tensor `[P]` laid out as the parameters, viewed as their layer blocks.
    fn views_of(&self, flat: &Tensor) -> Vec<Tensor> {
        let mut offset = 0;
        self.ws
            .iter()
            .map(|w| {
                let n = w.numel() as i64;
                let v = flat.narrow(0, offset, n).view(w.size().as_slice());
                offset += n;
                v
            })
            .collect()
    }

    /// Whether the fused host kernel may run (on by default; off runs the batched kernels that
    /// other devices run, for tests on the CPU).
    pub fn use_host_kernels(&mut self, on: bool) {
        self.host_kernels = on;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forward and backward of a stack equal each model evaluated alone with autograd.
    #[test]
    fn backward_matches_autograd() {
        let cases = [
            (&[5i64, 7, 4, 1][..], Activation::Relu),
            (&[5, 7, 1], Activation::Relu),
            (&[5, 7, 1], Activation::Tanh),
            (&[5, 7, 4, 1], Activation::Tanh),
            (&[5, 7, 4, 1], Activation::Gelu),
            (&[5, 7, 4, 1], Activation::Silu),
            (&[5, 1], Activation::Relu),
        ];
        for ((sizes, activation), host_kernels) in cases.iter().flat_map(|&c| [(c, true), (c, false)]) {
            let k = 3;
            let mut normal = crate::testing::Normal::new(sizes.len() as u64 * 10 + activation as u64);
            // layers[l][c] = (weight [out, in], bias [out]), requiring grad for the reference.
            let layers: Vec<Vec<(Tensor, Tensor)>> = sizes
                .windows(2)
                .map(|w| {
                    (0..k)
                        .map(|_| {
                            (
                                normal.tensor(&[w[1], w[0]]).set_requires_grad(true),
                                normal.tensor(&[w[1]]).set_requires_grad(true),
                            )
                        })
                        .collect()
                })
                .collect();
            let mut mlp = StackedMlp::new(&layers, activation);
            mlp.host_kernels = host_kernels;
            let xs = normal.tensor(&[k, 6, sizes[0]]);
            let input = StackedMlp::with_ones(&xs);
            let (r, tape) = mlp.forward_train(&input);
            // A loss with a different weight per reward: Σ r · c.
            let c = normal.tensor(&[k, 6]);
            mlp.backward(&c, tape);
            for cell in 0..k {
                let mut h = xs.get(cell);
                for (l, layer) in layers.iter().enumerate() {
                    let (w, b) = &layer[cell as usize];
                    h = h.matmul(&w.tr()) + b;
                    if l + 1 < layers.len() {
                        h = activate(&h, activation);
                    }
                }
                let alone = h.squeeze_dim(-1);
                // float32 sums of a few dozen terms: relative to the largest entry.
                let close = |x: &Tensor, y: &Tensor| {
                    let scale = y.abs().max().double_value(&[]).max(1.0);
                    (x - y).abs().max().double_value(&[]) < 1e-5 * scale
                };
                assert!(close(&r.get(cell), &alone), "{activation:?} {host_kernels}: forward, cell {cell}");
                assert!(
                    close(&mlp.forward(&StackedMlp::with_ones(&xs)).get(cell), &alone),
                    "untaped forward"
                );
                (&alone * c.get(cell)).sum(Kind::Float).backward();
                for (l, layer) in layers.iter().enumerate() {
                    let (w, b) = &layer[cell as usize];
                    let g = mlp.gws[l].get(cell); // [in + 1, out]
                    let rows = g.size()[0] - 1;
                    assert!(close(&g.narrow(0, 0, rows).tr(), &w.grad()), "{activation:?}: ∂w, layer {l}");
                    assert!(close(&g.get(rows), &b.grad()), "{activation:?}: ∂b, layer {l}");
                }
            }
            let norms = mlp.head_weight_norms();
            for cell in 0..k {
                let expected = layers[layers.len() - 1][cell as usize].0.norm().double_value(&[]);
                assert!((norms.double_value(&[cell]) - expected).abs() < 1e-5);
            }
        }
    }
}
