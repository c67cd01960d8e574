//! The group's training pairs as forward-pass inputs: each input's batch stream, the table of
//! its pairs' features, and the batches gathered from it, lent to one forward and backward
//! pass at a time.
//!
//! A training pair is one row of a table `[U·P, 2·(D + 1)]` (chosen, then rejected features,
//! ones appended), so a batch is one row gather, its rows interleaved (chosen, rejected,
//! chosen, …). On the CPU's host loops the table is built on the host from the features (no
//! tensor copies in between) and gathered into one reused buffer ([`kernels::gather_rows`]);
//! elsewhere it is a tensor and a batch is an `index_select`.

use tch::{Device, Kind, Tensor};

use super::stacked::StackedMlp;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::experiment::config::TrainConfig;
use crate::train::batches::BatchStream;
use crate::train::kernels;

/// The batches of a group's inputs, and its evaluation input.
pub struct PairBatches {
    /// One stream an input, drawing the batches a cell of its seed alone would draw.
    stream: BatchStream,
    n_inputs: usize,
    /// Training pairs an input (P).
    n_train: usize,
    /// Every response's features, ones appended, one entry a forward-pass entry:
    /// `[E, R, D + 1]` (the evaluation input).
    features: Tensor,
    d1: i64,
    table: PairTable,
    /// The input each entry of a batch reads (`[E]`): every input once when the forward pass
    /// reads shared inputs as they are, else each cell's input.
    entry_input: Vec<usize>,
    /// The input of every cell, `[K]` int64, and whether entries are inputs rather than cells.
    input_of_cell: Tensor,
    per_input: bool,
    /// Input u's pairs start at row u·P: `[U, 1]` int64 (the tensor table's offsets).
    offsets: Tensor,
    /// The buffer full batches are gathered into on the host, `[E, 2B, D + 1]`, reused so that
    /// it is not faulted in every step.
    full: Tensor,
    /// The batch lent when it is not `full`: a partial batch's own buffer (the end of an
    /// epoch), or the gather off the host loops.
    other: Tensor,
}

enum PairTable {
    /// Flat `[U·P, 2·(D + 1)]` on the host.
    Host(Vec<f32>),
    /// `[U·P, 2·(D + 1)]` on the device.
    Tensor(Tensor),
}

impl PairBatches {
    /// The batches of `inputs` (each input's first cell's data set; every one has the same
    /// number of training pairs) drawn from `seeds` (one an input) as `t` says, for `mlp`,
    /// whose cell k reads input `input_of[k]`; gathered by host loops when `host_loops` (the
    /// CPU only).
    pub fn new(
        inputs: &[&Dataset],
        seeds: &[u64],
        input_of: &[usize],
        t: &TrainConfig,
        mlp: &StackedMlp,
        host_loops: bool,
        device: Device,
    ) -> Result<PairBatches> {
        let (n_inputs, n_train) = (inputs.len(), inputs[0].train.n_pairs);
        let features = StackedMlp::stack_with_ones(&inputs.iter().map(|ds| &ds.features).collect::<Vec<_>>());
        let d1 = features.size()[2];
        let table = if host_loops {
            let pairs: Vec<&[(usize, usize)]> =
                inputs.iter().map(|ds| ds.train.pairs_host.as_slice()).collect();
            PairTable::Host(kernels::pair_table(&features, &pairs).ok_or_else(|| {
                Error::training(
                    "no host pair table: the stacked features are not a contiguous float32 CPU \
                     tensor, or a pair names a response out of range",
                )
            })?)
        } else {
            let rows: Vec<Tensor> = features
                .unbind(0)
                .iter()
                .zip(inputs)
                .map(|(f, ds)| {
                    Tensor::cat(
                        &[f.index_select(0, &ds.train.chosen), f.index_select(0, &ds.train.rejected)],
                        1,
                    )
                })
                .collect();
            PairTable::Tensor(Tensor::cat(&rows, 0))
        };
        let offsets = Tensor::arange_start_step(
            0,
            n_inputs as i64 * n_train as i64,
            n_train as i64,
            (Kind::Int64, device),
        )
        .view([n_inputs as i64, 1]);
        // The fused host pass reads a shared input as it is; other paths take one input a
        // cell, so their batches are gathered a cell (from the shared table) and their
        // evaluation input is copied a cell once, here.
        let per_input = host_loops && mlp.fused_on_host();
        let features = if per_input { features } else { mlp.per_cell(&features) };
        let entry_input: Vec<usize> = if per_input { (0..n_inputs).collect() } else { input_of.to_vec() };
        let stream = BatchStream::many(seeds, n_train, t.batch_size, t.sampling, device);
        let full = match table {
            PairTable::Host(_) => Tensor::zeros(
                [entry_input.len() as i64, 2 * stream.batch() as i64, d1],
                (Kind::Float, device),
            ),
            PairTable::Tensor(_) => Tensor::new(),
        };
        Ok(PairBatches {
            stream,
            n_inputs,
            n_train,
            features,
            d1,
            table,
            entry_input,
            input_of_cell: mlp.input_of_cells(),
            per_input,
            offsets,
            full,
            other: Tensor::new(),
        })
    }

    /// The evaluation input: every response of every entry, `[E, R, D + 1]`.
    pub fn features(&self) -> &Tensor {
        &self.features
    }

    /// The next micro-batch's forward input `[E, 2b, D + 1]`, each input's pairs drawn from
    /// its own stream. It is lent until the next call: a forward pass's tape of it
    /// ([`StackedMlp::forward_train`]) borrows it, so the borrow checker proves that no batch
    /// is gathered into a buffer while a tape that reads it is alive.
    pub fn next(&mut self) -> Result<&Tensor> {
        // [U, b] pair indices, offset into each input's own pairs.
        let idx = if self.n_inputs == 1 { self.stream.next().unsqueeze(0) } else { self.stream.next() };
        let b = idx.size()[1];
        let entries = self.entry_input.len() as i64;
        match &self.table {
            PairTable::Host(table) => {
                // A partial batch (the end of an epoch) gets a buffer of its own size.
                let full = b == self.stream.batch() as i64;
                if !full {
                    self.other = Tensor::zeros([entries, 2 * b, self.d1], (Kind::Float, self.full.device()));
                }
                let buf = if full { &mut self.full } else { &mut self.other };
                let width = 2 * self.d1 as usize;
                if !kernels::gather_rows(buf, table, width, &idx, self.n_train, &self.entry_input) {
                    return Err(Error::training("a batch's pair indices do not fit its pair table"));
                }
                Ok(buf)
            }
            PairTable::Tensor(table) => {
                let rows = idx + &self.offsets; // [U, b]
                let rows = if self.per_input { rows } else { rows.index_select(0, &self.input_of_cell) };
                self.other = table.index_select(0, &rows.view([-1])).view([entries, 2 * b, self.d1]);
                Ok(&self.other)
            }
        }
    }
}
